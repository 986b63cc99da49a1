#!/bin/bash
# The compose cluster's one-shot init service (`cairn-compose-init` in the image): forms the
# meta cluster from the nodes in $CAIRN_META the first time, and does nothing harmful after.
#
# - every node pristine            -> `cairn admin init` (the first becomes the leader, the
#                                     others are added as voters)
# - a formed cluster answers        -> done; a configured node that is pristine and not a
#                                     member (an init cut short) is added
# - anything else (nodes starting) -> wait and look again
#
# `cairn admin init` itself refuses a node that has any Raft state, so a cluster can never be
# initialized twice; the all-pristine rule also keeps a node whose volume alone was wiped from
# founding a second cluster next to the first.
set -u

: "${CAIRN_META:?set CAIRN_META to the meta endpoints}"
IFS=, read -r -a endpoints <<<"$CAIRN_META"
ATTEMPTS=${CAIRN_INIT_ATTEMPTS:-90}

# state ENDPOINT: "pristine", "member" (it is in a formed cluster) or "unreachable".
state() {
    local out
    if out=$(cairn admin --meta "$1" status 2>&1); then
        echo member
    elif grep -q "has not joined a cluster yet" <<<"$out"; then
        echo pristine
    else
        echo unreachable
    fi
}

for attempt in $(seq 1 "$ATTEMPTS"); do
    states=()
    for ep in "${endpoints[@]}"; do states+=("$(state "$ep")"); done
    echo "init: attempt $attempt: ${states[*]}"

    if [[ " ${states[*]} " != *" member "* && " ${states[*]} " != *" unreachable "* ]]; then
        if cairn admin init; then
            echo "init: cluster formed"
            exit 0
        fi
        echo "init: cairn admin init failed; looking again" >&2
    elif [[ " ${states[*]} " == *" member "* ]]; then
        status=$(cairn admin status --json) || { sleep 2; continue; }
        rc=0
        for i in "${!endpoints[@]}"; do
            address=${endpoints[$i]#*://}
            address=${address%/}
            if [ "${states[$i]}" = pristine ]; then
                if grep -q "\"address\": \"$address\"" <<<"$status"; then
                    echo "init: $address is a member but has lost its data; replace it with" \
                        "\`cairn admin meta remove ID\` and \`cairn admin meta add $address\`" >&2
                    rc=1
                else
                    echo "init: adding pristine meta node $address"
                    cairn admin meta add "$address" || rc=1
                fi
            fi
        done
        [ "$rc" -eq 0 ] && echo "init: cluster ready"
        exit "$rc"
    fi
    sleep 2
done
echo "init: gave up after $ATTEMPTS attempts: the meta nodes are neither all pristine nor a cluster" >&2
exit 1
