package polylock

// The go-ldlm-shaped API against memory:// and, when their URLs are set
// (tests/with-servers.sh sets them), a real Consul agent
// (POLYLOCK_TEST_CONSUL_URL) and a real LDLM server (POLYLOCK_TEST_LDLM_URL;
// POLYLOCK_TEST_LDLM_PASSWORD_URL and POLYLOCK_TEST_LDLM_PASSWORD,
// POLYLOCK_TEST_LDLM_MTLS_URL and POLYLOCK_TEST_LDLM_MTLS_CERTS for the
// credential checks). In CI (CI=true) a missing URL fails, except LDLM's
// when POLYLOCK_TEST_LDLM_SKIPPED=1 (no LDLM server binary): then the LDLM
// tests skip.
//
// A lease is lost behind its holder's back by destroying its Consul session
// over HTTP, or, on LDLM, by releasing it by its key with the polylock CLI
// ($POLYLOCK_CLI, which run-tests.sh builds and sets). The C ABI has no
// capabilities call, so what a backend lacks (LDLM: fencing tokens) is
// declared here per backend.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polylock/polylock/bindings-go/internal/testenv"
)

type backend struct {
	name string
	url  string
	// skip, when set, is why the backend's subtests skip.
	skip string
	// fencing: leases carry a fencing token.
	fencing bool
	// countedTokens: a name's tokens count its grants (each the last + 1);
	// Consul's are the key's ModifyIndex, a cluster-wide Raft index that
	// any write moves, so there they only increase.
	countedTokens bool
	// revoke takes a held lease away from its holder (nil: not possible).
	revoke func(t *testing.T, url string, l *Lock)
}

func backends(t *testing.T) []backend {
	consul, consulSkip := testenv.ServerURL(t, "POLYLOCK_TEST_CONSUL_URL", false)
	ldlm, ldlmSkip := testenv.ServerURL(t, "POLYLOCK_TEST_LDLM_URL", true)
	pg, pgSkip := testenv.ServerURL(t, "POLYLOCK_TEST_POSTGRES_URL", false)
	return []backend{
		{name: "memory", url: fmt.Sprintf("memory://go-%d", os.Getpid()), fencing: true, countedTokens: true},
		{name: "consul", url: consul, skip: consulSkip, fencing: true, revoke: destroyConsulSession},
		{name: "ldlm", url: ldlm, skip: ldlmSkip, fencing: false, revoke: releaseWithCLI},
		{name: "postgres", url: pg, skip: pgSkip, fencing: true, countedTokens: false, revoke: releaseWithCLI},
	}
}

// destroyConsulSession destroys the lease's session over Consul's HTTP API.
func destroyConsulSession(t *testing.T, url string, l *Lock) {
	t.Helper()
	address := strings.TrimPrefix(url, "consul://")
	request, _ := http.NewRequest(http.MethodPut, "http://"+address+"/v1/session/destroy/"+l.Key, nil)
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatalf("destroying the session: %v", err)
	}
	response.Body.Close()
	if response.StatusCode != 200 {
		t.Fatalf("destroying the session: %s", response.Status)
	}
}

// releaseWithCLI releases the lease by its key with the polylock CLI.
func releaseWithCLI(t *testing.T, url string, l *Lock) {
	t.Helper()
	cli := os.Getenv("POLYLOCK_CLI")
	if cli == "" {
		t.Fatal("POLYLOCK_CLI (the polylock binary) is not set")
	}
	out, err := exec.Command(cli, "--url", url, "release", l.Name, "--holder", l.Key).CombinedOutput()
	if err != nil {
		t.Fatalf("polylock release: %v: %s", err, out)
	}
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

func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	runOn(t, backends(t), test)
}

func runOn(t *testing.T, list []backend, test func(t *testing.T, b backend)) {
	for _, b := range list {
		b := b
		t.Run(b.name, func(t *testing.T) {
			if b.skip != "" {
				testenv.SkipOnce(t, b.skip)
			}
			test(t, b)
		})
	}
}

func TestLockUnlockAndTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		url := b.url
		ctx := context.Background()
		a, other := connect(t, url), connect(t, url)
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
		if ok != b.fencing {
			t.Fatalf("fencing token given: %v, expected %v", ok, b.fencing)
		}
		if err := first.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		busy, err := other.TryLock(ctx, name, opts)
		if err != nil || busy.Locked {
			t.Fatalf("try while held: %+v %v", busy, err)
		}
		_, err = other.Lock(ctx, name, &LockOptions{WaitTimeoutSeconds: 1})
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
		second, err := other.Lock(ctx, name, &LockOptions{WaitTimeoutSeconds: 10})
		if err != nil {
			t.Fatal(err)
		}
		next, ok := second.FencingToken()
		if ok != b.fencing || (b.fencing && next <= token) {
			t.Fatalf("token %d (%v) after %d", next, ok, token)
		}
		second.Unlock(ctx)
	})
}

