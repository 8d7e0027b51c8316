#!/usr/bin/env python3
"""The bad-input matrix: README's table, made from what the tests saw.

Every binding's bad-input test (core/tests/bad_input.rs,
bindings-python/tests/test_bad_input.py, bindings-node/test/bad-input.test.js,
bindings-c/tests/c/test_bad_input.c, bindings-ruby/test/test_bad_input.rb,
bindings-go/bad_input_test.go) appends one JSON line per case,
{"case": ID, "lang": LANG, "error": TEXT}, to $POLYLOCK_BAD_INPUT_RECORDS.

  table.py render RECORDS...                 print the Markdown table
  table.py check RECORDS... --readme README  exit 1 (with a diff) unless README's
                                             table equals it and every language
                                             produced records
  table.py write RECORDS... --readme README  rewrite README's table

RECORDS are files of JSON lines, or directories whose *.jsonl files are read.
A case a language cannot express has no record there and shows "—". Cases
a language recorded with different outcomes show them all, sorted, joined
by " / ".
"""

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

BEGIN = "<!-- bad-input:begin -->"
END = "<!-- bad-input:end -->"

LANGS = ["rust", "python", "node", "c", "ruby", "go"]

# (id, what the case passes), in the table's order.
ROWS = [
    ("name-empty", "lock name `\"\"`"),
    ("name-too-long", "lock name of 257 bytes (256 is the limit)"),
    ("name-control-char", "lock name with a newline or a NUL byte"),
    ("name-non-utf8", "lock name that is not UTF-8 (bytes `ff fe`; Python, Node: a lone surrogate, bytes / a Buffer)"),
    ("name-null", "no lock name (C `NULL`, `None`, `null`, `nil`)"),
    ("value-huge", "a 10 MB lock name or holder value"),
    ("url-null", "no URL (C `NULL`, `None`, `null`, `nil`)"),
    ("url-invalid", "a URL that is not one (`not a url`, bad bytes)"),
    ("url-unknown-scheme", "`nosuch://host`"),
    ("out-null", "C: a `NULL` out-pointer"),
    ("ttl-zero", "TTL 0"),
    ("ttl-too-large", "TTL far above 24 h (`u64::MAX` ms, 1e12 s, infinity)"),
    ("limit-zero", "semaphore limit 0"),
    ("limit-negative", "semaphore limit -1"),
    ("limit-huge", "semaphore limit 2³²−1, or past the binding's integer type"),
    ("timeout-negative", "acquire timeout -1"),
    ("double-release", "release, then release again"),
    ("release-after-loss", "release after the lease was lost (Rust: an operator's force release; else TTL expiry, auto-renew off)"),
    ("use-after-close", "a lock used after its client was closed or dropped"),
    ("handle-freed", "a freed handle used (C: lock and client; Go: a closed client; Rust: a closed `LeaseSlot`)"),
    ("handle-foreign", "C: a pointer never handed out, or one kind's handle as another"),
    ("handle-null", "C: a `NULL` handle"),
    ("callback-throws", "a lost callback that raises / throws / panics"),
    ("threads-one-handle", "16 threads on one lock handle at once (Node: 16 acquisitions; Go: 16 unlocks)"),
]
KNOWN = {case for case, _ in ROWS}


def read_records(paths):
    """{(case, lang): set of texts}; an error for a line that is not a record."""
    files = []
    for path in map(Path, paths):
        files.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    seen = {}
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                case, lang, error = record["case"], record["lang"], record["error"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SystemExit(f"table.py: {file}:{number}: not a record ({exc}): {line!r}")
            if case not in KNOWN:
                raise SystemExit(f"table.py: {file}:{number}: unknown case {case!r} (add it to ROWS)")
            if lang not in LANGS:
                raise SystemExit(f"table.py: {file}:{number}: unknown language {lang!r}")
            seen.setdefault((case, lang), set()).add(str(error))
    return seen


def cell(texts):
    if not texts:
        return "—"
    shown = []
    for text in sorted(texts):
        text = text.replace("|", "\\|")
        shown.append(f"`{text}`" if re.fullmatch(r"[\w.:]+", text) else text)
    return " / ".join(shown)


def render(seen):
    lines = [
        "| case | input | " + " | ".join(LANGS) + " |",
        "|---|---|" + "---|" * len(LANGS),
    ]
    for case, what in ROWS:
        cells = [cell(seen.get((case, lang))) for lang in LANGS]
        lines.append(f"| `{case}` | {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def split_readme(text, readme):
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"table.py: {readme} has no {BEGIN} … {END} markers")
    head = text[: start + len(BEGIN)] + "\n"
    return head, text[start + len(BEGIN) : end].strip("\n") + "\n", text[end:]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["render", "check", "write"])
    parser.add_argument("records", nargs="+")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    seen = read_records(args.records)
    table = render(seen)
    if args.command == "render":
        sys.stdout.write(table)
        return 0
    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    head, current, tail = split_readme(text, readme)
    if args.command == "write":
        readme.write_text(head + table + tail, encoding="utf-8")
        print(f"table.py: wrote the bad-input table into {readme}")
        return 0
    failed = False
    missing = [lang for lang in LANGS if not any(lang == key[1] for key in seen)]
    if missing:
        print(f"table.py: no records from {', '.join(missing)}", file=sys.stderr)
        failed = True
    if current != table:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            table.splitlines(keepends=True),
            f"{readme} (bad-input table)",
            "rendered from the records",
        )
        sys.stderr.writelines(diff)
        print(
            f"table.py: {readme}'s bad-input table differs from the tests' records; "
            "regenerate it with tests/bad-input/run.sh write",
            file=sys.stderr,
        )
        failed = True
    if failed:
        return 1
    print(f"table.py: {readme}'s bad-input table matches the records of {', '.join(LANGS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
