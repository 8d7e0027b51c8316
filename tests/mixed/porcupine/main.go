// Command porcupine checks a mixed-run history (tests/mixed/run.sh) for
// linearizability with Porcupine (github.com/anishathalye/porcupine), one
// lock name at a time, against the fenced lock / semaphore model in
// model.go.
//
//	porcupine -limits NAME=LIMIT,... [-out DIR] [-timeout 5m] [-label BACKEND] HISTORY
//
// Prints "porcupine: LABEL: OPS operations on NAMES names, linearizable
// NAMES, violations V, unknown U" and, for each name that is not
// linearizable, writes DIR/porcupine-LABEL-NAME.html (Porcupine's
// visualisation of the partial linearizations) and names it. Exits 1 when
// a name is not linearizable or could not be decided in time.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

func main() {
	limits := flag.String("limits", "", "NAME=LIMIT,... (LIMIT 1: a mutex); a name not listed is a mutex")
	out := flag.String("out", ".", "directory for the visualisations of failing histories")
	timeout := flag.Duration("timeout", 5*time.Minute, "time limit per name")
	label := flag.String("label", "history", "what the summary line calls this history")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: porcupine -limits NAME=LIMIT,... [-out DIR] HISTORY")
		os.Exit(2)
	}
	os.Exit(run(flag.Arg(0), *limits, *out, *label, *timeout))
}

// parseLimits reads "NAME=LIMIT,...".
func parseLimits(text string) (map[string]int, error) {
	limits := map[string]int{}
	for _, item := range strings.Split(text, ",") {
		if item == "" {
			continue
		}
		name, value, found := strings.Cut(item, "=")
		limit, err := strconv.Atoi(value)
		if !found || err != nil || limit < 1 {
			return nil, fmt.Errorf("bad limit %q (want NAME=LIMIT)", item)
		}
		limits[name] = limit
	}
	return limits, nil
}

// verdict is the outcome of checking one history.
type verdict struct {
	operations, names, linearizable, violations, unknown int
	reports                                              []string
}

// check runs Porcupine on every name's operations.
func check(records []record, limits map[string]int, out, label string, timeout time.Duration) (verdict, error) {
	byName, _, err := operations(records)
	if err != nil {
		return verdict{}, err
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	sort.Strings(names)
	var v verdict
	for _, name := range names {
		ops := byName[name]
		limit := limits[name]
		if limit == 0 {
			limit = 1
		}
		model := fencedLockModel(limit)
		v.operations += len(ops)
		v.names++
		switch porcupine.CheckOperationsTimeout(model, ops, timeout) {
		case porcupine.Ok:
			v.linearizable++
		case porcupine.Unknown:
			v.unknown++
			v.reports = append(v.reports, fmt.Sprintf("%s: not decided within %s", name, timeout))
		case porcupine.Illegal:
			v.violations++
			_, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
			safe := strings.NewReplacer("/", "_", " ", "_").Replace(name)
			path := filepath.Join(out, fmt.Sprintf("porcupine-%s-%s.html", label, safe))
			if err := porcupine.VisualizePath(model, info, path); err != nil {
				path = "(visualisation failed: " + err.Error() + ")"
			}
			v.reports = append(v.reports, fmt.Sprintf("%s: NOT linearizable; visualisation: %s", name, path))
		}
	}
	return v, nil
}

func run(history, limitsText, out, label string, timeout time.Duration) int {
	limits, err := parseLimits(limitsText)
	if err != nil {
		fmt.Fprintln(os.Stderr, "porcupine:", err)
		return 2
	}
	records, err := readHistory(history)
	if err != nil {
		fmt.Fprintln(os.Stderr, "porcupine:", err)
		return 2
	}
	v, err := check(records, limits, out, label, timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "porcupine:", err)
		return 2
	}
	fmt.Printf("porcupine: %s: %d operations on %d names, linearizable %d, violations %d, unknown %d\n",
		label, v.operations, v.names, v.linearizable, v.violations, v.unknown)
	for _, report := range v.reports {
		fmt.Printf("porcupine: %s: %s\n", label, report)
	}
	if v.violations > 0 || v.unknown > 0 {
		return 1
	}
	return 0
}
