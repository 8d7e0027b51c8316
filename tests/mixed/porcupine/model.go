package main

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// opKind is what an operation of the fenced lock model does.
type opKind int

const (
	opAcquire opKind = iota // a grant (token -1: the backend gives none)
	opRelease               // a release the backend confirmed
	opEnd                   // a lease's end: its loss, or a killed holder's expiry
	opWrite                 // a fenced-store write; output true if accepted
	opForce                 // an operator's forced release of every holder
)

// input is an operation's input; outputs are bools (accepted / ok).
type input struct {
	kind  opKind
	id    string
	token int64
}

// state is one lock name's state: the leases holding it (at most the
// name's limit), the leases a forced release took (still to end), the
// highest token granted and the highest write the fenced store accepted.
// Immutable: steps return new states.
type state struct {
	holders []string // sorted
	revoked []string // sorted
	granted int64
	written int64
}

func (s state) key() string {
	return fmt.Sprintf("%s|%s|%d|%d", strings.Join(s.holders, ","), strings.Join(s.revoked, ","), s.granted, s.written)
}

func with(set []string, id string) []string {
	out := append(append([]string(nil), set...), id)
	sort.Strings(out)
	return out
}

func without(set []string, id string) ([]string, bool) {
	for i, held := range set {
		if held == id {
			return append(append([]string(nil), set[:i]...), set[i+1:]...), true
		}
	}
	return set, false
}

// fencedLockModel is the specification a name's history must linearize to:
// a lock of `limit` holders (1: a mutex) whose grants carry rising fencing
// tokens, plus the fenced store guarding it.
//
//   - acquire: legal only while fewer than `limit` leases hold the name, and
//     (with tokens) only with a token above every earlier grant's;
//   - release confirmed by the backend: legal only for a lease still
//     holding; so a lease whose release was confirmed held the name from its
//     grant to its release, and nobody else got it in between beyond the
//     limit;
//   - end (a lost lease, a killed holder's): legal for a holding or revoked
//     lease; the moment is anywhere in its window (the acquire's call up to
//     the loss being reported, or open for a killed holder);
//   - write: accepted exactly when its token is not below the highest
//     accepted one (the fenced store's rule);
//   - forced release: every holder is revoked (its end still to come).
func fencedLockModel(limit int) porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return state{granted: -1, written: -1} },
		Step: func(current, in, out interface{}) (bool, interface{}) {
			s, op, ok := current.(state), in.(input), out.(bool)
			switch op.kind {
			case opAcquire:
				if len(s.holders) >= limit || (op.token >= 0 && op.token <= s.granted) {
					return false, s
				}
				next := s
				next.holders = with(s.holders, op.id)
				if op.token >= 0 {
					next.granted = op.token
				}
				return true, next
			case opRelease:
				holders, held := without(s.holders, op.id)
				next := s
				next.holders = holders
				return held, next
			case opEnd:
				next := s
				holders, held := without(s.holders, op.id)
				if held {
					next.holders = holders
					return true, next
				}
				revoked, was := without(s.revoked, op.id)
				next.revoked = revoked
				return was, next
			case opWrite:
				accepted := op.token >= s.written
				if accepted != ok {
					return false, s
				}
				next := s
				if accepted {
					next.written = op.token
				}
				return true, next
			case opForce:
				next := s
				next.holders = nil
				next.revoked = append(append([]string(nil), s.revoked...), s.holders...)
				sort.Strings(next.revoked)
				return true, next
			}
			return false, s
		},
		Equal: func(a, b interface{}) bool { return a.(state).key() == b.(state).key() },
		Hash: func(s interface{}) uint64 {
			h := fnv.New64a()
			h.Write([]byte(s.(state).key()))
			return h.Sum64()
		},
		DescribeOperation: func(in, out interface{}) string {
			op := in.(input)
			switch op.kind {
			case opAcquire:
				return fmt.Sprintf("acquire %s → token %d", op.id, op.token)
			case opRelease:
				return fmt.Sprintf("release %s → ok", op.id)
			case opEnd:
				return fmt.Sprintf("lease %s ends (lost)", op.id)
			case opWrite:
				return fmt.Sprintf("write token %d by %s → accepted %v", op.token, op.id, out)
			default:
				return "forced release"
			}
		},
		DescribeState: func(s interface{}) string {
			st := s.(state)
			return fmt.Sprintf("holders [%s] revoked [%s] token %d written %d",
				strings.Join(st.holders, " "), strings.Join(st.revoked, " "), st.granted, st.written)
		},
	}
}
