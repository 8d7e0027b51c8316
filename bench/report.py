"""Turns the JSON lines of a bench/run.sh run into a Markdown report and a
PNG chart.

    python report.py RESULTS.jsonl OUT_DIR     # writes OUT_DIR/report.md, chart.png

Each line is {"backend", "subject", "metric", "value"}, as written by
core/benches/scenarios.rs (subjects "polylock" and "floor", the backend's
raw requests) and the peers in bench/peers/ (their own subject names).
Nothing here knows the backends or peers by name: a backend is whatever
the lines say, its subjects are polylock, then floor, then the others in
the order they appear. What a figure is comes from its metric name:

    *_pNN_us                       a latency in µs (lower is better); known:
                                   uncontended, uncontended_try (where
                                   acquire and try differ: LDLM), handoff,
                                   rpc_round_trip (the floor's one RPC)
    throughput_N_contenders_per_s  acquisitions/s with N contenders (higher)
                                   sharing one client
    throughput_N_clients_per_s     the same with a client each
    throughput_N_contenders_2_slots_per_s   the same on a 2-slot semaphore
    throughput_N_names_per_s       acquisitions/s over N names (higher)
    errors_N_contenders            failed acquisitions (lower; also
                                   errors_N_clients, errors_N_contenders_2_slots)
    raft_writes_per_acquisition_N_contenders   Consul Raft writes per
                                   acquisition with N contenders (lower)
    N_leases_requests_per_min      requests/min while holding N leases (lower)
    N_leases_server_renews_per_min the same, as the server's log counts them
    N_leases_rss_bytes_per_lease   resident memory per lease (lower)
    N_leases_acquire_s             seconds to take N leases (lower)
    N_leases_acquire_first_K_p50_us   p50 latency of the first K of those
    N_leases_acquire_last_K_p50_us    acquisitions and of the last K (lower;
                                   equal when held leases cost nothing)
    N_leases_lost                  leases lost while holding (lower)

report.md: an "at a glance" list, then per backend a table: one row per
figure, polylock's value, and for the floor and each peer its value and
polylock ÷ it, with a word for which side that favours. chart.png: a row
per backend, p50 latencies as bars on a linear axis (ratio to the floor
above each bar) and throughput against the number of contenders.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

OURS = "polylock"
FLOOR = "floor"
MISSING = "—"


# --- what a metric is ----------------------------------------------------


@dataclass(frozen=True)
class Figure:
    label: str
    kind: str  # latency | seconds | rate | requests | bytes | count | other
    higher_is_better: bool | None  # None: no direction known
    order: tuple
    contenders: int | None = None  # for throughput_N_contenders_per_s


# The word for "polylock is better" / "polylock is worse", per kind.
WORDS = {
    "latency": ("faster", "slower"),
    "seconds": ("faster", "slower"),
    "rate": ("faster", "slower"),
    "requests": ("fewer", "more"),
    "bytes": ("smaller", "larger"),
    "count": ("fewer", "more"),
}

LATENCY_NAMES = {
    "uncontended": "uncontended acquire+release",
    "uncontended_try": "uncontended try_acquire+release",
    "handoff": "handoff (release → waiter holds)",
    "rpc_round_trip": "one RPC round trip (floor's release call alone)",
}
# Row groups: uncontended figures, then handoff and the round trip beside it.
LATENCY_GROUPS = {"uncontended": 0, "uncontended_try": 0, "handoff": 1, "rpc_round_trip": 1}


def describe(metric, appearance=0):
    """The Figure a metric name stands for (unknown names still get a row)."""
    m = re.fullmatch(r"(\d+)_leases_(.+)", metric)
    if m:
        n, rest = int(m.group(1)), m.group(2)
        held = f"{n:,} leases held"
        known = {
            "acquire_s": (f"{n:,} leases: time to take them all", "seconds", 0),
            "requests_per_min": (f"{held}: requests/min", "requests", 3),
            "server_renews_per_min": (f"{held}: renewals/min in the server's log", "requests", 4),
            "rss_bytes_per_lease": (f"{held}: memory per lease", "bytes", 5),
            "lost": (f"{held}: leases lost", "count", 6),
        }
        # The p50 of the first and of the last k acquisitions, in the order
        # they started: equal when holding leases does not slow the next.
        first_last = re.fullmatch(r"acquire_(first|last)_(\d+)_p(\d+)_us", rest)
        if first_last:
            which, k, q = first_last.group(1), int(first_last.group(2)), int(first_last.group(3))
            label = f"{n:,} leases: acquisition p{q}, {which} {k:,}"
            return Figure(label, "latency", False, (6, n, 1 if which == "first" else 2))
        if rest in known:
            label, kind, sub = known[rest]
            return Figure(label, kind, False, (6, n, sub))
    m = re.fullmatch(r"(.+)_p(\d+)_us", metric)
    if m:
        what, q = m.group(1), int(m.group(2))
        label = f"{LATENCY_NAMES.get(what, what.replace('_', ' '))} p{q}"
        group = LATENCY_GROUPS.get(what, 2)
        return Figure(label, "latency", False, (group, what, q))
    m = re.fullmatch(r"throughput_(\d+)_contenders_per_s", metric)
    if m:
        n = int(m.group(1))
        plural = "" if n == 1 else "s"
        return Figure(f"throughput, {n} contender{plural} on one name", "rate", True, (3, "", n), n)
    m = re.fullmatch(r"throughput_(\d+)_clients_per_s", metric)
    if m:
        n = int(m.group(1))
        return Figure(f"throughput, {n} clients (one each) on one name", "rate", True, (3, "clients", n))
    m = re.fullmatch(r"throughput_(\d+)_contenders_2_slots_per_s", metric)
    if m:
        n = int(m.group(1))
        return Figure(f"throughput, {n} contenders on a 2-slot semaphore", "rate", True, (3, "slots", n))
    m = re.fullmatch(r"raft_writes_per_acquisition_(\d+)_contenders", metric)
    if m:
        n = int(m.group(1))
        plural = "" if n == 1 else "s"
        return Figure(f"Raft writes per acquisition, {n} contender{plural}", "requests", False, (5, "raft", n))
    m = re.fullmatch(r"throughput_(\d+)_names_per_s", metric)
    if m:
        n = int(m.group(1))
        return Figure(f"throughput, one client over {n:,} names", "rate", True, (4, "", n))
    m = re.fullmatch(r"errors_(\d+)_(contenders|clients|contenders_2_slots)", metric)
    if m:
        n, shape = int(m.group(1)), m.group(2)
        what = {"contenders": "contenders", "clients": "clients", "contenders_2_slots": "contenders, 2 slots"}[shape]
        return Figure(f"errors, {n} {what}", "count", False, (5, shape, n))
    # Anything else, by its unit suffix.
    pretty = metric.replace("_", " ")
    for suffix, kind, higher in [
        ("_us", "latency", False),
        ("_per_s", "rate", True),
        ("_per_min", "requests", False),
        ("_bytes", "bytes", False),
        ("_s", "seconds", False),
    ]:
        if metric.endswith(suffix):
            return Figure(pretty, kind, higher, (9, appearance, 0))
    return Figure(pretty, "other", None, (9, appearance, 0))


# --- numbers for people ----------------------------------------------------


def _num(value, digits=3):
    """`value` with about `digits` significant digits, thousands separated."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:,.{decimals}f}"


