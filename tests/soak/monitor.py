"""The soak test's monitor (tests/soak/run.sh runs it; stdlib only): starts
the load processes, samples each one every minute (RSS, open fds, threads,
CPU, and the counters it reports in its stats file), writes the samples to
DIR/samples.tsv, stops the processes, prints the tables and judges the run
(tests/soak/README.md "Pass criteria"). Exit status 0 when it passes.

    python3 monitor.py --minutes M --dir DIR --run RUN_ID
        --backend NAME=URL... --proc LANG=COMMAND...
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

MIB = 1024 * 1024
RSS_RATIO = 1.2
RSS_SLACK_KIB = 8 * 1024
SLOPE_MAX_MIB_PER_MIN = 0.5
SLOPE_MIN_SAMPLES = 8
FD_SLACK = 8
THREAD_SLACK = 4
STATS_MAX_AGE = 20.0
STOP_WAIT = 120.0
COUNTERS = ("ops", "lost", "lost_after_release", "errors", "waits", "long_holds", "connects", "watch_events")
TICKS = os.sysconf("SC_CLK_TCK")


def proc_sample(pid):
    """RSS (KiB), open fds, threads and CPU seconds of PID; None if it is gone."""
    try:
        rss = threads = None
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        return {"rss_kib": rss or 0, "fds": fds, "threads": threads or 0, "cpu_s": cpu}
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def last_stats(path):
    """The newest line per backend of a stats file: {backend: (ts, {counter: n})}."""
    newest = {}
    try:
        with open(path) as stats:
            for line in stats:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3:
                    continue
                try:
                    counts = {k: int(v) for k, v in (p.split("=", 1) for p in parts[2:])}
                    newest[parts[1]] = (float(parts[0]), counts)
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return newest


def slope(points):
    """Least-squares slope of [(x, y)]."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--backend", action="append", default=[])
    parser.add_argument("--proc", action="append", default=[])
    args = parser.parse_args()
    minutes = args.minutes
    out = args.dir
    backends = [spec.split("=", 1)[0] for spec in args.backend]
    stop_file = os.path.join(out, "stop")
    max_seconds = minutes * 60 + 300

    procs = {}
    for spec in args.proc:
        lang, command = spec.split("=", 1)
        stats = os.path.join(out, f"stats-{lang}.tsv")
        log = open(os.path.join(out, f"{lang}.log"), "w")
        argv = shlex.split(command) + [stats, stop_file, args.run, str(max_seconds)] + args.backend
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs[lang] = {"child": child, "stats": stats, "log": log, "samples": []}
        print(f"soak: started {lang} (pid {child.pid})", flush=True)

    failures = []
    samples_path = os.path.join(out, "samples.tsv")
    with open(samples_path, "w") as tsv:
        tsv.write("minute\tlang\tpid\tbackend\trss_kib\tfds\tthreads\tcpu_pct\tstats_age_s\t"
                  + "\t".join(COUNTERS) + "\n")
    started = time.monotonic()
    previous_cpu = {lang: 0.0 for lang in procs}
    for minute in range(1, minutes + 1):
        target = started + 60 * minute
        while time.monotonic() < target:
            time.sleep(min(5.0, max(0.0, target - time.monotonic())))
        now = time.time()
        lines = []
        for lang, p in procs.items():
            child = p["child"]
            sample = proc_sample(child.pid) if child.poll() is None else None
            if sample is None:
                failures.append(f"{lang}: not alive at minute {minute} (exit {child.poll()})")
                p["samples"].append(None)
                continue
            sample["cpu_pct"] = 100 * (sample["cpu_s"] - previous_cpu[lang]) / 60
            previous_cpu[lang] = sample["cpu_s"]
            stats = last_stats(p["stats"])
            sample["minute"] = minute
            sample["stats"] = stats
            prior = next((s for s in reversed(p["samples"]) if s is not None), None)
            for backend in backends:
                ts, counts = stats.get(backend, (0.0, {k: 0 for k in COUNTERS}))
                age = now - ts
                if age > STATS_MAX_AGE:
                    failures.append(f"{lang}/{backend}: stats {age:.0f} s old at minute {minute}")
                before = prior["stats"].get(backend, (0, {"ops": 0}))[1]["ops"] if prior else 0
                if counts.get("ops", 0) <= before:
                    failures.append(f"{lang}/{backend}: no progress in minute {minute} "
                                    f"(ops {before} -> {counts.get('ops', 0)})")
                lines.append(f"{minute}\t{lang}\t{child.pid}\t{backend}\t{sample['rss_kib']}\t"
                             f"{sample['fds']}\t{sample['threads']}\t{sample['cpu_pct']:.1f}\t"
                             f"{age:.1f}\t" + "\t".join(str(counts.get(k, 0)) for k in COUNTERS)
                             + "\n")
            p["samples"].append(sample)
        with open(samples_path, "a") as tsv:
            tsv.write("".join(lines))
        summary = "  ".join(
            f"{lang}: {s['rss_kib'] / 1024:.1f}MiB {s['fds']}fd {s['threads']}thr {s['cpu_pct']:.0f}%"
            for lang, p in procs.items() if (s := p["samples"][-1]) is not None)
        print(f"soak: minute {minute}/{minutes}: {summary}", flush=True)

    # Stop: the processes see the stop file, finish their current step,
    # release, write a last stats line and exit.
    open(stop_file, "w").close()
    deadline = time.monotonic() + STOP_WAIT
    for lang, p in procs.items():
        child = p["child"]
        try:
            code = child.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait(timeout=30)
            failures.append(f"{lang}: did not stop within {STOP_WAIT:.0f} s (killed)")
        if code != 0:
            failures.append(f"{lang}: exit status {code}")
        p["log"].close()
        p["final"] = last_stats(p["stats"])

    report(procs, backends, minutes, failures, samples_path)
    if failures:
        print("\nsoak: FAIL")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("\nsoak: PASS")
    return 0


