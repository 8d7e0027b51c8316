"""Counts the tests of one phase of the suite from its runner's own output,
and prints the suite's summary (tests/suite.sh and tests/run.sh use it).

    count.py phase NAME FORMAT EXIT_STATUS LOG RECORDS
        count LOG (the phase's whole output) as FORMAT, print "=== NAME: ..."
        and append the phase's record to RECORDS
    count.py skip NAME REASON RECORDS
        record a phase that did not run: "phase NAME: skipped (REASON)"
    count.py summary RECORDS
        print "phase NAME: ..." for every record, then "tests: N passed,
        N failed, N skipped across P phases (F phases failed)"; exit 1 if a
        phase failed

FORMATs (what each runner prints):
    cargo     cargo test: "test result: ok. P passed; F failed; I ignored; ..."
              per test binary (ignored counts as skipped); a binary that died
              without its result line ("error: test failed, to rerun pass ...")
              counts as 1 failed
    pytest    pytest's final line: "F failed, P passed, S skipped, E errors in
              1.2s" (errors count as failed, xfailed as skipped, xpassed as
              passed)
    node      node --test: "# pass P", "# fail F", "# cancelled C", "# skipped
              S", "# todo T" (or "ℹ pass P", the spec reporter); cancelled
              counts as failed, todo as skipped
    c         bindings-c/tests/c/test_polylock.c, per run: "# C ABI on URL: N
              checks, F failed" (N - F passed), and "# ...: skipped (...)" lines
              (1 skipped each)
    minitest  Ruby minitest: "R runs, A assertions, F failures, E errors, S
              skips" (R - F - E - S passed; failures and errors failed)
    go        go test -v: "--- PASS/FAIL/SKIP: Name" lines; a test with
              subtests counts through its subtests only
    mixed     tests/mixed/run.sh, per backend and judge: "mixed: BACKEND:
              grants ..., violations V" (tests/mixed/check.py) and
              "porcupine: BACKEND: ..., violations V, unknown U" (1 passed
              if V and U are 0, else 1 failed)
    fuzz      tests/fuzz/run.sh, per fuzz target: "fuzz TARGET: ok, ..." or
              "fuzz TARGET: FAILED (...)"
    single    the phase is one test: its exit status decides

A phase is ok when it exited 0 and counted no failure. One that failed
without counts shows "FAILED (no counts)" and counts as 1 failed; one that
failed although its counts show no failure (a crash after the counts, a
valgrind error, go vet) counts as 1 failed more.
"""

import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def cargo(lines):
    result = re.compile(r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored;")
    died = re.compile(r"^error: (test|doctest) failed, to rerun pass ")
    passed = failed = skipped = reported_failed = failed_targets = 0
    seen = False
    for line in lines:
        m = result.match(line)
        if m:
            seen = True
            passed += int(m[2])
            failed += int(m[3])
            skipped += int(m[4])
            reported_failed += m[1] == "FAILED"
        elif died.match(line):
            failed_targets += 1
    # A target that failed without a FAILED result line died mid-run.
    failed += max(0, failed_targets - reported_failed)
    return (passed, failed, skipped) if seen or failed_targets else None


def pytest(lines):
    final = re.compile(
        r"^=*\s*(?P<body>(no tests ran|\d+ \w+(, \d+ \w+)*)) in [\d.]+s( \([\d:]+\))?\s*=*$"
    )
    counts = None
    for line in lines:
        m = final.match(line.strip())
        if m:
            counts = {}
            for n, word in re.findall(r"(\d+) (\w+)", m["body"]):
                counts[word] = counts.get(word, 0) + int(n)
    if counts is None:
        return None
    get = lambda *words: sum(counts.get(w, 0) for w in words)
    return (
        get("passed", "xpassed"),
        get("failed", "error", "errors"),
        get("skipped", "xfailed"),
    )


def node(lines):
    summary = re.compile(r"^(?:# |ℹ )(pass|fail|cancelled|skipped|todo) (\d+)$")
    counts = {}
    for line in lines:
        m = summary.match(line)
        if m:
            counts[m[1]] = counts.get(m[1], 0) + int(m[2])
    if not counts:
        return None
    get = lambda *words: sum(counts.get(w, 0) for w in words)
    return get("pass"), get("fail", "cancelled"), get("skipped", "todo")


def c(lines):
    run = re.compile(r"^# C ABI on .*: (\d+) checks, (\d+) failed$")
    skip = re.compile(r"^# [^:]+: skipped\b")
    passed = failed = skipped = 0
    seen = False
    for line in lines:
        m = run.match(line)
        if m:
            seen = True
            passed += int(m[1]) - int(m[2])
            failed += int(m[2])
        elif skip.match(line):
            skipped += 1
    return (passed, failed, skipped) if seen else None


def minitest(lines):
    final = re.compile(r"^(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors, (\d+) skips")
    passed = failed = skipped = 0
    seen = False
    for line in lines:
        m = final.match(line)
        if m:
            seen = True
            runs, _, failures, errors, skips = map(int, m.groups())
            passed += runs - failures - errors - skips
            failed += failures + errors
            skipped += skips
    return (passed, failed, skipped) if seen else None


def go(lines):
    verdict = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)")
    results = {}
    for line in lines:
        m = verdict.match(line)
        if m:
            results[m[2]] = m[1]
    if not results:
        return None
    parents = {p for name in results for p in prefixes(name)}
    leaves = [status for name, status in results.items() if name not in parents]
    return leaves.count("PASS"), leaves.count("FAIL"), leaves.count("SKIP")


