#!/usr/bin/env bash
# Instructions per call on the client side of the load harness (benches/load/main.rs), under
# callgrind: everything executed inside one `Caller::call` (benches/load/clients.rs: building
# the request, the client, the transport, hyper's client side, parsing), for `ours`, the `floor`
# `floor+serde` (the floor serializing the record / parsing the answer) and `bounded` (besides,
# the URI made per call and the exchange under `tokio::time::timeout`), GET and POST, at
# concurrency 1. Each figure is the difference between a short and a long run divided by the
# difference in calls, so one-off costs (the connection, first-use initialisation) cancel out.
# The kernel's work (syscalls) and hyper's connection task are not counted.
#   benches/load-callgrind.sh            (needs valgrind; builds the bench first)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(benches/bench-binary.sh load)
out=$(mktemp -d)
trap 'rm -r "$out"' EXIT
# Prints "CALLS INSTRUCTIONS" of one run of $3 seconds.
run() {
    local client=$1 op=$2 secs=$3 calls
    calls=$(LOAD_PHASES=compare LOAD_JS=0 LOAD_CLIENTS=$client LOAD_OPS=$op LOAD_CONCURRENCY=1 \
        LOAD_ROUNDS=1 LOAD_SECS=$secs LOAD_WARMUP_SECS=0 \
        valgrind --tool=callgrind --toggle-collect='load::clients::Caller::call*' \
        --callgrind-out-file="$out/cg.out" "$bin" --bench 2>/dev/null |
        sed -nE "s/^    ${client//+/\\+} .*\(([0-9]+) calls.*/\1/p")
    echo "$calls $(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$out/cg.out" | head -1)"
}
for op in get post; do
    for client in ours floor floor+serde bounded; do
        read -r c1 i1 < <(run "$client" "$op" 0.4)
        read -r c2 i2 < <(run "$client" "$op" 1.6)
        echo "$op $client: $(((i2 - i1) / (c2 - c1))) instructions per call ($c1 and $c2 calls)"
    done
done
