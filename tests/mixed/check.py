"""Judges the mixed-client fault suite's histories (tests/mixed/run.sh,
tests/mixed/grants.py): the fenced-store and time judge, the second opinion
beside Porcupine (tests/mixed/porcupine).

    python3 check.py judge HISTORY [--store-log F] --limits NAME=LIMIT,...
        --backend B [--seed S] [--grants N] [--elapsed SECONDS]
        [--langs L,...] [--problem TEXT]...
    python3 check.py clocks PROBES

`judge`: HISTORY holds the lines `OP LANG PID ID NAME TOKEN T0 T1 RESULT`
(run.sh describes them; T0 and T1 are CLOCK_MONOTONIC nanoseconds around
the call, the one clock every process reads). A grant is an `acquire` with
RESULT `ok`; it is *confirmed* when one of its releases returned `ok` (the
backend vouched that the lease held until then). Violations:

- a malformed line;
- two grants of one name with one fencing token, or a grant that began
  after another ended with a token not above it (tokens rise per name);
- on a mutex, a grant made entirely inside a confirmed hold (after the
  confirmed grant returned, before its release was called), or two
  confirmed holds that overlap; on a semaphore, more confirmed holds at
  once than its limit;
- on a mutex, a write of a confirmed grant the fenced store rejected as
  stale (a newer holder had written while it still held);
- fewer grants than --grants, a language in --langs with none, and every
  --problem the run reported (a fault that failed, a contender that died).

Prints `mixed: BACKEND: grants G (LANG n, ...) in E s, faults F (KIND n,
...), writes accepted A, stale writes rejected S, losses reported L, seed
X, violations V` (tests/count.py counts these lines), then one line per
violation; exits 1 if there is any.

`clocks`: PROBES holds "LANG NS" lines, one per probe process, in the order
the processes ran one after another; the readings must increase, or the
languages do not read one clock.
"""

import argparse
import bisect
import sys
from collections import Counter, defaultdict

OPS = {"acquire", "write", "release", "lost", "force", "killed", "fault", "done"}


class Grant:
    """One acquired lease and what became of it."""

    def __init__(self, fields):
        self.lang, self.pid, self.id, self.name, self.token = fields[1:6]
        self.t0, self.t1 = int(fields[6]), int(fields[7])
        self.released_at = None  # the confirmed release's call time
        self.lost = False

    def numeric_token(self):
        return int(self.token) if self.token.isdigit() else None