def report(procs, backends, minutes, failures, samples_path):
    print(f"\nsoak: samples in {samples_path}")
    print("\nPer-minute series (RSS MiB / fds / threads / CPU %; ops done that minute per backend):")
    header = f"{'lang':<7}{'min':>4}{'RSS':>8}{'fds':>5}{'thr':>5}{'cpu%':>6}  " + "".join(
        f"{b:>10}" for b in backends)
    print(header)
    for lang, p in procs.items():
        prior = {}
        for s in p["samples"]:
            if s is None:
                continue
            ops = []
            for b in backends:
                n = s["stats"].get(b, (0, {"ops": 0}))[1].get("ops", 0)
                ops.append(n - prior.get(b, 0))
                prior[b] = n
            print(f"{lang:<7}{s['minute']:>4}{s['rss_kib'] / 1024:>8.1f}{s['fds']:>5}"
                  f"{s['threads']:>5}{s['cpu_pct']:>6.1f}  " + "".join(f"{n:>10}" for n in ops))

    print("\nProcess: RSS at warm-up (minute 1) vs end (minute %d); fds and threads from the "
          "second half's start to the end" % minutes)
    print(f"{'lang':<7}{'RSS start':>10}{'RSS end':>9}{'bound':>8}{'slope':>13}"
          f"{'fds':>9}{'threads':>9}  verdict")
    for lang, p in procs.items():
        samples = [s for s in p["samples"] if s is not None]
        if len(samples) < len(p["samples"]) or not samples:
            print(f"{lang:<7} (missing samples)")
            continue
        warm, end = samples[0], samples[-1]
        bad = []
        bound = warm["rss_kib"] * RSS_RATIO + RSS_SLACK_KIB
        if end["rss_kib"] > bound:
            bad.append("RSS")
            failures.append(f"{lang}: RSS grew {warm['rss_kib'] / 1024:.1f} -> "
                            f"{end['rss_kib'] / 1024:.1f} MiB (bound {bound / 1024:.1f} MiB)")
        half = samples[len(samples) // 2:]
        slope_text = "-"
        if len(half) >= SLOPE_MIN_SAMPLES:
            per_min = slope([(s["minute"], s["rss_kib"] / 1024) for s in half])
            slope_text = f"{per_min:+.3f}MiB/m"
            if per_min > SLOPE_MAX_MIB_PER_MIN:
                bad.append("slope")
                failures.append(f"{lang}: RSS slope {per_min:+.3f} MiB/min over minutes "
                                f"{half[0]['minute']}-{half[-1]['minute']} "
                                f"(bound {SLOPE_MAX_MIB_PER_MIN})")
        # fds and threads: connection pools fill in the first minutes, as the
        # load finds its concurrency, so (as for the slope) the level is
        # judged from the second half on: the smallest of its first three
        # samples against the smallest of the last three (the smallest, so
        # that a connect/close cycle in flight at a sampling instant does
        # not count). Runs too short for that compare with the warm-up.
        settled = half[:3] if len(half) >= 6 else [warm]
        tail = samples[-3:]
        base_fds = min(s["fds"] for s in settled)
        base_threads = min(s["threads"] for s in settled)
        end_fds = min(s["fds"] for s in tail)
        end_threads = min(s["threads"] for s in tail)
        since = f"from minute {settled[0]['minute']}"
        if end_fds > base_fds + FD_SLACK:
            bad.append("fds")
            failures.append(f"{lang}: fds grew {base_fds} -> {end_fds} {since} (slack {FD_SLACK})")
        if end_threads > base_threads + THREAD_SLACK:
            bad.append("threads")
            failures.append(f"{lang}: threads grew {base_threads} -> {end_threads} {since} "
                            f"(slack {THREAD_SLACK})")
        print(f"{lang:<7}{warm['rss_kib'] / 1024:>9.1f}M{end['rss_kib'] / 1024:>8.1f}M"
              f"{bound / 1024:>7.1f}M{slope_text:>13}{base_fds:>4}->{end_fds:<4}"
              f"{base_threads:>4}->{end_threads:<4}  {'ok' if not bad else 'FAIL ' + ','.join(bad)}")

    print("\nCounters per process and backend: at warm-up (minute 1) -> final")
    print(f"{'lang':<7}{'backend':<10}{'ops':>18}{'lost':>6}{'late':>6}{'errors':>8}{'waits':>8}"
          f"{'long_holds':>11}{'connects':>9}{'watch_ev':>9}")
    for lang, p in procs.items():
        first = next((s for s in p["samples"] if s is not None), None)
        for b in backends:
            start = first["stats"].get(b, (0, {}))[1] if first else {}
            final = p["final"].get(b, (0, {}))[1]
            get = lambda c, k: c.get(k, 0)  # noqa: E731
            print(f"{lang:<7}{b:<10}{get(start, 'ops'):>8} -> {get(final, 'ops'):<6}"
                  f"{get(final, 'lost'):>6}{get(final, 'lost_after_release'):>6}{get(final, 'errors'):>8}{get(final, 'waits'):>8}"
                  f"{get(final, 'long_holds'):>11}{get(final, 'connects'):>9}"
                  f"{get(final, 'watch_events'):>9}")
            if get(final, "lost"):
                failures.append(f"{lang}/{b}: {get(final, 'lost')} lost lease(s)")
            if get(final, "lost_after_release"):
                failures.append(f"{lang}/{b}: {get(final, 'lost_after_release')} lost callback(s) "
                                f"for leases whose release had begun (see {lang}.log)")
            if get(final, "errors"):
                failures.append(f"{lang}/{b}: {get(final, 'errors')} failed operation(s) "
                                f"(see {lang}.log)")
            if not get(final, "long_holds"):
                failures.append(f"{lang}/{b}: no long lease held to its end")


if __name__ == "__main__":
    sys.exit(main())
