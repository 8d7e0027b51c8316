// Command contend is the Go contender of the mixed-client fault suite
// (tests/mixed/run.sh has the whole protocol; tests/mixed/contenders.sh
// builds it with cgo against target/debug's libpolylock, found by
// pkg-config).
//
//	contend run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP
//	contend clock        print "go NS" (the clock probe)
//
// One polylock.Client on URL. Each round (until the file STOP exists, then
// a "done" line): pick a name of NAMES ("NAME=LIMIT,...": limit 1 a mutex,
// more a semaphore) with splitmix64 seeded by SEED; Client.Lock with a 20 s
// wait (the Go binding makes a C handle per Lock call, so each lease has
// its own handle; its TTL is whole seconds, TTL_MS rounded up); register
// the lease's OnLost (a loss that Unlock reports before the callback ran
// is logged as lost then: Unlock frees the handle, and with it the
// callback); send "WRITE NAME TOKEN ID" to the fenced store on the
// Unix socket STORE; hold HOLD_MS; write again; Unlock. Every step is one
// line "WHAT go PID ID NAME TOKEN T0 T1 RESULT" appended to LOG in one
// write(2); T0/T1 are clock_gettime(CLOCK_MONOTONIC) in nanoseconds (the
// clock_gettime system call).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	polylock "github.com/polylock/polylock/bindings-go"
)

const (
	lang             = "go"
	acquireTimeoutS  = 20
	connectFor       = 30 * time.Second
	storeTries       = 5
	storeTimeout     = 5 * time.Second
	clockMonotonic   = 1 // CLOCK_MONOTONIC
	backgroundTries  = 30
	backgroundPauses = time.Second
)

// monotonicNs is clock_gettime(CLOCK_MONOTONIC) in nanoseconds.
func monotonicNs() uint64 {
	var ts syscall.Timespec
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "contend (go): clock_gettime(CLOCK_MONOTONIC): %v\n", errno)
		os.Exit(1)
	}
	return uint64(ts.Sec)*1_000_000_000 + uint64(ts.Nsec)
}

// splitMix64 is the PRNG every contender uses to pick names.
type splitMix64 uint64

