package polylock

// The bad-input matrix, Go column: every case gets a typed error (one of
// the Err* sentinels, or the documented accepted outcome) and loses
// nothing, on memory://. With POLYLOCK_BAD_INPUT_RECORDS set, each case
// appends one JSON line {"case", "lang": "go", "error"} to that file for
// tests/bad-input/table.py (README "Bad input").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var sentinels = []struct {
	name string
	err  error
}{
	{"ErrLockWaitTimeout", ErrLockWaitTimeout},
	{"ErrLockLost", ErrLockLost},
	{"ErrNotHeld", ErrNotHeld},
	{"ErrLimitMismatch", ErrLimitMismatch},
	{"ErrInvalidArgument", ErrInvalidArgument},
	{"ErrConnection", ErrConnection},
	{"ErrAuth", ErrAuth},
	{"ErrUsage", ErrUsage},
	{"ErrClosed", ErrClosed},
	{"ErrCancelled", ErrCancelled},
}

func record(t *testing.T, id, text string) {
	path := os.Getenv("POLYLOCK_BAD_INPUT_RECORDS")
	if path == "" {
		return
	}
	line, err := json.Marshal(map[string]string{"case": id, "lang": "go", "error": text})
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
}

// expectErr checks that err is the sentinel want and records its name.
func expectErr(t *testing.T, id string, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", id, err, want)
		return
	}
	var typed *Error
	if !errors.As(err, &typed) {
		t.Errorf("%s: %T is not a *polylock.Error", id, err)
		return
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			record(t, id, s.name)
			return
		}
	}
	t.Errorf("%s: %v matches no sentinel", id, err)
}

