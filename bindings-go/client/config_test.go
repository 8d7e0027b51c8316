package client_test

// Config's LDLM settings against real LDLM servers: Password
// (POLYLOCK_TEST_LDLM_PASSWORD_URL, POLYLOCK_TEST_LDLM_PASSWORD), UseTls
// with CAFile or SkipVerify (POLYLOCK_TEST_LDLM_TLS_URL, …_CERTS), a client
// certificate (POLYLOCK_TEST_LDLM_MTLS_URL, …_CERTS), MaxRetries; and what
// New refuses, and what cancelling its context does.

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/polylock/polylock/bindings-go"
	"github.com/polylock/polylock/bindings-go/client"
	"github.com/polylock/polylock/bindings-go/internal/testenv"
)

// ldlmServer is the host:port of the LDLM server variable names, or skips.
func ldlmServer(t *testing.T, variable string) string {
	url, skip := testenv.ServerURL(t, variable, true)
	if skip != "" {
		testenv.SkipOnce(t, skip)
	}
	return hostPort(url)
}

// takes checks that conf connects and takes a lock.
func takes(t *testing.T, conf client.Config) {
	t.Helper()
	c, err := client.New(context.Background(), conf)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	lock, err := c.TryLock(unique("config"), nil)
	if err != nil || !lock.Locked {
		t.Fatalf("TryLock: %+v %v", lock, err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigPassword(t *testing.T) {
	address := ldlmServer(t, "POLYLOCK_TEST_LDLM_PASSWORD_URL")
	password := os.Getenv("POLYLOCK_TEST_LDLM_PASSWORD")
	wrong := "not-the-password-5d1f"
	_, err := client.New(context.Background(), client.Config{Address: address, Password: wrong})
	if !errors.Is(err, polylock.ErrAuth) {
		t.Fatalf("a wrong password: %v", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
		t.Fatalf("the error shows a password: %v", err)
	}
	takes(t, client.Config{Address: address, Password: password, MaxRetries: 2})
}

func TestConfigTls(t *testing.T) {
	address := ldlmServer(t, "POLYLOCK_TEST_LDLM_TLS_URL")
	certs := os.Getenv("POLYLOCK_TEST_LDLM_TLS_CERTS")
	takes(t, client.Config{Address: address, UseTls: true, CAFile: certs + "/ca.pem"})
	takes(t, client.Config{Address: address, UseTls: true, SkipVerify: true})
	if _, err := client.New(context.Background(), client.Config{Address: address, UseTls: true}); err == nil {
		t.Fatal("a server certificate from an unknown CA was accepted")
	}
	if _, err := client.New(context.Background(), client.Config{Address: address}); err == nil {
		t.Fatal("plain text to a TLS server connected")
	}
}

func TestConfigClientCertificate(t *testing.T) {
	address := ldlmServer(t, "POLYLOCK_TEST_LDLM_MTLS_URL")
	certs := os.Getenv("POLYLOCK_TEST_LDLM_MTLS_CERTS")
	if _, err := client.New(context.Background(), client.Config{Address: address, UseTls: true, CAFile: certs + "/ca.pem"}); !errors.Is(err, polylock.ErrAuth) {
		t.Fatalf("without a client certificate: %v", err)
	}
	takes(t, client.Config{
		Address: address, UseTls: true, CAFile: certs + "/ca.pem",
		TlsCert: certs + "/client.pem", TlsKey: certs + "/client-key.pem",
	})
}

func TestNewRefusesDialOptionsAndBadConfig(t *testing.T) {
	if _, err := client.New(context.Background(), client.Config{Address: "memory://"}, struct{ grpcOption int }{}); !errors.Is(err, client.ErrDialOption) {
		t.Fatalf("a dial option: %v", err)
	}
	if _, err := client.New(context.Background(), client.Config{Address: "memory://", Password: "x"}); !errors.Is(err, client.ErrConfig) {
		t.Fatalf("an LDLM setting with memory://: %v", err)
	}
	if _, err := client.New(context.Background(), client.Config{Address: "nope://x"}); !errors.Is(err, polylock.ErrInvalidArgument) {
		t.Fatalf("an unknown scheme: %v", err)
	}
	c := connect(t, "memory://")
	if l, err := c.TryLock("bad name!", nil); !errors.Is(err, polylock.ErrInvalidArgument) || l == nil || l.Locked {
		t.Fatalf("a bad name: %+v %v", l, err)
	}
	if _, err := c.TryLock("ok", &client.LockOptions{Size: -1}); err != client.ErrInvalidLockSize {
		t.Fatalf("a negative size: %v", err)
	}
}

// Cancelling New's context aborts the client's operations: a waiting Lock
// returns, later calls fail, and its leases are let go.
func TestCancellingTheContextAbortsTheClient(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c, err := client.New(ctx, client.Config{Address: address})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		other := connect(t, address)
		busy, kept := unique("busy"), unique("kept")
		held, err := other.Lock(busy, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Unlock()
		if _, err := c.Lock(kept, nil); err != nil {
			t.Fatal(err)
		}
		waiting := make(chan error, 1)
		go func() {
			_, err := c.Lock(busy, nil)
			waiting <- err
		}()
		cancel()
		select {
		case err := <-waiting:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("the waiting Lock: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the waiting Lock did not return within 60 s of the cancel")
		}
		if _, err := c.TryLock(unique("later"), nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("a call after the cancel: %v", err)
		}
		next, err := other.Lock(kept, &client.LockOptions{WaitTimeoutSeconds: 60})
		if err != nil || !next.Locked {
			t.Fatalf("the cancelled client kept its lease: %+v %v", next, err)
		}
		next.Unlock()
	})
}
