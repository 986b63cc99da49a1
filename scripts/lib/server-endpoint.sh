# Sourced by the scripts that start an embedded `cairn server` in the background.
#
#   endpoint=$(server_endpoint SERVER_STDOUT SERVER_PID SERVER_LOG) || exit 1
#
# Waits up to 60 s for the server to print its "S3 endpoint:" line and prints the endpoint.
# If the server exits first, or never prints it, shows the end of its log on stderr and fails.
server_endpoint() {
  local out=$1 pid=$2 log=$3 endpoint=""
  for _ in $(seq 1 600); do
    endpoint=$(sed -n 's/.*S3 endpoint: *//p' "$out" 2>/dev/null | head -1)
    if [ -n "$endpoint" ]; then
      echo "$endpoint"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -50 "$log" >&2
      echo "the server died" >&2
      return 1
    fi
    sleep 0.1
  done
  tail -50 "$log" >&2
  echo "the server did not start" >&2
  return 1
}
