#!/usr/bin/env bash
# Builds the bench target NAME of the facade (`cargo bench --bench NAME --no-run`) and prints
# the path of its executable; the callgrind scripts run it under valgrind.
#   benches/bench-binary.sh micro
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
