"""Judges a mixed-client log (tests/mixed/run.sh): lines "start LANG TOKEN" /
"end LANG TOKEN" appended by contenders in different languages.

Replays the log through a fenced store (accepts a write only if its token is
not below the highest accepted) and checks: every hold is a start directly
followed by its own end (no overlapping holds), tokens strictly increase,
the store rejected nothing, and every language held ROUNDS times.

    python3 check.py LOG ROUNDS LANG...
"""

import sys
from collections import Counter


def main() -> int:
    log, rounds, langs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    records = [line.split() for line in open(log) if line.strip()]
    violations = []
    highest, accepted, rejected = -1, 0, 0
    holds = Counter()
    for i in range(0, len(records), 2):
        start, end = records[i], records[i + 1] if i + 1 < len(records) else None
        if start[0] != "start" or end is None or end[0] != "end" or start[1:] != end[1:]:
            violations.append(f"overlapping or broken hold at record {i}: {start} {end}")
            continue
        token = int(start[2])
        if token > highest:
            highest, accepted = token, accepted + 1
        else:
            rejected += 1
            violations.append(f"token {token} not above {highest} ({start[1]})")
        holds[start[1]] += 1
    for lang in langs:
        if holds[lang] != rounds:
            violations.append(f"{lang} held {holds[lang]} times, not {rounds}")
    per_lang = ", ".join(f"{lang} {holds[lang]}" for lang in langs)
    print(
        f"mixed: holds {sum(holds.values())} ({per_lang}), writes accepted {accepted}, "
        f"stale writes rejected {rejected}, violations {len(violations)}"
    )
    for violation in violations:
        print(f"mixed: violation: {violation}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
