#!/usr/bin/env python3
"""Writes hand-made seed inputs for fuzz_calls.c into the directory argv[1].

Each seed is a short call sequence in the harness's encoding (one opcode
byte, then the bytes its arguments consume; see run_ops in fuzz_calls.c).
run.sh does not use this: the committed corpus/ is these seeds, run through
the harness and minimized with -merge=1 (files named by their SHA-1).
Regenerate with (fuzz_calls built as run.sh builds it)
  python3 seeds.py /tmp/seeds && mkdir corpus && ./fuzz_calls -merge=1 corpus /tmp/seeds
"""
import os
import sys

# Handle picks (pick_handle): mode byte, then its argument bytes.
NULL = [0]
LOCAL = [1]
RANDOM = [2] + [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0]
TAGGED = [3, 7]


def other(i):
    return [4, i]


def slot(i):
    return [5, i]


# Text picks (pick_text).
def fixed(i):
    return [1, i]


TNULL = [0]
EMPTY = [6]


def raw(data):
    return [3, len(data)] + list(data)


def non_utf8(i, byte=0x7F, truncated=1):
    return [4, i, byte, truncated]


def huge(which, char=ord("a")):
    return [5, which, char]


def suffixed(i, text):
    return [7, i, len(text)] + [c - 0x20 for c in text.encode()]


def url(i):
    return [0, i]  # fixed_urls[i]


def url_bytes(data, prefixed=True):
    return [3, len(data), 1 if prefixed else 0] + list(data)


URL_NULL = [15]


def connect(i, u=url(0), null_out=False):
    return [0, i] + u + [0 if null_out else 1]


def client_free(h):
    return [1] + h


def caps(h, null_out=False):
    return [2] + h + [0 if null_out else 1]


def lock_new(i, client, name=fixed(0), value=TNULL, limit=[0], ttl=[0], null_out=False):
    return [3, i] + client + name + value + limit + ttl + [0 if null_out else 1]


def lock_free(h):
    return [5] + h


def try_acquire(h, null_out=False):
    return [6] + h + [0 if null_out else 1]


def acquire(h, timeout=2):
    return [8] + h + [timeout]


def acquire_with(h, mode, other_h=NULL, client_h=NULL, forever=False, no_hook=False):
    out = [9] + h + [mode] + other_h + client_h
    if mode == 1:  # HOOK_CANCEL
        out += [1] if forever else [0, 2]
    else:
        out += [2]
    if mode == 0:
        out += [1 if no_hook else 0]
    return out


def cancel(h):
    return [10] + h


def auto_renew(h, on):
    return [11] + h + [1 if on else 0]


def renew(h):
    return [12] + h


def release2(h):
    return [13] + h


def queries(h):
    return [15] + h


def fencing(h, nulls=0):
    return [16] + h + [nulls]


def holder(h, null_out=False):
    return [17] + h + [0 if null_out else 1]


def on_lost(h, how):
    out = [18] + h + [how]
    if how == 2:
        out += [0, 0, 0, 0, 0, 0, 0x10, 0x20, 0]
    return out


def register(c, ns=fixed(0), name=fixed(0), value=fixed(0), unregister=True):
    return [20] + c + ns + name + value + [1 if unregister else 0]


def whereis(c, ns=fixed(0), name=fixed(0), null_out=False):
    return [21] + c + ns + name + [0 if null_out else 1]


def unregister(c, name=fixed(0)):
    return [22] + c + name


def statics(status):
    return [23] + list(status.to_bytes(8, "big", signed=True))


BASE = connect(0) + lock_new(0, slot(0))
PAIR = connect(0) + lock_new(0, slot(0)) + lock_new(1, slot(0))

