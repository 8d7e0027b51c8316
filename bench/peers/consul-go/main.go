// Command consul-go is the Consul peer of polylock's benchmark harness
// (bench/run.sh): HashiCorp's own Go client, `api.Lock` and `api.Semaphore`,
// measured on the same scenarios as core/benches/scenarios.rs, printed as
// JSON lines (backend, subject, metric, value) to -json (appended) and as
// text to stdout.
//
//	go run . -addr 127.0.0.1:8500 -json results.jsonl
//
// Each Lock/Acquire without a session makes its own session (the client's
// normal use), so that cost is part of the figures.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

var (
	addr       = flag.String("addr", "127.0.0.1:8500", "Consul HTTP address")
	iterations = flag.Int("iterations", 200, "latency samples")
	seconds    = flag.Int("seconds", 5, "throughput window")
	jsonPath   = flag.String("json", "", "append JSON lines here")
	// Handoff samples park the waiter before releasing; the API has no
	// event for "waiting", so the bench gives it this long to park.
	park = 100 * time.Millisecond
)

func emit(subject, metric string, value float64) {
	fmt.Printf("%-8s %-22s %-32s %14.1f\n", "consul", subject, metric, value)
	if *jsonPath == "" {
		return
	}
	f, err := os.OpenFile(*jsonPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	line, _ := json.Marshal(map[string]any{"backend": "consul", "subject": subject, "metric": metric, "value": value})
	fmt.Fprintln(f, string(line))
}

func percentiles(samples []time.Duration) (p50, p99 float64) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	at := func(q float64) float64 {
		i := int(float64(len(samples)) * q)
		if i >= len(samples) {
			i = len(samples) - 1
		}
		return float64(samples[i].Microseconds())
	}
	return at(0.50), at(0.99)
}

// locker is what api.Lock and api.Semaphore share for these scenarios.
type locker interface {
	take(stop <-chan struct{}) bool
	give()
}

type mutex struct{ l *api.Lock }

func (m mutex) take(stop <-chan struct{}) bool {
	ch, err := m.l.Lock(stop)
	if err != nil {
		log.Fatal(err)
	}
	return ch != nil
}
func (m mutex) give() {
	if err := m.l.Unlock(); err != nil {
		log.Fatal(err)
	}
}

type semaphore struct{ s *api.Semaphore }

func (s semaphore) take(stop <-chan struct{}) bool {
	ch, err := s.s.Acquire(stop)
	if err != nil {
		log.Fatal(err)
	}
	return ch != nil
}
func (s semaphore) give() {
	if err := s.s.Release(); err != nil {
		log.Fatal(err)
	}
}

func newLocker(client *api.Client, kind, name string, limit int) locker {
	if kind == "mutex" {
		l, err := client.LockOpts(&api.LockOptions{Key: name, SessionTTL: "15s", LockTryOnce: false})
		if err != nil {
			log.Fatal(err)
		}
		return mutex{l}
	}
	s, err := client.SemaphoreOpts(&api.SemaphoreOptions{Prefix: name, Limit: limit, SessionTTL: "15s"})
	if err != nil {
		log.Fatal(err)
	}
	return semaphore{s}
}

func uncontended(client *api.Client, subject, kind, name string, limit int) {
	l := newLocker(client, kind, name, limit)
	var samples []time.Duration
	for i := 0; i < 20+*iterations; i++ {
		start := time.Now()
		if !l.take(nil) {
			log.Fatal("uncontended take failed")
		}
		l.give()
		if i >= 20 {
			samples = append(samples, time.Since(start))
		}
	}
	p50, p99 := percentiles(samples)
	emit(subject, "uncontended_p50_us", p50)
	emit(subject, "uncontended_p99_us", p99)
}