// badInputClient connects to this process's memory:// namespace, with a
// held lock; the returned check proves that lock is still held and that a
// fresh one still works.
func badInputClient(t *testing.T) (*Client, func()) {
	t.Helper()
	c, err := New(fmt.Sprintf("memory://go-bad-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	held, err := c.TryLock(ctx, unique("held"), nil)
	if err != nil || !held.Locked {
		t.Fatalf("the witness lock: %v", err)
	}
	check := func() {
		t.Helper()
		if !held.IsHeld() {
			t.Error("the held lease was lost")
		}
		other, err := c.TryLock(ctx, unique("after"), nil)
		if err != nil || !other.Locked {
			t.Errorf("a fresh lock: %v", err)
			return
		}
		if err := other.Unlock(ctx); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() {
		check()
		if err := held.Unlock(ctx); err != nil {
			t.Error(err)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c, check
}

func TestBadInputMatrix(t *testing.T) {
	c, check := badInputClient(t)
	ctx := context.Background()
	names := []struct{ id, name string }{
		{"name-empty", ""},
		{"name-too-long", strings.Repeat("a", 257)},
		{"name-control-char", "bad\nname"},
		{"name-control-char", "bad\x00name"},
		{"name-non-utf8", "bad\xff\xfename"},
		{"value-huge", strings.Repeat("n", 10<<20)},
	}
	for _, each := range names {
		_, err := c.TryLock(ctx, each.name, nil)
		expectErr(t, each.id, err, ErrInvalidArgument)
		check()
	}

	for _, each := range []struct{ id, url string }{
		{"url-invalid", "not a url"},
		{"url-invalid", "memory://\xff"},
		{"url-unknown-scheme", "nosuch://host"},
	} {
		_, err := New(each.url)
		expectErr(t, each.id, err, ErrInvalidArgument)
		check()
	}

	options := []struct {
		id   string
		opts LockOptions
	}{
		{"ttl-too-large", LockOptions{LockTimeoutSeconds: math.MaxInt32}},
		{"limit-negative", LockOptions{Size: -1}},
		{"timeout-negative", LockOptions{WaitTimeoutSeconds: -1}},
	}
	for _, each := range options {
		opts := each.opts
		_, err := c.Lock(ctx, unique("opt"), &opts)
		expectErr(t, each.id, err, ErrInvalidArgument)
		check()
	}

	// 0 is documented as "the default" for the TTL and "a mutex" for the size.
	l, err := c.TryLock(ctx, unique("zero"), &LockOptions{LockTimeoutSeconds: 0, Size: 0})
	if err != nil || !l.Locked {
		t.Fatalf("zero options: %v", err)
	}
	if left := l.TimeToExpiration(); left < 10*time.Second {
		t.Errorf("the default TTL: %v left", left)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Error(err)
	}
	record(t, "ttl-zero", "ok (0 = the default TTL)")
	record(t, "limit-zero", "ok (0 = a mutex)")

	huge, err := c.TryLock(ctx, unique("huge"), &LockOptions{Size: math.MaxInt32})
	if err != nil || !huge.Locked {
		t.Fatalf("the largest size: %v", err)
	}
	if err := huge.Unlock(ctx); err != nil {
		t.Error(err)
	}
	record(t, "limit-huge", "ok (a semaphore of 2147483647)")
	check()
}

func TestBadInputReleases(t *testing.T) {
	c, check := badInputClient(t)
	ctx := context.Background()
	l, err := c.Lock(ctx, unique("double"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	expectErr(t, "double-release", l.Unlock(ctx), ErrNotHeld)
	check()

	// No operator view in the C ABI: a lease the caller renews expires;
	// wait for the loss to be reported (proven-held ends a safety margin
	// before it).
	name := unique("expired")
	l, err = c.Lock(ctx, name, &LockOptions{LockTimeoutSeconds: 1, NoAutoRenew: true})
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{}, 1)
	if err := l.OnLost(func(LostEvent) { lost <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the loss was not reported")
	}
	expectErr(t, "release-after-loss", l.Unlock(ctx), ErrLockLost)
	again, err := c.Lock(ctx, name, &LockOptions{WaitTimeoutSeconds: 2})
	if err != nil {
		t.Fatalf("free again after the loss: %v", err)
	}
	if err := again.Unlock(ctx); err != nil {
		t.Error(err)
	}
	check()
}

func TestBadInputClosedClient(t *testing.T) {
	ctx := context.Background()
	c, err := New(fmt.Sprintf("memory://go-bad-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Lock(ctx, unique("closed"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// A lock keeps its client's connection (documented): it still works.
	if err := l.Renew(ctx); err != nil {
		t.Errorf("renew after close: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Errorf("unlock after close: %v", err)
	}
	record(t, "use-after-close", "ok (the lock keeps its client)")
	_, err = c.TryLock(ctx, unique("closed"), nil)
	expectErr(t, "handle-freed", err, ErrClosed)
	expectErr(t, "handle-freed", c.Close(), ErrClosed)
}

func TestBadInputCallbackPanics(t *testing.T) {
	c, check := badInputClient(t)
	ctx := context.Background()
	var called atomic.Int32
	lose := func(panics bool) {
		l, err := c.Lock(ctx, unique("panics"), &LockOptions{LockTimeoutSeconds: 1, NoAutoRenew: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.OnLost(func(LostEvent) {
			if panics {
				panic("a lost callback panics")
			}
			called.Add(1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	lose(true)
	lose(false)
	deadline := time.Now().Add(10 * time.Second)
	for called.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The notifier survives the panic: later losses are told too.
	lose(true)
	lose(false)
	for called.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := called.Load(); got != 2 {
		t.Fatalf("%d of 2 other callbacks ran", got)
	}
	check()
	record(t, "callback-throws", "panic recovered, printed (others still called)")
}

func TestBadInputGoroutinesOneLock(t *testing.T) {
	c, check := badInputClient(t)
	ctx := context.Background()
	l, err := c.Lock(ctx, unique("goroutines"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Many goroutines on one Lock at once: renewals race the unlocks;
	// exactly one unlock releases it, the others get ErrNotHeld.
	var wg sync.WaitGroup
	var unlocked atomic.Int32
	errs := make(chan error, 32)
	for i := 0; i < 16; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := l.Unlock(ctx); err == nil {
				unlocked.Add(1)
			} else {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			_ = l.Renew(ctx)
			_ = l.IsHeld()
		}()
	}
	wg.Wait()
	close(errs)
	if got := unlocked.Load(); got != 1 {
		t.Fatalf("%d unlocks succeeded, want 1", got)
	}
	var first error
	for err := range errs {
		if !errors.Is(err, ErrNotHeld) {
			t.Errorf("a concurrent unlock: %v", err)
		}
		first = err
	}
	expectErr(t, "threads-one-handle", first, ErrNotHeld)
	check()
}
