package polylock

// Fuzz targets for the Go API on memory:// (bindings-go/fuzz.sh runs them
// with go test -fuzz; plain go test runs their seeds: f.Add and
// testdata/fuzz/FuzzX/). Whatever the input, every call returns nil or a
// *Error with a known code that errors.Is matches to its sentinel (never
// "panic"), and nothing panics or crashes. URLs of network backends are
// left out (they would wait for servers that are not there).

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzURL is the memory:// namespace the fuzz targets use.
const fuzzURL = "memory://gofuzz"

// codes are the status names an *Error may carry, with their sentinels.
var codes = map[string]error{
	"timeout":          ErrLockWaitTimeout,
	"lost":             ErrLockLost,
	"not_held":         ErrNotHeld,
	"limit_mismatch":   ErrLimitMismatch,
	"conflict":         nil,
	"connection":       ErrConnection,
	"auth":             ErrAuth,
	"invalid_argument": ErrInvalidArgument,
	"backend":          nil,
	"usage":            ErrUsage,
	"invalid_handle":   ErrClosed,
	"cancelled":        ErrCancelled,
}

// typed fails unless err is nil, or a *Error with a known code and
// message (or one of want, when given: context errors and the like).
func typed(t *testing.T, what string, err error, want ...error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, w := range want {
		if errors.Is(err, w) {
			return
		}
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: untyped error %T: %v", what, err, err)
	}
	sentinel, known := codes[e.Code]
	if !known {
		t.Fatalf("%s: unknown error code %q: %v", what, e.Code, err)
	}
	if e.Message == "" {
		t.Fatalf("%s: error %q without a message", what, e.Code)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("%s: %q error does not match its sentinel: %v", what, e.Code, err)
	}
}

// networkSchemes would make New contact a server.
var networkSchemes = []string{"consul", "consul+https", "mongodb", "mongodb+srv", "ldlm", "ldlms", "postgres", "postgresql"}

