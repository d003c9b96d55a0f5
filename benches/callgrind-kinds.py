#!/usr/bin/env python3
"""Where one client's instructions per call exceed another's, by kind of work.

    benches/callgrind-kinds.py OURS.out OURS_CALLS OTHER.out OTHER_CALLS

Each file is a callgrind output of the load harness (BENCHMARKS.md, "What is left: instructions
per call", gives the valgrind command); CALLS is the number of calls that run made (the harness
prints it). Every function's exclusive count (`callgrind_annotate`) is divided by the calls,
OTHER's is subtracted from OURS', and the differences are summed by kind, chosen from the
function's name by the first pattern of KINDS that matches it. It prints the kinds, then the
largest differences left in "rest".
"""

import re
import subprocess
import sys

KINDS = [
    ("building the request", r"PathAndQuery|percent_encoding|get_request|write_wire|new_request|core::fmt::write"
     r"|BaseUrl::uri|UsageDate as core::fmt::Display|String as core::fmt::Write|Uri::from_parts|AuthHeaders"
     r"|Operation>::to_request|Bytes as core::convert::From|UnitType::new|try_insert2|HeaderMap"
     r"|Vec<T,A> as core::clone::Clone|extend_from_slice|finish_grow|record_count"),
    ("copying (memcpy)", r"memcpy|memmove"),
    ("allocations", r"malloc|free|__rust_alloc|__rdl_alloc|__rust_dealloc|__rdl_dealloc|unlink_chunk|realloc"),
    ("timer", r"tokio::time|Timeout(?!Connector)|Sleep|Wheel|clear_entry|reregister|Timespec|tokio::runtime::time"),
    ("serde", r"serde|Serialize|Deserialize|from_utf8|decimal|parse_usage_date|NaiveDate|itoa|RawValue|uuid"),
    ("hashing", r"Hasher|hash_one"),
    ("the harness", r"load::clients|Client<C,B> as core::clone::Clone"),
    ("the call's state machine", r"Instrumented|usage_core::client::call::"),
]


def per_call(path, calls):
    """Exclusive instructions per call of each function in one callgrind output."""
    listing = subprocess.run(
        ["callgrind_annotate", "--threshold=100", path], capture_output=True, text=True, check=True
    ).stdout
    counts = {}
    for line in listing.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?)( \[.*)?$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = m.group(2).replace("???:", "")
            counts[name] = counts.get(name, 0) + int(m.group(1).replace(",", "")) / calls
    return counts


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    ours = per_call(sys.argv[1], int(sys.argv[2]))
    other = per_call(sys.argv[3], int(sys.argv[4]))
    totals, rest = {}, []
    for name in set(ours) | set(other):
        diff = ours.get(name, 0) - other.get(name, 0)
        kind = next((k for k, pattern in KINDS if re.search(pattern, name)), "rest")
        totals[kind] = totals.get(kind, 0) + diff
        if kind == "rest":
            rest.append((diff, name))
    print(f"all: {sum(totals.values()):.0f} instructions per call more")
    for kind, diff in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {kind}: {diff:.0f}")
    print("largest in rest:")
    for diff, name in sorted(rest, reverse=True)[:10]:
        print(f"  {diff:.0f} {name[:120]}")


if __name__ == "__main__":
    main()
