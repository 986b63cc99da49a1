#!/usr/bin/env bash
# Runs the black-box Jepsen harness for every workload under every nemesis, one run per pair,
# and prints each run's JEPSEN summary line (docs/jepsen.md, "Runs made").
#
#   bash scripts/jepsen-matrix.sh [TIME_LIMIT_S] [PARALLEL] [WORKLOADS] [NEMESES] [FIRST_SEED]
#
# Defaults: 600 s per run, 2 runs at once (each is a cluster of 11 processes in network
# namespaces; needs root), every workload and every nemesis group, seeds from 900. Lines go
# to stdout and to target/jepsen/matrix-<time>.txt; a run's directory holds its history,
# verdict, node logs and plots. The exit status is non-zero if any run was not valid.
set -euo pipefail
cd "$(dirname "$0")/.."
time_limit=${1:-600}
parallel=${2:-2}
workloads=${3:-register set list bucket multipart}
nemeses=${4:-partition kill pause membership all}
seed=${5:-900}

# The same build as the test command's: `--bins` alone resolves features differently, and
# alternating the two rebuilds several crates each time.
cargo build -q --workspace --bins --tests
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/jepsen-tests"
mkdir -p "$target_dir/jepsen"
out="$target_dir/jepsen/matrix-$(date +%Y%m%d-%H%M%S).txt"

jobs_file=$(mktemp)
trap 'rm -f "$jobs_file"' EXIT
for w in $workloads; do
  for n in $nemeses; do
    echo "$w $n $seed" >>"$jobs_file"
    seed=$((seed + 1))
  done
done

run_one() { # WORKLOAD NEMESIS SEED
  local line
  line=$("$bin" --workload "$1" --nemesis "$2" --time-limit "$time_limit" --seed "$3" 2>/dev/null \
    | grep '^JEPSEN' || true)
  [ -n "$line" ] || line="JEPSEN workload=$1 nemesis=$2 seed=$3 no summary (harness error; see its run directory)"
  echo "$line seed=$3"
}
export -f run_one
export bin time_limit

echo "== $(wc -l <"$jobs_file") runs of ${time_limit}s, $parallel at a time; lines also in $out"
xargs -P "$parallel" -L 1 bash -c 'run_one "$@"' _ <"$jobs_file" | tee "$out"
! grep -qv 'valid=true' "$out"