func (s *splitMix64) next() uint64 {
	*s += 0x9E3779B97F4A7C15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// history is the log, opened O_APPEND; each line is one write.
type history struct {
	file *os.File
	pid  int
}

func (h *history) line(what, id, name, token string, t0, t1 uint64, result string) {
	text := fmt.Sprintf("%s %s %d %s %s %s %d %d %s\n", what, lang, h.pid, id, name, token, t0, t1, result)
	if n, err := h.file.Write([]byte(text)); err != nil || n != len(text) {
		fmt.Fprintf(os.Stderr, "contend (go): writing the log: %d of %d: %v\n", n, len(text), err)
	}
}

// store is a connection to the fenced store, reconnected when it fails.
type store struct {
	path   string
	conn   net.Conn
	reader *bufio.Reader
}

// reconnect makes up to storeTries connection attempts, 50 ms apart.
func (s *store) reconnect() {
	if s.conn != nil {
		s.conn.Close()
	}
	s.conn, s.reader = nil, nil
	for i := 0; i < storeTries; i++ {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		conn, err := net.DialTimeout("unix", s.path, storeTimeout)
		if err == nil {
			s.conn, s.reader = conn, bufio.NewReader(conn)
			return
		}
	}
}

// write is one write: "ok", "stale" or "error" (then reconnected).
func (s *store) write(name, token, id string) string {
	if s.conn == nil {
		s.reconnect()
	}
	if s.conn == nil {
		return "error"
	}
	_ = s.conn.SetDeadline(time.Now().Add(storeTimeout))
	reply := ""
	_, err := fmt.Fprintf(s.conn, "WRITE %s %s %s\n", name, token, id)
	if err == nil {
		reply, err = s.reader.ReadString('\n')
	}
	reply = strings.TrimRight(reply, "\n")
	switch {
	case err == nil && reply == "OK":
		return "ok"
	case err == nil && strings.HasPrefix(reply, "STALE"):
		return "stale"
	}
	s.reconnect()
	return "error"
}

// kind is the error's stable kind (polylock's status name).
func kind(err error) string {
	var e *polylock.Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return "other"
}

// connect makes the client, retrying connection errors for up to connectFor.
func connect(url string) (*polylock.Client, error) {
	deadline := time.Now().Add(connectFor)
	for {
		client, err := polylock.New(url)
		if err == nil || !errors.Is(err, polylock.ErrConnection) || time.Now().After(deadline) {
			return client, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type name struct {
	name  string
	limit int32
}

func run(args []string) error {
	url, logPath, storePath, namesText, stop := args[0], args[1], args[2], args[3], args[7]
	ttlMs, err := strconv.ParseUint(args[4], 10, 32)
	if err != nil {
		return err
	}
	holdMs, err := strconv.ParseUint(args[5], 10, 32)
	if err != nil {
		return err
	}
	seed, err := strconv.ParseUint(args[6], 10, 64)
	if err != nil {
		return err
	}
	var names []name
	for _, entry := range strings.Split(namesText, ",") {
		n, limit, ok := strings.Cut(entry, "=")
		l, err := strconv.ParseUint(limit, 10, 31)
		if !ok || err != nil {
			return fmt.Errorf("NAMES entry %q is not NAME=LIMIT", entry)
		}
		names = append(names, name{n, int32(l)})
	}
	file, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	log := &history{file: file, pid: os.Getpid()}
	client, err := connect(url)
	if err != nil {
		return err
	}
	st := &store{path: storePath}
	st.reconnect()
	rng := splitMix64(seed)
	ttlS := int32((ttlMs + 999) / 1000)
	hold := time.Duration(holdMs) * time.Millisecond
	ctx := context.Background()
	for seq := 1; ; seq++ {
		if _, err := os.Stat(stop); err == nil {
			t := monotonicNs()
			log.line("done", "-", "-", "-", t, t, "-")
			return nil
		}
		pick := names[rng.next()%uint64(len(names))]
		id := fmt.Sprintf("%s-%d-%d", lang, log.pid, seq)
		opts := &polylock.LockOptions{WaitTimeoutSeconds: acquireTimeoutS, LockTimeoutSeconds: ttlS, Size: pick.limit}
		t0 := monotonicNs()
		lock, err := client.Lock(ctx, pick.name, opts)
		t1 := monotonicNs()
		if err != nil {
			if errors.Is(err, polylock.ErrLockWaitTimeout) {
				log.line("acquire", id, pick.name, "-", t0, t1, "timeout")
			} else {
				log.line("acquire", id, pick.name, "-", t0, t1, "error:"+kind(err))
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		token := "-"
		if t, ok := lock.FencingToken(); ok {
			token = strconv.FormatUint(t, 10)
		}
		log.line("acquire", id, pick.name, token, t0, t1, "ok")

		// Lost: once per lease, never after a normal release.
		var ended atomic.Bool
		leaseName := pick.name
		if err := lock.OnLost(func(polylock.LostEvent) {
			if !ended.Swap(true) {
				t := monotonicNs()
				log.line("lost", id, leaseName, token, t, t, "-")
			}
		}); err != nil {
			fmt.Fprintf(os.Stderr, "contend (go): OnLost: %v\n", err)
		}

		for i := 0; i < 2; i++ {
			t0 := monotonicNs()
			result := st.write(pick.name, token, id)
			log.line("write", id, pick.name, token, t0, monotonicNs(), result)
			if i == 0 {
				time.Sleep(hold)
			}
		}

		released := false
		for i := 0; i < 2 && !released; i++ {
			t0 := monotonicNs()
			err := lock.Unlock(ctx)
			t1 := monotonicNs()
			switch {
			case err == nil:
				ended.Store(true)
				log.line("release", id, pick.name, token, t0, t1, "ok")
				released = true
			case errors.Is(err, polylock.ErrLockLost):
				// Unlock frees the C handle, after which its lost callback
				// never runs: a loss it was not told of yet is logged here.
				if !ended.Swap(true) {
					log.line("lost", id, pick.name, token, t1, t1, "-")
				}
				log.line("release", id, pick.name, token, t0, t1, "lost")
				released = true
			default:
				log.line("release", id, pick.name, token, t0, t1, "error:"+kind(err))
				// Only a connection error leaves the lease in the Lock.
				released = !errors.Is(err, polylock.ErrConnection)
			}
		}
		if !released {
			// Still held: released in the background, not logged.
			go func() {
				for i := 0; i < backgroundTries; i++ {
					time.Sleep(backgroundPauses)
					if err := lock.Unlock(ctx); !errors.Is(err, polylock.ErrConnection) {
						return
					}
				}
			}()
		}
	}
}

func main() {
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "clock" {
		fmt.Printf("%s %d\n", lang, monotonicNs())
		return
	}
	if len(args) != 9 || args[0] != "run" {
		fmt.Fprintln(os.Stderr, "usage: contend run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP | contend clock")
		os.Exit(2)
	}
	if err := run(args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "contend (go): %v\n", err)
		os.Exit(1)
	}
}
