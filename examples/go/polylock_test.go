package polylock

// The go-ldlm-shaped API against memory:// and, when
// POLYLOCK_TEST_CONSUL_URL is set (tests/with-servers.sh sets it), a real
// Consul agent. In CI (CI=true) a missing Consul URL fails.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type backend struct {
	name string
	url  string
}

func backends(t *testing.T) []backend {
	list := []backend{{"memory", fmt.Sprintf("memory://go-%d", os.Getpid())}}
	consul := os.Getenv("POLYLOCK_TEST_CONSUL_URL")
	switch {
	case consul != "":
		list = append(list, backend{"consul", consul})
	case os.Getenv("CI") == "true":
		t.Fatal("POLYLOCK_TEST_CONSUL_URL is not set")
	}
	return list
}

func unique(base string) string {
	return fmt.Sprintf("go-test/%d/%s/%d", os.Getpid(), base, time.Now().UnixNano())
}

func connect(t *testing.T, url string) *Client {
	t.Helper()
	c, err := New(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func forEachBackend(t *testing.T, test func(t *testing.T, url string)) {
	for _, b := range backends(t) {
		b := b
		t.Run(b.name, func(t *testing.T) { test(t, b.url) })
	}
}

func TestLockUnlockAndTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a, b := connect(t, url), connect(t, url)
		name := unique("basic")
		opts := &LockOptions{LockTimeoutSeconds: 15}
		first, err := a.Lock(ctx, name, opts)
		if err != nil || !first.Locked || first.Key == "" {
			t.Fatalf("lock: %+v %v", first, err)
		}
		if !first.IsHeld() || first.TimeToExpiration() <= 0 || first.TimeToExpiration() > 15*time.Second {
			t.Fatalf("held lease: %v %v", first.IsHeld(), first.TimeToExpiration())
		}
		token, ok := first.FencingToken()
		if !ok {
			t.Fatal("no fencing token")
		}
		if err := first.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		busy, err := b.TryLock(ctx, name, opts)
		if err != nil || busy.Locked {
			t.Fatalf("try while held: %+v %v", busy, err)
		}
		_, err = b.Lock(ctx, name, &LockOptions{WaitTimeoutSeconds: 1})
		if !errors.Is(err, ErrLockWaitTimeout) {
			t.Fatalf("wait on a held lock: %v", err)
		}
		if err := first.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := first.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("double unlock: %v", err)
		}
		if first.IsHeld() || first.Locked {
			t.Fatal("still held after unlock")
		}
		second, err := b.Lock(ctx, name, &LockOptions{WaitTimeoutSeconds: 10})
		if err != nil {
			t.Fatal(err)
		}
		if next, _ := second.FencingToken(); next <= token {
			t.Fatalf("token %d after %d", next, token)
		}
		second.Unlock(ctx)
	})
}

func TestSizeIsASemaphore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		name := unique("size")
		var held []*Lock
		for i := 0; i < 2; i++ {
			l, err := connect(t, url).TryLock(ctx, name, &LockOptions{Size: 2})
			if err != nil || !l.Locked {
				t.Fatalf("slot %d: %+v %v", i, l, err)
			}
			held = append(held, l)
		}
		full, err := connect(t, url).TryLock(ctx, name, &LockOptions{Size: 2})
		if err != nil || full.Locked {
			t.Fatalf("third holder: %+v %v", full, err)
		}
		_, err = connect(t, url).TryLock(ctx, name, &LockOptions{Size: 3})
		if !errors.Is(err, ErrLimitMismatch) {
			t.Fatalf("other size: %v", err)
		}
		for _, l := range held {
			l.Unlock(ctx)
		}
	})
}

func TestContextEndsAWait(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		name := unique("context")
		holder, err := connect(t, url).Lock(context.Background(), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		waiter := connect(t, url)
		result := make(chan error, 1)
		go func() {
			_, err := waiter.Lock(ctx, name, nil)
			result <- err
		}()
		cancel()
		if err := <-result; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
		holder.Unlock(context.Background())
		// The abandoned wait's late lease is released: the lock is free.
		again, err := connect(t, url).Lock(context.Background(), name, &LockOptions{WaitTimeoutSeconds: 30})
		if err != nil {
			t.Fatal(err)
		}
		again.Unlock(context.Background())
	})
}

func TestBadInput(t *testing.T) {
	if _, err := New("nope://x"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad scheme: %v", err)
	}
	if _, err := New("memory://\x00"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NUL in url: %v", err)
	}
	c := connect(t, "memory://")
	ctx := context.Background()
	for _, name := range []string{"", "bad name!", "caf\xc3", "a\x00b", strings.Repeat("x", 300)} {
		if _, err := c.TryLock(ctx, name, nil); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("name %q: %v", name, err)
		}
	}
	if _, err := c.TryLock(ctx, "ok", &LockOptions{Size: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative size: %v", err)
	}
	var e *Error
	_, err := c.TryLock(ctx, "bad name!", nil)
	if !errors.As(err, &e) || e.Code != "invalid_argument" || !strings.Contains(e.Message, "bad name!") {
		t.Fatalf("error detail: %#v", err)
	}
}

func TestGoroutinesNeverOverlap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		name := unique("goroutines")
		var inside, overlaps atomic.Int32
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			c := connect(t, url)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					l, err := c.Lock(context.Background(), name, &LockOptions{WaitTimeoutSeconds: 60})
					if err != nil {
						overlaps.Add(1000)
						return
					}
					if inside.Add(1) != 1 {
						overlaps.Add(1)
					}
					inside.Add(-1)
					l.Unlock(context.Background())
				}
			}()
		}
		wg.Wait()
		if overlaps.Load() != 0 {
			t.Fatalf("overlaps: %d", overlaps.Load())
		}
	})
}

func TestOnLostFiresOnceWhenTheSessionIsDestroyed(t *testing.T) {
	consul := os.Getenv("POLYLOCK_TEST_CONSUL_URL")
	if consul == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("POLYLOCK_TEST_CONSUL_URL is not set")
		}
		t.Skip("needs POLYLOCK_TEST_CONSUL_URL")
	}
	ctx := context.Background()
	l, err := connect(t, consul).Lock(ctx, unique("lost"), nil)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan LostEvent, 4)
	if err := l.OnLost(func(e LostEvent) { lost <- e; _ = l.IsHeld() }); err != nil {
		t.Fatal(err)
	}
	address := strings.TrimPrefix(consul, "consul://")
	request, _ := http.NewRequest(http.MethodPut, "http://"+address+"/v1/session/destroy/"+l.Key, nil)
	response, err := http.DefaultClient.Do(request)
	if err != nil || response.StatusCode != 200 {
		t.Fatalf("destroying the session: %v %v", response, err)
	}
	response.Body.Close()
	select {
	case event := <-lost:
		if event.Name != l.Name || event.Reason == "" || !event.HasToken {
			t.Fatalf("event: %+v", event)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no lost callback within 60 s")
	}
	if l.IsHeld() {
		t.Fatal("still held after loss")
	}
	if err := l.Unlock(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("unlock after loss: %v", err)
	}
	if len(lost) != 0 {
		t.Fatal("lost callback fired twice")
	}
}
