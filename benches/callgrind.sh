#!/usr/bin/env bash
# Counts the instructions per call of the target pairs (ours and floor) under callgrind:
# deterministic numbers that the noise of a shared machine does not move.
#   benches/callgrind.sh            (needs valgrind; builds the bench first)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(benches/bench-binary.sh micro)
out=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "$bin" --bench --profile-time 2 \
    'parse_rolled_up/(ours|floor)/1000$|serialize_record/(ours|floor)/10000$|client/(sans_io|no_timer|unused_timer)/' \
    >/dev/null 2>&1
callgrind_annotate --inclusive=yes --tree=caller "$out/cg.out" >"$out/annotated.txt"
python3 - "$out/cg.out" <<'PY'
import re, subprocess, sys
# Inclusive instructions and call counts of the out-of-line functions, from the raw profile.
text = open(sys.argv[1]).read()
names = {}
for m in re.finditer(r"^fn=\((\d+)\)(?: (.*))?$", text, re.M):
    if m.group(2):
        names[m.group(1)] = m.group(2)
calls = {}
cost = {}
current = None
lines = text.splitlines()
i = 0
while i < len(lines):
    line = lines[i]
    m = re.match(r"^cfn=\((\d+)\)(?: (.*))?$", line)
    if m:
        fid = m.group(1)
        if m.group(2):
            names[fid] = m.group(2)
        cm = re.match(r"^calls=(\d+)", lines[i + 1])
        cost_line = lines[i + 2].split()
        name = names[fid]
        calls[name] = calls.get(name, 0) + int(cm.group(1))
        cost[name] = cost.get(name, 0) + int(cost_line[1])
        i += 3
        continue
    i += 1
rows = {}
for name in calls:
    for short in ("parse_ours", "parse_floor", "serialize_ours", "serialize_floor", "record_sans_io",
                  "record_no_timer", "record_unused_timer", "get_sans_io", "get_no_timer", "get_unused_timer"):
        if re.search(r"micro::%s\b" % short, name):
            rows[short] = cost[name] / calls[name]
for ours, floor in (("parse_ours", "parse_floor"), ("serialize_ours", "serialize_floor"),
                    ("record_no_timer", "record_sans_io"), ("record_unused_timer", "record_sans_io"),
                    ("get_no_timer", "get_sans_io"), ("get_unused_timer", "get_sans_io")):
    if ours in rows and floor in rows:
        print(f"{ours}: {rows[ours]:,.0f} instructions per call; {floor}: {rows[floor]:,.0f}; "
              f"ratio {rows[ours] / rows[floor]:.2f}x; difference {rows[ours] - rows[floor]:+,.0f}")
PY
rm -r "$out"