def prefixes(name):
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def mixed(lines):
    judged = re.compile(
        r"^(?:mixed: \S+: grants .*, violations (\d+)"
        r"|porcupine: \S+: .*, violations (\d+), unknown (\d+))$"
    )
    passed = failed = 0
    seen = False
    for line in lines:
        m = judged.match(line)
        if m:
            seen = True
            bad = sum(int(g) for g in m.groups() if g)
            if bad == 0:
                passed += 1
            else:
                failed += 1
    return (passed, failed, 0) if seen else None


def fuzz(lines):
    verdict = re.compile(r"^fuzz \S+: (ok|FAILED)\b")
    passed = failed = 0
    seen = False
    for line in lines:
        m = verdict.match(line)
        if m:
            seen = True
            passed += m[1] == "ok"
            failed += m[1] == "FAILED"
    return (passed, failed, 0) if seen else None


def single(lines):
    return None


FORMATS = {f.__name__: f for f in (cargo, pytest, node, c, minitest, go, mixed, fuzz, single)}


def counts_text(passed, failed, skipped):
    text = f"{passed} passed, {failed} failed"
    return text + (f", {skipped} skipped" if skipped else "")


def phase(name, fmt, status, log, records):
    status = int(status)
    with open(log, errors="replace") as f:
        lines = [ANSI.sub("", line.rstrip("\r\n")) for line in f]
    counts = FORMATS[fmt](lines)
    if counts is None:
        if status == 0:
            state, (passed, failed, skipped) = "ok", (1, 0, 0)
            text = "ok (1 passed, 0 failed)" if fmt == "single" else "ok (no counts: 1 passed)"
        else:
            state, (passed, failed, skipped) = "failed", (0, 1, 0)
            text = "FAILED (no counts)"
    else:
        passed, failed, skipped = counts
        if status == 0 and failed == 0:
            state, text = "ok", f"ok ({counts_text(*counts)})"
        elif failed == 0:
            state, failed = "failed", 1
            text = f"FAILED ({counts_text(*counts)}; exit status {status}, counted as 1 failed)"
        else:
            state, text = "failed", f"FAILED ({counts_text(*counts)})"
    with open(records, "a") as f:
        f.write(f"{name}\t{state}\t{passed}\t{failed}\t{skipped}\t{text}\n")
    print(f"=== {name}: {text}")
    return 0


def skip(name, reason, records):
    with open(records, "a") as f:
        f.write(f"{name}\tskipped\t0\t0\t0\tskipped ({reason})\n")
    return 0


def summary(records):
    passed = failed = skipped = phases = failed_phases = 0
    with open(records) as f:
        for line in f:
            name, state, p, fl, s, text = line.rstrip("\n").split("\t", 5)
            print(f"phase {name}: {text}")
            phases += 1
            failed_phases += state == "failed"
            passed, failed, skipped = passed + int(p), failed + int(fl), skipped + int(s)
    print(
        f"tests: {passed} passed, {failed} failed, {skipped} skipped "
        f"across {phases} phases ({failed_phases} phases failed)"
    )
    return 1 if failed_phases or failed else 0


def main(argv):
    commands = {"phase": (phase, 5), "skip": (skip, 3), "summary": (summary, 1)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "phase" and argv[3] not in FORMATS:
        print(f"count.py: unknown format {argv[3]} (one of {', '.join(FORMATS)})", file=sys.stderr)
        return 2
    command, _ = commands[argv[1]]
    return command(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
