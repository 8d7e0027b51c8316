"""Turns the JSON lines of a bench/run.sh run into a Markdown table and a
PNG chart.

    python report.py RESULTS.jsonl OUT_DIR     # writes OUT_DIR/report.md, chart.png

Each line is {"backend", "subject", "metric", "value"}. Per backend, one row
per metric, one column per subject (polylock first, then the raw floor and
the peers), and for each other subject the ratio polylock / subject: below
1 is better for latencies (_us) and request rates, above 1 for throughput.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path


def load(path):
    table = defaultdict(dict)  # (backend, metric) -> {subject: value}
    subjects = defaultdict(list)  # backend -> subjects in order of appearance
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        table[(row["backend"], row["metric"])][row["subject"]] = row["value"]
        if row["subject"] not in subjects[row["backend"]]:
            subjects[row["backend"]].append(row["subject"])
    return table, subjects


def fmt(value):
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def markdown(table, subjects):
    lines = ["# polylock benchmarks", ""]
    lines.append("Medians (p50) and p99 in µs, throughput in acquisitions/s, one run of `bench/run.sh`.")
    lines.append("Ratio = polylock ÷ other: < 1 is better for latencies and request rates, > 1 for throughput.")
    for backend, subs in subjects.items():
        others = [s for s in subs if s != "polylock"]
        lines += ["", f"## {backend}", ""]
        header = ["metric", "polylock"] + others + [f"ratio vs {o}" for o in others]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        metrics = [m for (b, m) in table if b == backend]
        for metric in metrics:
            row = table[(backend, metric)]
            ours = row.get("polylock")
            cells = [metric, fmt(ours)] + [fmt(row.get(o)) for o in others]
            for o in others:
                theirs = row.get(o)
                cells.append(f"{ours / theirs:.2f}" if ours is not None and theirs else "–")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(table, subjects, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["uncontended_p50_us", "handoff_p50_us"]
    backends = [b for b in subjects if any((b, m) in table for m in metrics)]
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        subs = subjects[backend]
        width = 0.8 / len(subs)
        for i, sub in enumerate(subs):
            values = [table.get((backend, m), {}).get(sub, 0) for m in metrics]
            ax.bar([x + i * width for x in range(len(metrics))], values, width, label=sub)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(metrics))])
        ax.set_xticklabels(["uncontended p50", "handoff p50"])
        ax.set_yscale("log")
        ax.set_ylabel("µs (log)")
        ax.set_title(backend)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main():
    results, out_dir = sys.argv[1], Path(sys.argv[2])
    table, subjects = load(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(markdown(table, subjects))
    chart(table, subjects, out_dir / "chart.png")
    print((out_dir / "report.md").read_text())
    print(f"bench/report.py: wrote {out_dir / 'report.md'} and {out_dir / 'chart.png'}")


if __name__ == "__main__":
    main()
