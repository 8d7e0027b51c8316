"""Judges the mixed-client runs (tests/mixed/run.sh).

    python3 check.py holds LOG ROUNDS BACKEND JUDGE [--server-log PATH --name NAME] LANG...
    python3 check.py clocks PROBES

`holds`: LOG holds the lines "start LANG TOKEN NS" and "end LANG TOKEN NS"
that contenders in different languages (one process each) appended inside
their holds of one lock: TOKEN is the grant's fencing token ("-" when the
backend has none), NS the contender's reading of CLOCK_MONOTONIC in
nanoseconds, taken after acquire returned (start) and before release was
called (end). Checks, for every JUDGE:

- every start is directly followed by its own end (the lines are written
  inside the holds, so under mutual exclusion they cannot interleave);
- by time: no two holds overlap. Every process reads the same clock (the
  kernel's CLOCK_MONOTONIC, shared by all processes of one boot; `clocks`
  checks the languages agree), and a hold's next holder is granted only
  after its release, so each start must be later than every earlier end;
- every language held ROUNDS times.

JUDGE `fenced` (Consul, MongoDB) also replays the log through a fenced store
(accepts a write only if its token is not below the highest accepted) and
wants every token to rise. JUDGE `time` (LDLM: no fencing tokens) relies on
the clock alone; with --server-log (the LDLM server's JSON log) it also
wants as many server sessions holding the lock as languages: each
contender its own process, connection and session.

Prints "mixed: holds N (LANG n, ...) on BACKEND, judged by ..., violations V"
(tests/count.py counts these lines) and one line per violation.

`clocks`: PROBES holds "LANG NS" lines, one per probe process, in the order
the processes ran one after another; the readings must increase, or the
languages do not read one clock.
"""

import argparse
import json
import sys
from collections import Counter


def parse(log):
    """The log's records as (kind, lang, token, ns) and malformed lines."""
    records, malformed = [], []
    for number, line in enumerate(open(log), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 4 and fields[0] in ("start", "end") and fields[3].isdigit():
            records.append((fields[0], fields[1], fields[2], int(fields[3])))
        else:
            malformed.append(f"line {number} is not 'start|end LANG TOKEN NS': {line.strip()!r}")
    return records, malformed


def pairs_in_file_order(records, violations):
    """Each start with the end right after it; the starts, for the fenced store."""
    starts = []
    for i in range(0, len(records), 2):
        start = records[i]
        end = records[i + 1] if i + 1 < len(records) else None
        if start[0] != "start" or end is None or end[0] != "end" or start[1:3] != end[1:3]:
            violations.append(f"overlapping or broken hold at record {i}: {start} {end}")
            continue
        starts.append(start)
    return starts


def holds_by_time(records, violations):
    """Each language's holds as (start_ns, end_ns, lang), from its own lines."""
    holds, open_start = [], {}
    for kind, lang, _token, ns in records:
        if kind == "start":
            if lang in open_start:
                violations.append(f"{lang} started a hold at {ns} inside its own hold")
            open_start[lang] = ns
        elif lang not in open_start:
            violations.append(f"{lang} ended a hold at {ns} it never started")
        else:
            start = open_start.pop(lang)
            if ns < start:
                violations.append(f"{lang}'s hold ends ({ns}) before it starts ({start})")
            holds.append((start, ns, lang))
    for lang, ns in open_start.items():
        violations.append(f"{lang}'s hold from {ns} never ended")
    return holds


def overlaps(holds, violations):
    """How many holds start before an earlier-started hold ended."""
    count, latest_end, latest = 0, None, None
    for start, end, lang in sorted(holds):
        if latest_end is not None and start <= latest_end:
            count += 1
            violations.append(
                f"{lang}'s hold from {start} overlaps {latest[2]}'s {latest[0]}..{latest[1]}"
            )
        if latest_end is None or end > latest_end:
            latest_end, latest = end, (start, end, lang)
    return count


def fenced_store(starts, violations):
    """Replays the holds' tokens through a fenced store: (accepted, rejected)."""
    highest, accepted, rejected = -1, 0, 0
    for _kind, lang, token, _ns in starts:
        if not token.isdigit():
            rejected += 1
            violations.append(f"{lang} held without a fencing token ({token})")
            continue
        if int(token) > highest:
            highest, accepted = int(token), accepted + 1
        else:
            rejected += 1
            violations.append(f"token {token} not above {highest} ({lang})")
    return accepted, rejected


def server_sessions(server_log, name):
    """The LDLM server sessions its log shows granted lock NAME."""
    sessions = set()
    for line in open(server_log):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(entry, dict)
            and str(entry.get("msg", "")).endswith("ock response")
            and entry.get("lock") == name
            and entry.get("locked") is True
        ):
            sessions.add(entry.get("session_id"))
    return sessions


def judge_holds(args):
    """The `holds` subcommand; its exit status."""
    records, violations = parse(args.log)
    starts = pairs_in_file_order(records, violations)
    holds = holds_by_time(records, violations)
    overlapping = overlaps(holds, violations)
    counts = Counter(lang for _start, _end, lang in holds)
    for lang in args.langs:
        if counts[lang] != args.rounds:
            violations.append(f"{lang} held {counts[lang]} times, not {args.rounds}")
    per_lang = ", ".join(f"{lang} {counts[lang]}" for lang in args.langs)
    summary = f"mixed: holds {len(holds)} ({per_lang}) on {args.backend}, "
    if args.judge == "fenced":
        accepted, rejected = fenced_store(starts, violations)
        summary += (
            f"judged by fencing token and CLOCK_MONOTONIC: writes accepted {accepted}, "
            f"stale writes rejected {rejected}, overlapping holds {overlapping}"
        )
    else:
        summary += f"judged by CLOCK_MONOTONIC (no fencing tokens): overlapping holds {overlapping}"
        if args.server_log:
            sessions = server_sessions(args.server_log, args.name)
            summary += f", server sessions {len(sessions)}"
            if len(sessions) != len(args.langs):
                violations.append(
                    f"the server granted {args.name} to {len(sessions)} sessions, "
                    f"not one per contender ({len(args.langs)})"
                )
    print(f"{summary}, violations {len(violations)}")
    for violation in violations:
        print(f"mixed: violation: {violation}")
    return 1 if violations else 0


def judge_clocks(args):
    """The `clocks` subcommand; its exit status."""
    probes = [line.split() for line in open(args.probes) if line.strip()]
    readings = [(lang, int(ns)) for lang, ns in probes]
    order = ", ".join(lang for lang, _ns in readings)
    behind = [
        f"{later[0]} read {later[1]}, not after {earlier[0]}'s {earlier[1]}"
        for earlier, later in zip(readings, readings[1:])
        if later[1] <= earlier[1]
    ]
    if behind or len(readings) < 2:
        print(f"mixed clocks: {order} do not read one clock: {'; '.join(behind) or 'no probes'}")
        return 1
    print(f"mixed clocks: {order} read one clock (readings rise in the order the processes ran)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    holds = commands.add_parser("holds")
    holds.add_argument("log")
    holds.add_argument("rounds", type=int)
    holds.add_argument("backend")
    holds.add_argument("judge", choices=["fenced", "time"])
    holds.add_argument("langs", nargs="+")
    holds.add_argument("--server-log")
    holds.add_argument("--name")
    clocks = commands.add_parser("clocks")
    clocks.add_argument("probes")
    args = parser.parse_args()
    if args.command == "clocks":
        return judge_clocks(args)
    if args.server_log and not args.name:
        parser.error("--server-log needs --name")
    return judge_holds(args)


if __name__ == "__main__":
    sys.exit(main())