func TestSizeIsASemaphore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		url := b.url
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
	forEachBackend(t, func(t *testing.T, b backend) {
		url := b.url
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

func TestCancelledWaitTakesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		name := unique("cancel")
		background := context.Background()
		holder, err := connect(t, b.url).Lock(background, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		token, _ := holder.FencingToken()
		ctx, cancel := context.WithCancel(background)
		defer cancel()
		parked := make(chan struct{})
		result := make(chan error, 1)
		waiter := connect(t, b.url)
		go func() {
			_, err := waiter.Lock(ctx, name, &LockOptions{OnWaitStarted: func() { close(parked) }})
			result <- err
		}()
		// The bounds only turn a hang into a failure; the hook is the signal.
		select {
		case <-parked:
		case err := <-result:
			t.Fatalf("Lock returned before it waited: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatal("the wait never started")
		}
		cancel()
		select {
		case err := <-result:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled wait: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("Lock did not return after its context was cancelled")
		}
		// The cancelled wait took nothing: the next lease follows the holder's.
		nextFollows(t, b, name, holder, token, "the cancelled wait")
	})
}

// A context that ended before Lock began: the cancel may reach C before the
// acquisition does (a no-op there), so the wait-started hook cancels it once
// it parks. Lock must return every time, and leave nothing behind.
func TestAnEndedContextLeavesNoWaitBehind(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		name := unique("ended")
		background := context.Background()
		holder, err := connect(t, b.url).Lock(background, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		token, _ := holder.FencingToken()
		ended, cancel := context.WithCancel(background)
		cancel()
		waiter := connect(t, b.url)
		for i := 0; i < 20; i++ {
			result := make(chan error, 1)
			go func() {
				_, err := waiter.Lock(ended, name, nil)
				result <- err
			}()
			select {
			case err := <-result:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("round %d: %v", i, err)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("round %d: Lock with an ended context did not return", i)
			}
		}
		nextFollows(t, b, name, holder, token, "an ended wait")
	})
}

