package client

// A fuzz target for go-ldlm's API (bindings-go/fuzz.sh runs it with
// go test -fuzz; plain go test runs its seeds: f.Add and
// testdata/fuzz/FuzzClient/). A fuzzed Config is turned into a polylock
// URL (errors are ErrConfig and never show the password); when that URL
// stays in the process (memory://), the client takes, renews and unlocks a
// fuzzed lock name with fuzzed options, and every error is one of the
// documented ones. Nothing panics.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/polylock/polylock/bindings-go"
)

// lockErrors are the errors Lock, TryLock, Renew and Unlock document.
var lockErrors = []error{
	ErrLockDoesNotExist, ErrInvalidLockKey, ErrLockWaitTimeout, ErrLockNotLocked,
	ErrLockDoesNotExistOrInvalidKey, ErrInvalidLockSize, ErrLockSizeMismatch, ErrInvalidLockTimeout,
	ErrTryLockWaitTimeout, ErrLockTimeoutMismatch, ErrClientClosed, ErrConfig, ErrLockLost,
	polylock.ErrInvalidArgument, polylock.ErrNotHeld, polylock.ErrUsage, polylock.ErrClosed,
	context.DeadlineExceeded, context.Canceled,
}

func documented(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, known := range lockErrors {
		if errors.Is(err, known) {
			return
		}
	}
	t.Fatalf("%s: undocumented error %T: %v", what, err, err)
}

func FuzzClient(f *testing.F) {
	f.Add("memory://gofuzz-client", "", "", false, false, 0, "a", int32(0), int32(0), int32(0), false)
	f.Add("memory://gofuzz-client", "", "", false, false, 0, "fuzz/lock", int32(5), int32(2), int32(0), true)
	f.Add("memory://gofuzz-client", "s3cret-pw", "", false, false, 0, "a", int32(1), int32(1), int32(1), false)
	f.Add("memory://gofuzz-client", "", "", false, false, 2, "\xff", int32(-1), int32(-1), int32(-1), false)
	f.Add("memory://gofuzz-client", "", "", false, false, 0, strings.Repeat("n", 300), int32(86401), int32(3), int32(0), false)
	f.Add("host:7000", "s3cret-pw", "/ca.pem", true, true, 3, "a", int32(0), int32(0), int32(0), false)
	f.Add("ldlm://host:7000?max_retries=1", "s3cret-pw", "", false, true, 1, "a", int32(0), int32(0), int32(0), false)
	f.Add("ldlm://:pw@host", "s3cret-pw", "", true, false, 0, "a", int32(0), int32(0), int32(0), false)
	f.Add("consul://127.0.0.1:8500", "s3cret-pw", "", false, false, 0, "a", int32(0), int32(0), int32(0), false)
	f.Add("host/with?query#frag@x", "", "", false, false, -1, "a", int32(0), int32(0), int32(0), false)
	f.Add("", "", "", false, false, 0, "a", int32(0), int32(0), int32(0), false)
	f.Add("ldlm://%zz", "s3cret-pw", "", false, false, 0, "a", int32(0), int32(0), int32(0), false)
	f.Fuzz(func(t *testing.T, address, password, caFile string, useTLS, skipVerify bool, maxRetries int,
		name string, lockTimeout, size, wait int32, noAutoRenew bool) {
		conf := Config{
			Address: address, Password: password, CAFile: caFile, UseTls: useTLS,
			SkipVerify: skipVerify, MaxRetries: maxRetries, NoAutoRenew: noAutoRenew,
		}
		url, err := polylockURL(conf)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("polylockURL: %v is not ErrConfig", err)
			}
			// The error may quote the address or CA file (%q), whose escapes
			// can spell the password by chance ("\x00" + "00" holds "0000").
			quoted := fmt.Sprintf("%q %q", address, caFile)
			if len(password) >= 4 && strings.Contains(err.Error(), password) &&
				!strings.Contains(address, password) && !strings.Contains(caFile, password) &&
				!strings.Contains(quoted, password) {
				t.Fatalf("polylockURL's error shows the password: %v", err)
			}
			return
		}
		if !strings.HasPrefix(url, "memory://") {
			return // a network backend: not contacted here
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := New(ctx, conf)
		if err != nil {
			if !errors.Is(err, polylock.ErrInvalidArgument) {
				t.Fatalf("New(%q): %v", url, err)
			}
			return
		}
		defer func() {
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			documented(t, "second Close", c.Close())
		}()
		opts := &LockOptions{WaitTimeoutSeconds: wait, LockTimeoutSeconds: lockTimeout, Size: size}

		l, err := c.TryLock(name, opts)
		documented(t, "TryLock", err)
		if err == nil && l == nil {
			t.Fatalf("TryLock gave neither a Lock nor an error")
		}
		if err != nil || !l.Locked {
			// Lock on the same input: the same refusal, or the lock (a
			// name TryLock took is free, so Lock does not wait).
			l, err = c.Lock(name, &LockOptions{LockTimeoutSeconds: lockTimeout, Size: size})
			documented(t, "Lock", err)
			if err != nil {
				return
			}
		}
		if !l.Locked || l.Key == "" {
			t.Fatalf("a taken lock: Locked %v, Key %q", l.Locked, l.Key)
		}
		_, err = c.Renew(name, l.Key, lockTimeout)
		documented(t, "Renew", err)
		_, err = c.Renew(name, l.Key+"x", lockTimeout)
		documented(t, "Renew (other key)", err)
		if err == nil {
			t.Fatalf("Renew with another key succeeded")
		}
		unlocked, err := c.Unlock(name, l.Key+"x")
		documented(t, "Unlock (other key)", err)
		if unlocked {
			t.Fatalf("Unlock with another key unlocked")
		}
		if err := l.Unlock(); err != nil {
			t.Fatalf("Unlock: %v", err)
		}
		err = l.Unlock()
		documented(t, "second Unlock", err)
		if err == nil {
			t.Fatalf("second Unlock succeeded")
		}
	})
}
