#!/usr/bin/env python3
"""Collects criterion medians of `cargo bench --bench micro` and tabulates repeated runs.

    python3 benches/summarize.py snapshot runs/1.json [SINCE]  # after each run: copy the medians
                                                # (only those written after epoch SINCE)
    python3 benches/summarize.py table runs/*.json      # median and min-max over the runs

Each row pairs a benchmark with its baseline measured in the same run: `ours*` with the
matching `floor*` (or plain `floor`), the client calls with the sans-IO call. Ratios are
computed within each run, then summarized over runs.
"""
import json
import os
import statistics
import sys

ROOT = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")


def snapshot(out, since=0.0):
    medians = {}
    for folder, _, files in os.walk(ROOT):
        if os.path.basename(folder) == "new" and "estimates.json" in files:
            if os.path.getmtime(os.path.join(folder, "estimates.json")) < since:
                continue
            with open(os.path.join(folder, "benchmark.json")) as f:
                name = json.load(f)["full_id"]
            with open(os.path.join(folder, "estimates.json")) as f:
                medians[name] = json.load(f)["median"]["point_estimate"]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(medians, f, indent=1, sort_keys=True)
    print(f"{len(medians)} medians -> {out}")


def baseline(name, names):
    parts = name.split("/")
    group, variant = parts[0], parts[1]
    rest = parts[2:]
    if group == "client":
        candidates = ["sans_io"] if variant != "sans_io" else []
    elif variant.startswith("ours"):
        candidates = ["floor" + variant[4:], "floor"]
    else:
        candidates = []
    for candidate in candidates:
        other = "/".join([group, candidate] + rest)
        if other in names and other != name:
            return other
    return None


def fmt_time(ns):
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def spread(values, show):
    return f"{show(statistics.median(values))} ({show(min(values))}–{show(max(values))})"


def table(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    names = sorted(set.intersection(*(set(r) for r in runs)))
    print(f"{len(runs)} runs. Each cell: median over runs (min–max).\n")
    print("| benchmark | ours | baseline | baseline time | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        if name.split("/")[1].startswith("floor") or name.split("/")[1] == "sans_io":
            continue
        base = baseline(name, names)
        ours = [r[name] for r in runs]
        if base is None:
            print(f"| `{name}` | {spread(ours, fmt_time)} | | | |")
            continue
        floor = [r[base] for r in runs]
        ratios = [r[name] / r[base] for r in runs]
        print(
            f"| `{name}` | {spread(ours, fmt_time)} | `{base.split('/')[1]}` | {spread(floor, fmt_time)} "
            f"| {spread(ratios, lambda x: f'{x:.2f}x')} |"
        )


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "snapshot":
        snapshot(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        table(sys.argv[2:])
    else:
        sys.exit(__doc__)