// nextFollows unlocks holder (whose fencing token was token) and checks
// that the next lease of name follows it directly: what (a cancelled or
// ended wait) took nothing in between.
func nextFollows(t *testing.T, b backend, name string, holder *Lock, token uint64, what string) {
	t.Helper()
	background := context.Background()
	if err := holder.Unlock(background); err != nil {
		t.Fatal(err)
	}
	next, err := connect(t, b.url).Lock(background, name, &LockOptions{WaitTimeoutSeconds: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Unlock(background)
	got, ok := next.FencingToken()
	if ok != b.fencing || (b.fencing && got <= token) || (b.countedTokens && got != token+1) {
		t.Fatalf("next fencing token %d (%v), holder's %d: %s took the lock", got, ok, token, what)
	}
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
	forEachBackend(t, func(t *testing.T, b backend) {
		url := b.url
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

func TestOnLostFiresOnceWhenTheLeaseIsTakenAway(t *testing.T) {
	var revocable []backend
	for _, b := range backends(t) {
		if b.revoke != nil {
			revocable = append(revocable, b)
		}
	}
	runOn(t, revocable, func(t *testing.T, b backend) {
		ctx := context.Background()
		l, err := connect(t, b.url).Lock(ctx, unique("lost"), nil)
		if err != nil {
			t.Fatal(err)
		}
		lost := make(chan LostEvent, 4)
		if err := l.OnLost(func(e LostEvent) { lost <- e; _ = l.IsHeld() }); err != nil {
			t.Fatal(err)
		}
		b.revoke(t, b.url, l)
		select {
		case event := <-lost:
			if event.Name != l.Name || event.Key != l.Key || event.Reason == "" || event.HasToken != b.fencing {
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
	})
}

func TestLDLMPassword(t *testing.T) {
	base, skip := testenv.ServerURL(t, "POLYLOCK_TEST_LDLM_PASSWORD_URL", true)
	if skip != "" {
		testenv.SkipOnce(t, skip)
	}
	password := os.Getenv("POLYLOCK_TEST_LDLM_PASSWORD")
	with := func(secret string) string { return strings.Replace(base, "ldlm://", "ldlm://:"+secret+"@", 1) }
	wrong := "not-the-password-2c7e41"
	for _, url := range []string{with(wrong), base} {
		_, err := New(url)
		var e *Error
		if !errors.Is(err, ErrAuth) || !errors.As(err, &e) {
			t.Fatalf("connecting with a bad password: %v", err)
		}
		if strings.Contains(e.Message, wrong) || strings.Contains(e.Message, password) {
			t.Fatalf("the error shows the password: %s", e.Message)
		}
	}
	l, err := connect(t, with(password)).TryLock(context.Background(), unique("password"), nil)
	if err != nil || !l.Locked {
		t.Fatalf("lock with the password: %+v %v", l, err)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLDLMClientCertificates(t *testing.T) {
	base, skip := testenv.ServerURL(t, "POLYLOCK_TEST_LDLM_MTLS_URL", true)
	if skip != "" {
		testenv.SkipOnce(t, skip)
	}
	certs := os.Getenv("POLYLOCK_TEST_LDLM_MTLS_CERTS")
	// Without a client certificate the server closes the connection at
	// once, so polylock's threads write to a closed socket: the process
	// survives because the core blocks SIGPIPE in its threads (a Go
	// program would die of "signal: broken pipe" otherwise).
	for i := 0; i < 20; i++ {
		if _, err := New(base + "?ca=" + certs + "/ca.pem"); !errors.Is(err, ErrAuth) {
			t.Fatalf("connecting without a client certificate: %v", err)
		}
	}
	url := fmt.Sprintf("%s?ca=%s/ca.pem&cert=%s/client.pem&key=%s/client-key.pem", base, certs, certs, certs)
	l, err := connect(t, url).TryLock(context.Background(), unique("mtls"), nil)
	if err != nil || !l.Locked {
		t.Fatalf("lock with a client certificate: %+v %v", l, err)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// cutProxy is tests/support/cut_proxy.py in front of a server: cut makes
// the server unreachable (connections refused) until restore.
type cutProxy struct {
	stdin   *bufio.Writer
	stdout  *bufio.Scanner
	command *exec.Cmd
	address string
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	script := os.Getenv("POLYLOCK_CUT_PROXY")
	if script == "" {
		t.Fatal("POLYLOCK_CUT_PROXY (tests/support/cut_proxy.py) is not set")
	}
	command := exec.Command("python3", script, target)
	in, err := command.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := command.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := command.Start(); err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{stdin: bufio.NewWriter(in), stdout: bufio.NewScanner(out), command: command}
	t.Cleanup(func() {
		in.Close() // end of stdin stops it
		command.Wait()
	})
	if !p.stdout.Scan() || !strings.HasPrefix(p.stdout.Text(), "listening ") {
		t.Fatalf("cut proxy did not start: %q", p.stdout.Text())
	}
	p.address = strings.TrimPrefix(p.stdout.Text(), "listening ")
	return p
}

// send gives the proxy a command and waits for it to take effect.
func (p *cutProxy) send(t *testing.T, command string) {
	t.Helper()
	fmt.Fprintln(p.stdin, command)
	p.stdin.Flush()
	if !p.stdout.Scan() || p.stdout.Text() != "ok "+command {
		t.Fatalf("cut proxy %s: %q", command, p.stdout.Text())
	}
}

func TestAnUnlockThatFailedCanBeRetried(t *testing.T) {
	url, skip := testenv.ServerURL(t, "POLYLOCK_TEST_CONSUL_URL", false)
	if skip != "" {
		t.Skip(skip)
	}
	proxy := startCutProxy(t, strings.TrimPrefix(url, "consul://"))
	ctx := context.Background()
	through := connect(t, "consul://"+proxy.address)
	name := unique("retry")
	l, err := through.Lock(ctx, name, &LockOptions{LockTimeoutSeconds: 15})
	if err != nil {
		t.Fatal(err)
	}
	proxy.send(t, "cut")
	if err := l.Unlock(ctx); !errors.Is(err, ErrConnection) {
		t.Fatalf("unlock while cut off: %v", err)
	}
	if !l.Locked || !l.IsHeld() {
		t.Fatal("a failed unlock dropped the lease")
	}
	proxy.send(t, "restore")
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("retried unlock: %v", err)
	}
	// Free again: another client takes it at once.
	next, err := connect(t, url).TryLock(ctx, name, nil)
	if err != nil || !next.Locked {
		t.Fatalf("after the retried unlock: %+v %v", next, err)
	}
	next.Unlock(ctx)
}

// NoAutoRenew: the caller's Renew keeps the lease; left unrenewed it ends
// at its TTL and is reported lost, saying it was not renewed.
func TestNoAutoRenewLeaseEndsUnlessRenewed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		l, err := connect(t, b.url).Lock(ctx, unique("manual"), &LockOptions{LockTimeoutSeconds: 2, NoAutoRenew: true})
		if err != nil {
			t.Fatal(err)
		}
		lost := make(chan LostEvent, 2)
		if err := l.OnLost(func(e LostEvent) { lost <- e }); err != nil {
			t.Fatal(err)
		}
		if err := l.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case event := <-lost:
			if !strings.Contains(event.Reason, "renew") {
				t.Fatalf("reason: %q", event.Reason)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the unrenewed lease was not lost within 60 s")
		}
		if err := l.Unlock(ctx); !errors.Is(err, ErrLockLost) {
			t.Fatalf("unlock after the lease ended: %v", err)
		}
	})
}
