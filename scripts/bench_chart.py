#!/usr/bin/env python3
"""Draws BENCHMARKS.md's chart from the session bench's output.

    python3 scripts/bench_chart.py [hot_path.csv] [out.svg]

Reads the means `cargo bench --bench session` writes to
`{target}/criterion/hot_path.csv` (default: benches/results/hot_path.csv, the run
BENCHMARKS.md reports) and writes an SVG (default: benches/results/per_request.svg):
cost per request, on a log scale, against the number of organizations in the
profile, one line per contender. Standard library only.
"""

import csv
import math
import sys

SOURCE = sys.argv[1] if len(sys.argv) > 1 else "benches/results/hot_path.csv"
OUT = sys.argv[2] if len(sys.argv) > 2 else "benches/results/per_request.svg"

ORGS = {"2_orgs": 2, "41_orgs": 41}
CONTENDERS = [
    ("tower_sessions", "tower-sessions 0.15 (private cookie + MemoryStore)", "#d62728"),
    ("miss", "tower-hf-auth, cache miss (cookie opened)", "#ff7f0e"),
    ("hit", "tower-hf-auth, cache hit", "#2ca02c"),
    ("bearer_hit", "tower-hf-auth, bearer-cache hit", "#1f77b4"),
    ("bare", "bare axum route", "#7f7f7f"),
]

W, H = 860, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 380, 30, 50


def read(path):
    means = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["group"] == "per_request" and row["profile"] in ORGS:
                means[(row["case"], ORGS[row["profile"]])] = float(row["mean_ns"]) / 1000
    return means


def main():
    means = read(SOURCE)
    values = [v for v in means.values() if v > 0]
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    x0, x1 = 0, 45
    px = lambda x: LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT)
    py = lambda y: TOP + (math.log10(hi) - math.log10(y)) / (math.log10(hi) - math.log10(lo)) * (H - TOP - BOTTOM)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-size="14">Cost per request (µs, log scale) against profile size</text>',
    ]
    decade = lo
    while decade <= hi * 1.0001:
        for m in (1, 2, 5):
            v = decade * m
            if lo <= v <= hi:
                y = py(v)
                out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
                out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        decade *= 10
    for orgs in ORGS.values():
        x = px(orgs)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{orgs}</text>')
    out.append(
        f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 12}" text-anchor="middle">organizations in the profile</text>'
    )
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" stroke="#999"/>')
    for i, (case, label, colour) in enumerate(CONTENDERS):
        points = [(o, means[(case, o)]) for o in ORGS.values() if (case, o) in means]
        if not points:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colour}"/>')
            out.append(f'<text x="{px(x) + 7:.1f}" y="{py(y) - 6:.1f}" fill="{colour}">{y:.2f}</text>')
        ly = TOP + 10 + i * 22
        out.append(f'<line x1="{W - RIGHT + 15}" x2="{W - RIGHT + 35}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{W - RIGHT + 40}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
