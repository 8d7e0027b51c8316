package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verdictOf checks a history given as lines, with name "s" a semaphore of 2.
func verdictOf(t *testing.T, lines ...string) verdict {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return verdictOfFile(t, path)
}

func verdictOfFile(t *testing.T, path string) verdict {
	t.Helper()
	records, err := readHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := check(records, map[string]int{"s": 2}, t.TempDir(), "test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestALegalHistoryWithLossesKillsAndRetriesIsLinearizable(t *testing.T) {
	v := verdictOfFile(t, "testdata/legal.log")
	if v.violations != 0 || v.unknown != 0 || v.names != 2 || v.linearizable != 2 {
		t.Fatalf("legal history judged %+v", v)
	}
}

// The deliberately broken history: two grants of one mutex overlap, and
// both releases were confirmed. The checker must flag it and write its
// visualisation.
func TestTwoOverlappingGrantsAreFlaggedWithAVisualisation(t *testing.T) {
	records, err := readHistory("testdata/overlap.log")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	v, err := check(records, nil, out, "test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if v.violations != 1 || len(v.reports) != 1 || !strings.Contains(v.reports[0], "NOT linearizable") {
		t.Fatalf("overlapping grants judged %+v", v)
	}
	page, err := os.ReadFile(filepath.Join(out, "porcupine-test-m.html"))
	if err != nil || !strings.Contains(string(page), "<html") {
		t.Fatalf("no visualisation written: %v", err)
	}
}

func TestATokenThatDoesNotRiseIsFlagged(t *testing.T) {
	v := verdictOf(t,
		"acquire rust 1 rust-1-1 m 7 100 110 ok",
		"release rust 1 rust-1-1 m 7 120 130 ok",
		"acquire c 2 c-2-1 m 7 140 150 ok",
		"release c 2 c-2-1 m 7 160 170 ok",
	)
	if v.violations != 1 {
		t.Fatalf("repeated token judged %+v", v)
	}
}

func TestASemaphoreOverItsLimitIsFlagged(t *testing.T) {
	v := verdictOf(t,
		"acquire rust 1 rust-1-1 s 1 100 110 ok",
		"acquire c 2 c-2-1 s 2 100 110 ok",
		"acquire go 3 go-3-1 s 3 100 110 ok",
		"release rust 1 rust-1-1 s 1 200 210 ok",
		"release c 2 c-2-1 s 2 200 210 ok",
		"release go 3 go-3-1 s 3 200 210 ok",
	)
	if v.violations != 1 {
		t.Fatalf("three holders of a semaphore of 2 judged %+v", v)
	}
}

func TestAStaleWriteTheStoreAcceptedIsFlagged(t *testing.T) {
	v := verdictOf(t,
		"acquire rust 1 rust-1-1 m 5 100 110 ok",
		"acquire c 2 c-2-1 m 6 105 200 ok",
		"write c 2 c-2-1 m 6 210 220 ok",
		"write rust 1 rust-1-1 m 5 230 240 ok",
		"lost rust 1 rust-1-1 m 5 250 250 -",
		"release c 2 c-2-1 m 6 260 270 ok",
	)
	if v.violations != 1 {
		t.Fatalf("a stale write accepted judged %+v", v)
	}
}

func TestALeaseWithoutTokensIsJudgedByExclusionAlone(t *testing.T) {
	ok := verdictOf(t,
		"acquire rust 1 rust-1-1 m - 100 110 ok",
		"release rust 1 rust-1-1 m - 120 130 ok",
		"acquire c 2 c-2-1 m - 140 150 ok",
		"release c 2 c-2-1 m - 160 170 ok",
	)
	bad := verdictOf(t,
		"acquire rust 1 rust-1-1 m - 100 110 ok",
		"acquire c 2 c-2-1 m - 112 115 ok",
		"release c 2 c-2-1 m - 116 117 ok",
		"release rust 1 rust-1-1 m - 120 130 ok",
	)
	if ok.violations != 0 || bad.violations != 1 {
		t.Fatalf("token-less histories judged %+v and %+v", ok, bad)
	}
}

func TestAForcedReleaseLetsTheNextHolderIn(t *testing.T) {
	v := verdictOf(t,
		"acquire rust 1 rust-1.0-1 m 5 100 110 ok",
		"force rust 1 - m - 120 130 ok",
		"acquire rust 1 rust-1.1-1 m 6 140 150 ok",
		"lost rust 1 rust-1.0-1 m 5 160 160 -",
		"release rust 1 rust-1.0-1 m 5 170 180 lost",
		"release rust 1 rust-1.1-1 m 6 190 200 ok",
	)
	if v.violations != 0 {
		t.Fatalf("forced release judged %+v", v)
	}
}
