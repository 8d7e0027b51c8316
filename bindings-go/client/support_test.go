package client_test

// Where the client tests run: memory:// always, and with their URLs set
// (tests/with-servers.sh sets them) a real LDLM server addressed as go-ldlm
// does ("host:port" from POLYLOCK_TEST_LDLM_URL) and by its polylock URL,
// Consul
// (POLYLOCK_TEST_CONSUL_URL) and FerretDB (POLYLOCK_TEST_FERRETDB_URL) by
// their polylock URLs in Config.Address. In CI (CI=true) a missing URL
// fails, except LDLM's when POLYLOCK_TEST_LDLM_SKIPPED=1 (no LDLM server
// binary): then the LDLM tests skip.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/polylock/polylock/bindings-go/client"
	"github.com/polylock/polylock/bindings-go/internal/testenv"
)

// backend is one place the examples run: Config.Address, or why not.
type backend struct {
	name    string
	address string
	skip    string
}

// hostPort is go-ldlm's Address for an ldlm:// or ldlms:// URL.
func hostPort(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "ldlms://"), "ldlm://")
}

func backends(t *testing.T) []backend {
	ldlm, ldlmSkip := testenv.ServerURL(t, "POLYLOCK_TEST_LDLM_URL", true)
	consul, consulSkip := testenv.ServerURL(t, "POLYLOCK_TEST_CONSUL_URL", false)
	ferret, ferretSkip := testenv.ServerURL(t, "POLYLOCK_TEST_FERRETDB_URL", false)
	pg, pgSkip := testenv.ServerURL(t, "POLYLOCK_TEST_POSTGRES_URL", false)
	return []backend{
		{name: "memory", address: fmt.Sprintf("memory://go-client-%d", os.Getpid())},
		{name: "ldlm", address: hostPort(ldlm), skip: ldlmSkip},
		{name: "ldlm-url", address: ldlm, skip: ldlmSkip},
		{name: "consul", address: consul, skip: consulSkip},
		{name: "ferretdb", address: ferret, skip: ferretSkip},
		{name: "postgres", address: pg, skip: pgSkip},
	}
}

// onEveryBackend runs test once per backend, as a subtest.
func onEveryBackend(t *testing.T, test func(t *testing.T, address string)) {
	for _, b := range backends(t) {
		b := b
		t.Run(b.name, func(t *testing.T) {
			if b.skip != "" {
				testenv.SkipOnce(t, b.skip)
			}
			test(t, b.address)
		})
	}
}

// connect is a client on address, closed when the test ends.
func connect(t *testing.T, address string) *client.Client {
	t.Helper()
	c, err := client.New(context.Background(), client.Config{Address: address})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// unique makes a README lock name unique to this run.
func unique(name string) string {
	return fmt.Sprintf("%s-%d-%d", name, os.Getpid(), time.Now().UnixNano())
}