// handoff: the holder starts releasing -> the parked waiter holds. With a
// semaphore of limit 1 so the waiter really waits.
func handoff(client *api.Client, subject, kind, name string) {
	holder := newLocker(client, kind, name, 1)
	waiter := newLocker(client, kind, name, 1)
	var samples []time.Duration
	n := *iterations
	if n > 100 {
		n = 100
	}
	for i := 0; i < n; i++ {
		if !holder.take(nil) {
			log.Fatal("holder take failed")
		}
		got := make(chan time.Time)
		go func() {
			if !waiter.take(nil) {
				log.Fatal("waiter take failed")
			}
			got <- time.Now()
		}()
		time.Sleep(park)
		released := time.Now()
		holder.give()
		samples = append(samples, (<-got).Sub(released))
		waiter.give()
	}
	p50, p99 := percentiles(samples)
	emit(subject, "handoff_p50_us", p50)
	emit(subject, "handoff_p99_us", p99)
}

// contended runs `contenders` goroutines taking and giving back a slot of
// `kind` ("mutex", or "semaphore" with 2 slots) on one name for the window,
// and emits the acquisitions per second under `metric` (if set), and the Raft writes
// per acquisition (the agent's applied_index before and after) when
// `raftMetric` is set.
func contended(client *api.Client, subject, kind, name string, contenders int, metric, raftMetric string) {
	before := appliedIndex(client)
	deadline := time.Now().Add(time.Duration(*seconds) * time.Second)
	stop := make(chan struct{})
	time.AfterFunc(time.Until(deadline), func() { close(stop) })
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < contenders; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := newLocker(client, kind, name, 2)
			for time.Now().Before(deadline) {
				if !l.take(stop) {
					return
				}
				l.give()
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if metric != "" {
		emit(subject, metric, float64(done.Load())/time.Since(start).Seconds())
	}
	if raftMetric != "" && done.Load() > 0 {
		emit(subject, raftMetric, float64(appliedIndex(client)-before)/float64(done.Load()))
	}
}

// appliedIndex is the agent's Raft applied_index, which counts Raft writes.
func appliedIndex(client *api.Client) uint64 {
	self, err := client.Agent().Self()
	if err != nil {
		log.Fatal(err)
	}
	raft, _ := self["Stats"]["raft"].(map[string]interface{})
	text, _ := raft["applied_index"].(string)
	var index uint64
	if _, err := fmt.Sscan(text, &index); err != nil {
		log.Fatalf("no Stats.raft.applied_index in /v1/agent/self: %v", err)
	}
	return index
}

func distinctNames(client *api.Client, subject, prefix string, names, tasks int) {
	deadline := time.Now().Add(time.Duration(*seconds) * time.Second)
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < tasks; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			var mine []locker
			for i := t; i < names; i += tasks {
				mine = append(mine, newLocker(client, "mutex", fmt.Sprintf("%s/%d", prefix, i), 1))
			}
			for i := 0; time.Now().Before(deadline); i++ {
				l := mine[i%len(mine)]
				if !l.take(nil) {
					log.Fatal("uncontended name busy")
				}
				l.give()
				done.Add(1)
			}
		}(t)
	}
	wg.Wait()
	emit(subject, "throughput_1000_names_per_s", float64(done.Load())/time.Since(start).Seconds())
}

func main() {
	flag.Parse()
	config := api.DefaultConfig()
	config.Address = *addr
	client, err := api.NewClient(config)
	if err != nil {
		log.Fatal(err)
	}
	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	uncontended(client, "api.Lock", "mutex", "bench/go-lock-"+run, 1)
	uncontended(client, "api.Semaphore", "semaphore", "bench/go-sem-"+run, 2)
	handoff(client, "api.Lock", "mutex", "bench/go-lock-handoff-"+run)
	handoff(client, "api.Semaphore", "semaphore", "bench/go-sem-handoff-"+run)
	for _, n := range []int{1, 16, 64} {
		name := fmt.Sprintf("bench/go-contended-%d-%s", n, run)
		metric := fmt.Sprintf("throughput_%d_contenders_per_s", n)
		if n == 1 {
			metric = "" // one contender only counts writes
		}
		contended(client, "api.Lock", "mutex", name, n, metric,
			fmt.Sprintf("raft_writes_per_acquisition_%d_contenders", n))
		if n > 1 {
			contended(client, "api.Semaphore", "semaphore", name+"-sem", n,
				fmt.Sprintf("throughput_%d_contenders_2_slots_per_s", n), "")
		}
	}
	distinctNames(client, "api.Lock", "bench/go-names-"+run, 1000, 64)
}