def parse(path, violations):
    """The history's records (lists of 9 fields)."""
    records = []
    with open(path, errors="replace") as history:
        for number, line in enumerate(history, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 9 or fields[0] not in OPS or not (fields[6].isdigit() and fields[7].isdigit()):
                violations.append(f"line {number} is malformed: {line.strip()!r}")
                continue
            records.append(fields)
    return records


def grants_of(records, violations):
    grants, by_id = [], {}
    for fields in records:
        op, ident, result = fields[0], fields[3], fields[8]
        if op == "acquire" and result == "ok":
            if ident in by_id:
                violations.append(f"grant id {ident} acquired twice")
                continue
            grant = Grant(fields)
            by_id[ident] = grant
            grants.append(grant)
        elif op == "release" and ident in by_id:
            if result == "ok" and by_id[ident].released_at is None:
                by_id[ident].released_at = int(fields[6])
            elif result == "lost":
                by_id[ident].lost = True
        elif op == "lost" and ident in by_id:
            by_id[ident].lost = True
    return grants, by_id


def check_tokens(name, grants, violations):
    """Unique tokens; a grant begun after another ended has a higher one."""
    tokened = [g for g in grants if g.numeric_token() is not None]
    seen = {}
    for g in tokened:
        if g.token in seen:
            violations.append(f"{name}: token {g.token} granted to {seen[g.token]} and {g.id}")
        seen[g.token] = g.id
    by_end = sorted(tokened, key=lambda g: g.t1)
    best, best_id, i = -1, None, 0
    for g in sorted(tokened, key=lambda g: g.t0):
        while i < len(by_end) and by_end[i].t1 < g.t0:
            if by_end[i].numeric_token() > best:
                best, best_id = by_end[i].numeric_token(), by_end[i].id
            i += 1
        if g.numeric_token() <= best:
            violations.append(f"{name}: {g.id} got token {g.token} after {best_id} got {best}")


def check_exclusion(name, limit, grants, violations):
    confirmed = [g for g in grants if g.released_at is not None]
    if limit == 1:
        starts = sorted(grants, key=lambda g: g.t0)
        keys = [g.t0 for g in starts]
        for c in confirmed:
            i = bisect.bisect_right(keys, c.t1)
            while i < len(starts) and starts[i].t0 < c.released_at:
                g = starts[i]
                if g is not c and g.t1 < c.released_at:
                    violations.append(
                        f"{name}: {g.id} granted within {c.id}'s confirmed hold "
                        f"({c.t1}..{c.released_at})")
                i += 1
    events = sorted([(c.t1, 1, c.id) for c in confirmed] + [(c.released_at, -1, c.id) for c in confirmed],
                    key=lambda e: (e[0], e[1]))
    holding = 0
    for when, step, ident in events:
        holding += step
        if holding > limit:
            violations.append(f"{name}: {holding} confirmed holds at {when} (limit {limit}), {ident} among them")


def judge(args):
    violations = []
    records = parse(args.history, violations)
    grants, by_id = grants_of(records, violations)
    limits = dict(item.split("=") for item in args.limits.split(",") if item)
    per_name = defaultdict(list)
    for g in grants:
        per_name[g.name].append(g)
    for name, group in sorted(per_name.items()):
        limit = int(limits.get(name, 1))
        check_tokens(name, group, violations)
        check_exclusion(name, limit, group, violations)
    accepted = stale = 0
    for fields in records:
        if fields[0] != "write" or int(limits.get(fields[4], 1)) != 1:
            continue
        grant = by_id.get(fields[3])
        if fields[8] == "ok":
            accepted += 1
        elif fields[8] == "stale":
            stale += 1
            if grant is not None and grant.released_at is not None:
                violations.append(f"{fields[4]}: {grant.id}'s write was stale, yet its release was confirmed")
    if args.store_log:
        stale_at_store = 0
        with open(args.store_log) as store:
            for line in store:
                fields = line.split()
                if len(fields) == 4 and fields[3] == "stale" and int(limits.get(fields[0], 1)) == 1:
                    stale_at_store += 1
        stale = max(stale, stale_at_store)
    faults = Counter(f[1] for f in records if f[0] == "fault")
    faults.update("force" for f in records if f[0] == "force" and f[8] == "ok")
    losses = sum(1 for g in grants if g.lost)
    langs = Counter(g.lang for g in grants)
    wanted = [lang for lang in args.langs.split(",") if lang]
    for lang in wanted:
        if langs[lang] == 0:
            violations.append(f"{lang} was granted nothing")
    if len(grants) < args.grants:
        violations.append(f"{len(grants)} grants, fewer than {args.grants}")
    violations.extend(args.problem)
    per_lang = ", ".join(f"{lang} {langs[lang]}" for lang in sorted(set(wanted) | set(langs)))
    per_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(faults.items())) or "none"
    print(f"mixed: {args.backend}: grants {len(grants)} ({per_lang}) in {args.elapsed} s, "
          f"faults {sum(faults.values())} ({per_kind}), writes accepted {accepted}, "
          f"stale writes rejected {stale}, losses reported {losses}, seed {args.seed}, "
          f"violations {len(violations)}")
    for violation in violations[:50]:
        print(f"mixed: violation: {violation}")
    if len(violations) > 50:
        print(f"mixed: violation: ... and {len(violations) - 50} more")
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
    run = commands.add_parser("judge")
    run.add_argument("history")
    run.add_argument("--store-log")
    run.add_argument("--limits", required=True)
    run.add_argument("--backend", required=True)
    run.add_argument("--seed", default="-")
    run.add_argument("--grants", type=int, default=0)
    run.add_argument("--elapsed", default="-")
    run.add_argument("--langs", default="")
    run.add_argument("--problem", action="append", default=[])
    clocks = commands.add_parser("clocks")
    clocks.add_argument("probes")
    args = parser.parse_args()
    if args.command == "clocks":
        return judge_clocks(args)
    return judge(args)


if __name__ == "__main__":
    sys.exit(main())
