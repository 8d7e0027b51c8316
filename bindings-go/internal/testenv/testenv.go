// Package testenv is what both test packages (polylock and polylock/client)
// share: reading a real server's URL from the environment that
// tests/with-servers.sh sets, and skipping with a reason shown once.
package testenv

import (
	"os"
	"sync"
	"testing"
)

// LDLMSkipped reports whether tests/with-servers.sh found no LDLM server
// binary (POLYLOCK_TEST_LDLM_SKIPPED=1), so the LDLM tests skip even in CI.
func LDLMSkipped() bool { return os.Getenv("POLYLOCK_TEST_LDLM_SKIPPED") == "1" }

// ServerURL reads a server's URL from variable: the URL, or "" and a reason
// to skip without it. Fatal in CI (CI=true) unless ldlm is set and the LDLM
// server cannot run here (LDLMSkipped).
func ServerURL(t *testing.T, variable string, ldlm bool) (string, string) {
	t.Helper()
	if url := os.Getenv(variable); url != "" {
		return url, ""
	}
	if ldlm && LDLMSkipped() {
		return "", "LDLM: no server binary (POLYLOCK_TEST_LDLM_SKIPPED=1)"
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set", variable)
	}
	return "", variable + " is not set"
}

var skipped sync.Map

// SkipOnce skips the test, showing reason only the first time it is given.
func SkipOnce(t *testing.T, reason string) {
	t.Helper()
	if _, seen := skipped.LoadOrStore(reason, true); seen {
		t.SkipNow()
	}
	t.Skip(reason)
}