SEEDS = {
    "empty": [],
    "connect": connect(0),
    "connect-null-out": connect(0, null_out=True),
    "connect-null-url": connect(0, URL_NULL),
    "connect-bad-urls": sum((connect(1, url(i)) for i in range(4, 20)), []),
    "connect-bytes": connect(0, url_bytes(b"fuzz\xff")) + connect(1, url_bytes(b"\x00x", False)),
    "mutex": BASE + try_acquire(slot(0)) + queries(slot(0)) + fencing(slot(0))
    + holder(slot(0)) + renew(slot(0)) + release2(slot(0)),
    "contend": PAIR + try_acquire(slot(0)) + try_acquire(slot(1)) + acquire(slot(1), 3)
    + release2(slot(0)) + acquire(slot(1), 3) + release2(slot(1)),
    "semaphore": connect(0) + lock_new(0, slot(0), limit=[2]) + lock_new(1, slot(0), limit=[2])
    + lock_new(2, slot(0)) + try_acquire(slot(0)) + try_acquire(slot(1)) + try_acquire(slot(2)),
    "limits": connect(0) + sum((lock_new(i, slot(0), limit=[m]) for i, m in enumerate([0, 1, 2, 4, 5, 6])), []),
    "ttls": connect(0) + sum((lock_new(i % 6, slot(0), ttl=[m]) for i, m in enumerate([1, 2, 4, 5, 6, 8, 16])), [])
    + lock_new(0, slot(0), ttl=[3, 0, 0, 0, 0, 0, 0, 0x03, 0xE8]),
    "names": connect(0) + lock_new(0, slot(0), name=TNULL) + lock_new(1, slot(0), name=EMPTY)
    + lock_new(2, slot(0), name=non_utf8(0)) + lock_new(3, slot(0), name=raw(b"a b"))
    + lock_new(4, slot(0), name=suffixed(2, "/x")),
    "huge-names": connect(0) + sum((lock_new(i, slot(0), name=huge(i)) for i in range(6)), []),
    "values": connect(0) + lock_new(0, slot(0), value=non_utf8(1)) + lock_new(1, slot(0), value=huge(4))
    + lock_new(2, slot(0), value=fixed(3)) + try_acquire(slot(2)) + holder(slot(2)),
    "null-handles": sum((f(NULL) for f in (try_acquire, acquire, cancel, renew, release2, queries,
                                           fencing, holder, lock_free, client_free, caps)), []),
    "local-handles": sum((f(LOCAL) for f in (try_acquire, acquire, renew, release2, lock_free,
                                             client_free, caps)), []),
    "random-handles": sum((f(RANDOM) for f in (try_acquire, release2, lock_free, client_free)), []),
    "tagged-handles": BASE + sum((f(TAGGED) for f in (try_acquire, release2, lock_free, client_free)), []),
    "other-kind": BASE + try_acquire(other(0)) + lock_free(other(0)) + client_free(other(0))
    + caps(other(0)) + lock_new(1, other(0)),
    "freed-lock": BASE + lock_free(slot(0)) + try_acquire(slot(0)) + release2(slot(0))
    + lock_free(slot(0)) + on_lost(slot(0), 3),
    "freed-client": BASE + client_free(slot(0)) + lock_new(1, slot(0)) + try_acquire(slot(0))
    + release2(slot(0)) + client_free(slot(0)),
    "null-outs": BASE + try_acquire(slot(0), True) + caps(slot(0), True) + fencing(slot(0), 1)
    + fencing(slot(0), 2) + holder(slot(0), True) + lock_new(1, slot(0), null_out=True),
    "lost-callbacks": BASE + on_lost(slot(0), 3) + on_lost(slot(0), 4) + on_lost(slot(0), 2)
    + on_lost(slot(0), 1) + on_lost(slot(0), 0) + on_lost(slot(0), 5) + try_acquire(slot(0)),
    "lost-bad-handles": on_lost(NULL, 3) + on_lost(LOCAL, 3) + on_lost(RANDOM, 1) + on_lost(NULL, 2),
    "free-held": BASE + on_lost(slot(0), 3) + try_acquire(slot(0)) + lock_free(slot(0)),
    "client-first": BASE + try_acquire(slot(0)) + client_free(slot(0)) + renew(slot(0))
    + release2(slot(0)) + [1],
    "caller-renews": BASE + auto_renew(slot(0), False) + try_acquire(slot(0)) + renew(slot(0))
    + queries(slot(0)) + auto_renew(slot(0), True) + release2(slot(0)),
    "hook-cancel": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 1, forever=True)
    + acquire_with(slot(1), 1),
    "hook-count": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 0) + acquire_with(slot(1), 0, no_hook=True),
    "hook-blocking": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 2, other_h=slot(0)),
    "hook-cancel-other": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 3, other_h=slot(0)),
    "hook-free-client": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 4, client_h=slot(0))
    + try_acquire(slot(1)),
    "hook-free-held": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 5, other_h=slot(0))
    + try_acquire(slot(1)),
    "hook-free-own": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 5, other_h=slot(1))
    + try_acquire(slot(1)),
    "hook-free-bad": PAIR + try_acquire(slot(0)) + acquire_with(slot(1), 4, client_h=LOCAL),
    "cancel-idle": BASE + cancel(slot(0)) + try_acquire(slot(0)) + cancel(slot(0)) + release2(slot(0)),
    "registry": connect(0) + connect(1) + register(slot(0), unregister=False) + register(slot(1))
    + whereis(slot(1)) + unregister(slot(0)) + unregister(slot(0)) + whereis(slot(0), null_out=True),
    "registry-bad": register(NULL) + whereis(LOCAL) + unregister(RANDOM) + connect(0)
    + register(slot(0), ns=non_utf8(0)) + register(slot(0), name=huge(5)) + register(slot(0), value=TNULL)
    + whereis(slot(0), ns=EMPTY),
    "statics": statics(0) + statics(13) + statics(14) + statics(-1) + statics(1 << 40),
    "replace-slots": BASE + try_acquire(slot(0)) + lock_new(0, slot(0)) + connect(0) + lock_new(0, slot(0)),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, ops in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(ops))


if __name__ == "__main__":
    main()