def human_micros(us):
    if abs(us) >= 1e6:
        return f"{_num(us / 1e6)} s"
    if abs(us) >= 1e3:
        return f"{_num(us / 1e3)} ms"
    return f"{_num(us)} µs"


def human(value, kind):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if kind == "latency":
        return human_micros(value)
    if kind == "seconds":
        return human_micros(value * 1e6)
    if kind == "rate":
        return f"{_num(value)} acq/s" if value < 1000 else f"{value:,.0f} acq/s"
    if kind == "requests":
        return f"{_num(value)}/min" if value < 1000 else f"{value:,.0f}/min"
    if kind == "bytes":
        for unit, size in [("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)]:
            if abs(value) >= size:
                return f"{_num(value / size)} {unit}"
        return f"{value:,.0f} B"
    if kind == "count":
        return f"{value:,.0f}"
    return _num(value)


def times(ratio):
    """A ratio as "1.11×"."""
    if ratio >= 100:
        return f"{ratio:,.0f}×"
    if ratio >= 10:
        return f"{ratio:.1f}×"
    if ratio >= 0.1:
        return f"{ratio:.2f}×"
    if ratio >= 0.001:
        return f"{ratio:.3f}×"
    return "<0.001×"


def ratio(ours, theirs):
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def verdict(ours, theirs, figure):
    """polylock ÷ theirs with the side it favours: "0.60× (faster)"."""
    if ours is not None and theirs is not None and ours == theirs == 0:
        return "same (0)"
    r = ratio(ours, theirs)
    if r is None:
        return MISSING
    words = WORDS.get(figure.kind)
    if words is None or figure.higher_is_better is None:
        return times(r)
    if abs(r - 1) < 0.03:
        return f"{times(r)} (on par)"
    better = (r > 1) == figure.higher_is_better
    return f"{times(r)} ({words[0] if better else words[1]})"


def versus_floor(ours, floor):
    r = ratio(ours, floor)
    return MISSING if r is None else f"{times(r)} floor"


# --- the data --------------------------------------------------------------


class Results:
    def __init__(self):
        self.values = {}  # (backend, subject, metric) -> value
        self.backends = []  # in order of appearance
        self._subjects = defaultdict(list)  # backend -> subjects, appearance order
        self._metrics = defaultdict(list)  # backend -> metrics, appearance order

    @classmethod
    def load(cls, path):
        results = cls()
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                results.add(row["backend"], row["subject"], row["metric"], row["value"])
            except (ValueError, KeyError, TypeError) as e:
                print(f"bench/report.py: {path}:{number}: skipped ({e})", file=sys.stderr)
        return results

    def add(self, backend, subject, metric, value):
        if value is not None:
            value = float(value)
            if math.isnan(value):
                value = None
        if backend not in self.backends:
            self.backends.append(backend)
        if subject not in self._subjects[backend]:
            self._subjects[backend].append(subject)
        if metric not in self._metrics[backend]:
            self._metrics[backend].append(metric)
        self.values[(backend, subject, metric)] = value  # a later run wins

    def get(self, backend, subject, metric):
        return self.values.get((backend, subject, metric))

    def subjects(self, backend):
        """polylock, floor, then the peers in order of appearance."""
        subs = self._subjects[backend]
        first = [s for s in (OURS, FLOOR) if s in subs]
        return first + [s for s in subs if s not in first]

    def peers(self, backend):
        return [s for s in self.subjects(backend) if s not in (OURS, FLOOR)]

    def has_floor(self, backend):
        return FLOOR in self._subjects[backend]

    def figures(self, backend):
        """(metric, Figure) in reading order."""
        metrics = self._metrics[backend]
        described = [(m, describe(m, i)) for i, m in enumerate(metrics)]
        return sorted(described, key=lambda mf: mf[1].order)

    def contenders(self, backend):
        """{N: metric} for the throughput_N_contenders_per_s figures."""
        return {
            f.contenders: m for m, f in self.figures(backend) if f.contenders is not None
        }


# --- report.md -------------------------------------------------------------


def glance(results, backend):
    """The at-a-glance lines for one backend."""
    lines = []
    peers = results.peers(backend)
    for metric in ("uncontended_p50_us", "handoff_p50_us"):
        figure = describe(metric)
        ours = results.get(backend, OURS, metric)
        if ours is None:
            continue
        parts = []
        floor = results.get(backend, FLOOR, metric)
        if floor is not None:
            parts.append(f"{versus_floor(ours, floor)} ({human(floor, figure.kind)})")
        for peer in peers:
            theirs = results.get(backend, peer, metric)
            if theirs is not None:
                parts.append(f"{verdict(ours, theirs, figure)} vs {peer} ({human(theirs, figure.kind)})")
        name = "uncontended p50" if metric.startswith("uncontended") else "handoff p50"
        lines.append(f"{name} {human(ours, figure.kind)}" + (" — " + "; ".join(parts) if parts else ""))
    counts = {
        n: m for n, m in results.contenders(backend).items() if results.get(backend, OURS, m) is not None
    }
    if counts:
        n = max(counts)
        metric = counts[n]
        figure = describe(metric)
        ours = results.get(backend, OURS, metric)
        parts = []
        for peer in peers:
            theirs = results.get(backend, peer, metric)
            if theirs is not None:
                parts.append(f"{verdict(ours, theirs, figure)} vs {peer} ({human(theirs, figure.kind)})")
        lines.append(
            f"throughput with {n} contender{'' if n == 1 else 's'} {human(ours, figure.kind)}"
            + (" — " + "; ".join(parts) if parts else "")
        )
    return lines


def table(results, backend):
    peers = results.peers(backend)
    header = ["figure", "better", OURS]
    if results.has_floor(backend):
        header += [FLOOR, "vs floor"]
    for peer in peers:
        header += [peer, f"vs {peer}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for metric, figure in results.figures(backend):
        ours = results.get(backend, OURS, metric)
        better = {True: "higher", False: "lower", None: ""}[figure.higher_is_better]
        cells = [figure.label, better, human(ours, figure.kind)]
        if results.has_floor(backend):
            floor = results.get(backend, FLOOR, metric)
            cells += [human(floor, figure.kind), versus_floor(ours, floor)]
        for peer in peers:
            theirs = results.get(backend, peer, metric)
            cells += [human(theirs, figure.kind), verdict(ours, theirs, figure)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(results):
    lines = [
        "# polylock benchmarks",
        "",
        "One run of `bench/run.sh`, on one machine: compare within a backend, not across machines.",
        "Ratios are polylock ÷ the other; the word says which way it favours polylock",
        "(latencies, request rates, memory: lower is better; throughput: higher is better).",
        "The floor is the backend's raw requests for one acquire+release, the least a lock can cost there.",
        "",
        "## At a glance",
        "",
    ]
    if not results.backends:
        lines.append("No results.")
    for backend in results.backends:
        found = glance(results, backend)
        lines.append(f"- **{backend}**" + ("" if found else f": {MISSING}"))
        lines += [f"  - {line}" for line in found]
    for backend in results.backends:
        lines += ["", f"## {backend}", ""]
        peers = results.peers(backend)
        if peers:
            lines += [f"Peers: {', '.join(peers)}.", ""]
        lines += table(results, backend)
    return "\n".join(lines) + "\n"


# --- chart.png ---------------------------------------------------------------

LATENCY_BARS = [("uncontended_p50_us", "uncontended p50"), ("handoff_p50_us", "handoff p50")]
PALETTE = ["#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def colours(results):
    """One colour per subject name across the whole figure."""
    out = {OURS: "#1f77b4", FLOOR: "#7f7f7f"}
    for backend in results.backends:
        for sub in results.subjects(backend):
            if sub not in out:
                out[sub] = PALETTE[(len(out) - 2) % len(PALETTE)]
    return out


def latency_unit(largest_us):
    if largest_us >= 1e6:
        return "s", 1e6
    if largest_us >= 1e3:
        return "ms", 1e3
    return "µs", 1.0


def latency_panel(ax, results, backend, metric, name, colour):
    """One bar per subject with `metric`, on a linear axis of its own."""
    present = [
        (s, v) for s in results.subjects(backend) if (v := results.get(backend, s, metric)) is not None
    ]
    largest = max(v for _, v in present)
    unit, scale = latency_unit(largest)
    floor = results.get(backend, FLOOR, metric)
    for x, (sub, value) in enumerate(present):
        ax.bar(x, value / scale, 0.7, color=colour[sub])
        text = human_micros(value)
        if floor and sub != FLOOR:
            text += f"\n{times(value / floor)} floor"
        ax.annotate(
            text, (x, value / scale), xytext=(0, 2), textcoords="offset points",
            ha="center", va="bottom", fontsize=8,
        )
    ax.set_xticks(range(len(present)), [s for s, _ in present], fontsize=8)
    pad = (max(len(present), 3) - len(present)) / 2  # bars as wide in every panel, centred
    ax.set_xlim(-0.6 - pad, len(present) - 0.4 + pad)
    ax.set_ylim(0, largest / scale * 1.25)
    ax.set_ylabel(unit)
    ax.set_title(f"{backend}: {name} (lower is better)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def throughput_panel(ax, results, backend, colour):
    from matplotlib.ticker import FuncFormatter

    counts = results.contenders(backend)
    xs_all = sorted(counts)
    drawn = False
    for sub in results.subjects(backend):
        points = [(n, results.get(backend, sub, counts[n])) for n in xs_all]
        points = [(n, v) for n, v in points if v is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", color=colour[sub], label=sub)
        for x, y in points:
            ax.annotate(
                human(y, "rate").replace(" acq/s", "/s"), (x, y), xytext=(4, 4),
                textcoords="offset points", fontsize=7, color=colour[sub],
            )
        drawn = True
    if len(xs_all) > 1 and min(xs_all) > 0:
        ax.set_xscale("log", base=2)
        lo, hi = min(xs_all), max(xs_all)
        ax.set_xlim(lo / 1.5, hi * 1.8)
    ax.set_xticks(xs_all, [str(n) for n in xs_all])
    ax.minorticks_off()
    ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.15)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
    ax.set_xlabel("contenders on one name")
    ax.set_ylabel("acquisitions/s")
    ax.set_title(f"{backend}: throughput (higher is better)", fontsize=10)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, loc="best")


def has_figure(results, backend, metric):
    return any(results.get(backend, s, metric) is not None for s in results.subjects(backend))


def has_throughput(results, backend):
    return any(has_figure(results, backend, m) for m in results.contenders(backend).values())


def chart(results, out):
    """A row per backend: uncontended p50, handoff p50 (bars, linear axes of
    their own, so µs and ms never share one) and throughput by contenders;
    a panel without figures is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def panels(backend):
        found = []
        for metric, name in LATENCY_BARS:
            if has_figure(results, backend, metric):
                found.append(lambda ax, m=metric, n=name: latency_panel(ax, results, backend, m, n, colour))
            else:
                found.append(None)
        found.append((lambda ax: throughput_panel(ax, results, backend, colour)) if has_throughput(results, backend) else None)
        return found

    colour = colours(results)
    rows = [(b, panels(b)) for b in results.backends]
    rows = [(b, p) for b, p in rows if any(p)]
    if not rows:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no latency or throughput figures", ha="center", va="center")
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return
    fig, axes = plt.subplots(
        len(rows), 3, figsize=(16, 3.6 * len(rows)), squeeze=False,
        gridspec_kw={"width_ratios": [1, 1, 1.3]},
    )
    for row, (backend, drawers) in zip(axes, rows):
        for ax, draw in zip(row, drawers):
            if draw is None:
                fig.delaxes(ax)
            else:
                draw(ax)
    fig.suptitle(
        "polylock vs its backend's raw floor and peers, one bench/run.sh run "
        "(each panel its own linear axis; \"× floor\" = value ÷ floor)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (3.6 * len(rows))))
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python report.py RESULTS.jsonl OUT_DIR", file=sys.stderr)
        return 2
    results_path, out_dir = argv[0], Path(argv[1])
    results = Results.load(results_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = markdown(results)
    (out_dir / "report.md").write_text(report)
    chart(results, out_dir / "chart.png")
    print(report)
    print(f"bench/report.py: wrote {out_dir / 'report.md'} and {out_dir / 'chart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
