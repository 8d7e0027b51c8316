package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// never is the return time of an operation that never returned (the lease
// of a killed contender ends at some unknown moment after its grant).
const never = int64(math.MaxInt64 / 2)

// record is one line of a history (tests/mixed/run.sh describes the format):
// OP LANG PID ID NAME TOKEN T0 T1 RESULT.
type record struct {
	op, lang, pid, id, name, token, result string
	t0, t1                                 int64
	line                                   int
}

// grant is what the history says of one acquired lease.
type grant struct {
	acquire  record
	releases []record
	lostAt   int64 // the lost callback's time, 0 without one
	killed   bool
}

// readHistory parses a history file; malformed lines are errors.
func readHistory(path string) ([]record, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var records []record
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<16), 1<<20)
	for number := 1; scanner.Scan(); number++ {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 9 {
			return nil, fmt.Errorf("%s:%d: want 9 fields, got %q", path, number, scanner.Text())
		}
		t0, err0 := strconv.ParseInt(fields[6], 10, 64)
		t1, err1 := strconv.ParseInt(fields[7], 10, 64)
		if err0 != nil || err1 != nil {
			return nil, fmt.Errorf("%s:%d: bad times in %q", path, number, scanner.Text())
		}
		records = append(records, record{
			op: fields[0], lang: fields[1], pid: fields[2], id: fields[3], name: fields[4],
			token: fields[5], t0: t0, t1: t1, result: fields[8], line: number,
		})
	}
	return records, scanner.Err()
}

// operations turns a history into Porcupine operations, one list per lock
// name: for each granted lease its acquire and its end (a release the
// backend confirmed, or the lease's loss somewhere between the acquire's
// call and the moment the holder learned of it, or — killed holder — some
// moment after its acquire), each fenced-store write that got an answer,
// and each forced release. Also returns a count of skipped records (writes
// that got no answer).
func operations(records []record) (map[string][]porcupine.Operation, int, error) {
	grants := map[string]*grant{}
	var order []string
	clients := map[string]int{}
	clientOf := func(r record) int {
		key := r.lang + "/" + r.pid
		if _, ok := clients[key]; !ok {
			clients[key] = len(clients)
		}
		return clients[key]
	}
	byName := map[string][]porcupine.Operation{}
	skipped := 0
	killedPids := map[string]bool{}
	for _, r := range records {
		switch r.op {
		case "acquire":
			if r.result != "ok" {
				continue
			}
			if _, dup := grants[r.id]; dup {
				return nil, 0, fmt.Errorf("line %d: grant id %s acquired twice", r.line, r.id)
			}
			grants[r.id] = &grant{acquire: r}
			order = append(order, r.id)
		case "release":
			if g := grants[r.id]; g != nil {
				g.releases = append(g.releases, r)
			}
		case "lost":
			if g := grants[r.id]; g != nil && g.lostAt == 0 {
				g.lostAt = r.t0
			}
		case "write":
			if r.result != "ok" && r.result != "stale" {
				skipped++
				continue
			}
			token, err := strconv.ParseInt(r.token, 10, 64)
			if err != nil {
				continue // no fencing token (LDLM): the store does not judge
			}
			byName[r.name] = append(byName[r.name], porcupine.Operation{
				ClientId: clientOf(r), Input: input{kind: opWrite, id: r.id, token: token},
				Call: r.t0, Output: r.result == "ok", Return: r.t1,
			})
		case "force":
			byName[r.name] = append(byName[r.name], porcupine.Operation{
				ClientId: clientOf(r), Input: input{kind: opForce},
				Call: r.t0, Output: true, Return: r.t1,
			})
		case "killed":
			killedPids[r.lang+"/"+r.pid] = true
		}
	}
	for _, id := range order {
		g := grants[id]
		a := g.acquire
		g.killed = killedPids[a.lang+"/"+a.pid]
		token := int64(-1)
		if t, err := strconv.ParseInt(a.token, 10, 64); err == nil {
			token = t
		}
		client := clientOf(a)
		byName[a.name] = append(byName[a.name], porcupine.Operation{
			ClientId: client, Input: input{kind: opAcquire, id: id, token: token},
			Call: a.t0, Output: true, Return: a.t1,
		})
		end := porcupine.Operation{ClientId: client, Input: input{kind: opEnd, id: id}, Call: a.t0, Output: true, Return: never}
		released := false
		for _, r := range g.releases {
			if r.result == "ok" {
				end = porcupine.Operation{
					ClientId: client, Input: input{kind: opRelease, id: id},
					Call: r.t0, Output: true, Return: r.t1,
				}
				released = true
				break
			}
			if r.result == "lost" && end.Return > r.t1 {
				end.Return = r.t1
			}
		}
		if !released && g.lostAt != 0 && end.Return > g.lostAt {
			end.Return = g.lostAt
		}
		byName[a.name] = append(byName[a.name], end)
	}
	for name := range byName {
		sort.SliceStable(byName[name], func(i, j int) bool { return byName[name][i].Call < byName[name][j].Call })
	}
	return byName, skipped, nil
}