// offline reports whether connecting to url stays in the process: its
// scheme, as a URL parser reads it (after leading blanks, without tabs and
// newlines, in any case), is no network backend's.
func offline(url string) bool {
	url = strings.TrimLeft(url, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	scheme, _, found := strings.Cut(url, ":")
	if !found {
		return true
	}
	scheme = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(scheme)
	for _, s := range networkSchemes {
		if strings.EqualFold(scheme, s) {
			return false
		}
	}
	return true
}

func FuzzNew(f *testing.F) {
	for _, url := range []string{
		"memory://", "memory://gofuzz", "memory://?x=1", "memory:///path", "memory://%ff",
		"MEMORY://", "memory:", "", "http://x", "memory://\x00", "memory://\xff", "\tmemory://",
	} {
		f.Add(url)
	}
	f.Fuzz(func(t *testing.T, url string) {
		if !offline(url) {
			t.Skip("a network backend's URL")
		}
		c, err := New(url)
		typed(t, "New", err)
		if err != nil {
			if c != nil {
				t.Fatalf("New(%q) failed (%v) but gave a client", url, err)
			}
			return
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := c.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: %v, want ErrClosed", err)
		}
	})
}

// lockOptions are the fuzzed options.
func lockOptions(ttl, size, wait int32, noAutoRenew bool) *LockOptions {
	return &LockOptions{LockTimeoutSeconds: ttl, Size: size, WaitTimeoutSeconds: wait, NoAutoRenew: noAutoRenew}
}

func FuzzLock(f *testing.F) {
	f.Add("a", int32(0), int32(0), int32(0), false)
	f.Add("fuzz/lock", int32(1), int32(2), int32(1), true)
	f.Add("x:y@z=1+2.3_4-5", int32(86400), int32(1), int32(0), false)
	f.Add("", int32(-1), int32(-1), int32(-1), false)
	f.Add("a b", int32(86401), int32(2147483647), int32(2147483647), true)
	f.Add("\xff\xfe", int32(0), int32(0), int32(0), false)
	f.Add("nul\x00byte", int32(0), int32(0), int32(0), false)
	f.Add(strings.Repeat("n", 257), int32(0), int32(0), int32(0), false)
	f.Add(strings.Repeat("n", 256), int32(-2147483648), int32(3), int32(5), false)
	f.Fuzz(func(t *testing.T, name string, ttl, size, wait int32, noAutoRenew bool) {
		c, err := New(fuzzURL)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer c.Close()
		opts := lockOptions(ttl, size, wait, noAutoRenew)
		ctx := context.Background()

		l, err := c.TryLock(ctx, name, opts)
		typed(t, "TryLock", err)
		if err != nil {
			if l != nil {
				t.Fatalf("TryLock failed (%v) but gave a Lock", err)
			}
			// Lock refuses the same input the same way, without waiting.
			wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			l2, err2 := c.Lock(wctx, name, opts)
			typed(t, "Lock", err2, context.DeadlineExceeded)
			if err2 == nil {
				t.Fatalf("TryLock refused %q (%v) but Lock took it", name, err)
			}
			if l2 != nil {
				t.Fatalf("Lock failed but gave a Lock")
			}
			return
		}
		if !l.Locked {
			t.Fatalf("TryLock on a fresh name did not take it")
		}
		if !l.IsHeld() || l.TimeToExpiration() <= 0 || l.Key == "" {
			t.Fatalf("a taken lock is not held (held %v, left %v, key %q)", l.IsHeld(), l.TimeToExpiration(), l.Key)
		}
		if _, has := l.FencingToken(); !has {
			t.Fatalf("memory:// gave no fencing token")
		}
		typed(t, "OnLost", l.OnLost(func(LostEvent) {}))
		typed(t, "Renew", l.Renew(ctx))

		// Another handle on the name: busy, or a limit mismatch; a Lock
		// ends with its context (or WaitTimeoutSeconds), never hangs.
		other, err := c.TryLock(ctx, name, lockOptions(ttl, size+1, wait, noAutoRenew))
		typed(t, "TryLock (busy)", err)
		if other != nil && other.Locked {
			typed(t, "Unlock (other)", other.Unlock(ctx))
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		waiter, err := c.Lock(wctx, name, opts)
		typed(t, "Lock (busy)", err, context.DeadlineExceeded)
		if err == nil {
			if size <= 1 {
				t.Fatalf("Lock took a held mutex")
			}
			typed(t, "Unlock (waiter)", waiter.Unlock(ctx))
		}

		if err := l.Unlock(ctx); err != nil {
			t.Fatalf("Unlock: %v", err)
		}
		if err := l.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("second Unlock: %v, want ErrNotHeld", err)
		}
		typed(t, "Renew after Unlock", l.Renew(ctx))
		if l.IsHeld() || l.Locked {
			t.Fatalf("held after Unlock")
		}
	})
}

// FuzzCalls drives a sequence of calls, one per byte pair, on two clients
// and four locks, in any order: closing a client first, unlocking twice,
// calls on unlocked locks and closed clients.
func FuzzCalls(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0, 3, 0, 4, 0})
	f.Add([]byte{0, 1, 0, 5, 1, 0, 1, 4, 6, 1, 3, 0, 3, 0, 7, 0})
	f.Add([]byte{8, 0, 0, 0, 9, 1, 1, 2, 2, 3, 10, 0, 5, 0})
	f.Add([]byte{0, 2, 0, 6, 1, 2, 11, 0, 12, 2, 3, 2, 8, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		ctx := context.Background()
		var clients [2]*Client
		for i := range clients {
			c, err := New(fuzzURL)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			clients[i] = c
		}
		defer func() {
			for _, c := range clients {
				typed(t, "Close", c.Close())
			}
		}()
		names := []string{"a", "b", "", "\xff", strings.Repeat("x", 300)}
		var locks [4]*Lock
		defer func() {
			for _, l := range locks {
				if l != nil {
					typed(t, "Unlock (end)", l.Unlock(ctx))
				}
			}
		}()
		if len(ops) > 128 {
			ops = ops[:128]
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], int(ops[i+1])
			c := clients[arg%2]
			slot := arg % len(locks)
			name := names[(arg/2)%len(names)]
			opts := lockOptions(int32(arg%3), int32(arg%4), 0, arg&8 != 0)
			switch op % 13 {
			case 0, 1:
				l, err := c.TryLock(ctx, name, opts)
				typed(t, "TryLock", err)
				if err == nil && l.Locked {
					if locks[slot] != nil {
						typed(t, "Unlock (replaced)", locks[slot].Unlock(ctx))
					}
					locks[slot] = l
				}
			case 2:
				wctx, cancel := context.WithTimeout(ctx, time.Duration(arg%4)*time.Millisecond)
				l, err := c.Lock(wctx, name, opts)
				cancel()
				typed(t, "Lock", err, context.DeadlineExceeded)
				if err == nil {
					if locks[slot] != nil {
						typed(t, "Unlock (replaced)", locks[slot].Unlock(ctx))
					}
					locks[slot] = l
				}
			case 3, 4:
				if l := locks[slot]; l != nil {
					typed(t, "Unlock", l.Unlock(ctx))
					if err := l.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
						t.Fatalf("second Unlock: %v, want ErrNotHeld", err)
					}
				}
			case 5:
				if l := locks[slot]; l != nil {
					typed(t, "Renew", l.Renew(ctx))
				}
			case 6:
				if l := locks[slot]; l != nil {
					_ = l.IsHeld()
					_ = l.TimeToExpiration()
					_, _ = l.FencingToken()
				}
			case 7:
				if l := locks[slot]; l != nil {
					typed(t, "OnLost", l.OnLost(func(LostEvent) {}))
				}
			case 8, 9:
				// Close a client (its locks keep working); closing twice
				// is ErrClosed; a closed client refuses new locks.
				err := c.Close()
				typed(t, "Close", err)
				_, err = c.TryLock(ctx, "a", nil)
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("TryLock on a closed client: %v, want ErrClosed", err)
				}
			case 10:
				// Reconnect a closed (or open) client slot.
				typed(t, "Close (reconnect)", c.Close())
				n, err := New(fuzzURL)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				clients[arg%2] = n
			case 11:
				// Unlocked locks stay unlocked: every call is refused
				// with a typed error.
				if l := locks[slot]; l != nil {
					typed(t, "Unlock", l.Unlock(ctx))
					typed(t, "Renew (unlocked)", l.Renew(ctx))
					typed(t, "OnLost (unlocked)", l.OnLost(func(LostEvent) {}))
					if l.IsHeld() {
						t.Fatalf("held after Unlock")
					}
					locks[slot] = nil
				}
			default:
				// The rest of the input as a URL.
				if url := string(ops[i:]); offline(url) {
					n, err := New(url)
					typed(t, "New", err)
					if err == nil {
						typed(t, "Close (new)", n.Close())
					}
				}
			}
		}
	})
}
