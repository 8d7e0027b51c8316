// Package polylock is polylock's Go binding: distributed locks and
// semaphores over memory://, consul://, mongodb:// and ldlm:// through cgo
// and polylock's C library (libpolylock). Lock, TryLock, Unlock and Renew
// take wait and lock timeouts and a size (semaphore limit) as options; a
// Lock's lease is renewed in the background until Unlock, unless
// NoAutoRenew says the caller renews it.
//
// cgo finds the installed C package through pkg-config: unpack
// polylock-VERSION-x86_64-linux-gnu.tar.gz (built by bindings-c/package.sh)
// under a prefix and set PKG_CONFIG_PATH=PREFIX/lib/pkgconfig; its
// polylock.pc carries an rpath, so the program finds libpolylock.so at run
// time. The subpackage client has go-ldlm's client API on top of this one.
package polylock

/*
#cgo pkg-config: polylock
#include <stdlib.h>
#include "polylock.h"

extern void polylockGoLost(void *user_data, polylock_lost_event *event);
extern void polylockGoFree(void *user_data);
extern void polylockGoWaitStarted(void *user_data);

*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Error is every failure polylock reports; Code is the stable status name
// ("timeout", "lost", …).
type Error struct {
	Code    string
	Message string
	status  C.polylock_status
}

// Error is the message polylock gave (never a password or token).
func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, ErrLockWaitTimeout) and friends work.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.status == e.status
}

// Sentinels for errors.Is.
var (
	ErrLockWaitTimeout = &Error{Code: "timeout", status: C.POLYLOCK_TIMEOUT}
	ErrLockLost        = &Error{Code: "lost", status: C.POLYLOCK_LOST}
	ErrNotHeld         = &Error{Code: "not_held", status: C.POLYLOCK_NOT_HELD}
	ErrLimitMismatch   = &Error{Code: "limit_mismatch", status: C.POLYLOCK_LIMIT_MISMATCH}
	ErrInvalidArgument = &Error{Code: "invalid_argument", status: C.POLYLOCK_INVALID_ARGUMENT}
	ErrConnection      = &Error{Code: "connection", status: C.POLYLOCK_CONNECTION}
	ErrAuth            = &Error{Code: "auth", status: C.POLYLOCK_AUTH}
	ErrUsage           = &Error{Code: "usage", status: C.POLYLOCK_USAGE}
	ErrClosed          = &Error{Code: "invalid_handle", status: C.POLYLOCK_INVALID_HANDLE}
	ErrCancelled       = &Error{Code: "cancelled", status: C.POLYLOCK_CANCELLED}
)

// check turns a status into an error. The last error is thread-local, so
// the caller must hold its OS thread (runtime.LockOSThread) around the call
// and this read.
func check(status C.polylock_status) error {
	if status == C.POLYLOCK_OK {
		return nil
	}
	return &Error{
		Code:    C.GoString(C.polylock_status_name(C.int32_t(status))),
		Message: C.GoString(C.polylock_last_error()),
		status:  status,
	}
}

// call runs one C call and reads its error on the same OS thread.
func call(f func() C.polylock_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(f())
}

// cString copies s for C (free it with C.free); a string with a NUL byte
// is refused, as C would read only up to it.
func cString(s, what string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &Error{Code: "invalid_argument", Message: what + " contains a NUL byte", status: C.POLYLOCK_INVALID_ARGUMENT}
	}
	return C.CString(s), nil
}

// Client is a connection to one backend.
type Client struct {
	ptr *C.polylock_client
}

// New connects to the backend named by url (memory://, consul://host:port,
// mongodb://…).
func New(url string) (*Client, error) {
	cs, err := cString(url, "url")
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cs))
	var ptr *C.polylock_client
	if err := call(func() C.polylock_status { return C.polylock_client_new(cs, &ptr) }); err != nil {
		return nil, err
	}
	return &Client{ptr: ptr}, nil
}

// Close frees the client; locks made from it keep working until unlocked.
func (c *Client) Close() error {
	return call(func() C.polylock_status { return C.polylock_client_free(c.ptr) })
}

// LockOptions are go-ldlm's lock options.
type LockOptions struct {
	// WaitTimeoutSeconds bounds the wait in Lock; 0 waits as long as it
	// takes (or until the context ends).
	WaitTimeoutSeconds int32
	// LockTimeoutSeconds is the lease TTL; 0 for polylock's default (15 s).
	// polylock renews the lease every third of it until Unlock.
	LockTimeoutSeconds int32
	// Size is the semaphore limit; 0 or 1 is a mutex.
	Size int32
	// NoAutoRenew: polylock does not renew the lease; the caller does
	// (Lock.Renew) before its TTL (LockTimeoutSeconds) runs out, counted
	// from the grant or the last renewal, or the lease ends and is
	// reported lost.
	NoAutoRenew bool
	// OnWaitStarted, if set, is called once when Lock starts waiting
	// because the lock is busy (on LDLM, whose server waits, as soon as the
	// waiting call is sent), on one of polylock's threads: it must return
	// quickly and not block. Callers (tests) that must act while the wait
	// is parked, such as ending its context, wait for it instead of
	// sleeping.
	OnWaitStarted func()
}

// LostEvent tells OnLost callbacks which lease was lost and why.
type LostEvent struct {
	Name         string
	Key          string
	FencingToken uint64
	HasToken     bool
	Reason       string
}

// Lock is one acquisition attempt's outcome and, while Locked, the lease.
// Its methods may be called from any goroutine, including OnLost callbacks.
type Lock struct {
	// Name is the lock's name.
	Name string
	// Key is the backend's id of the lease (Consul session id, …).
	Key string
	// Locked says whether the lock was taken (false again after Unlock).
	Locked bool

	// mu guards closed: calls hold it shared while they use ptr, freeing
	// takes it exclusively only to set closed, so a freed pointer (which C
	// may hand out again) is never used.
	mu     sync.RWMutex
	ptr    *C.polylock_lock
	closed bool
}

var errFreed = &Error{Code: "not_held", Message: "the lock was unlocked already", status: C.POLYLOCK_NOT_HELD}

// do runs one C call on the lock's handle; errFreed once it is freed.
func (l *Lock) do(f func(*C.polylock_lock) C.polylock_status) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return errFreed
	}
	return call(func() C.polylock_status { return f(l.ptr) })
}

// query reads one value from the lock's handle; zero once it is freed.
func query[T any](l *Lock, f func(*C.polylock_lock) T) T {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var zero T
	if l.closed {
		return zero
	}
	return f(l.ptr)
}

// free frees the handle once (releasing a lease it still holds). Locked is
// cleared here, under mu, so that Unlocks racing on one Lock do not race
// on it.
func (l *Lock) free() {
	l.mu.Lock()
	closed := l.closed
	l.closed = true
	l.Locked = false
	l.mu.Unlock()
	if !closed {
		// Outside the lock: a lost callback running now may call methods.
		C.polylock_lock_free(l.ptr)
	}
}

func (c *Client) newLock(name string, opts *LockOptions) (*Lock, error) {
	if opts == nil {
		opts = &LockOptions{}
	}
	size := opts.Size
	if size == 0 {
		size = 1
	}
	if size < 0 || opts.LockTimeoutSeconds < 0 || opts.WaitTimeoutSeconds < 0 {
		return nil, &Error{Code: "invalid_argument", Message: "size and timeouts must not be negative", status: C.POLYLOCK_INVALID_ARGUMENT}
	}
	cs, err := cString(name, "name")
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cs))
	var ptr *C.polylock_lock
	ttlMs := C.uint64_t(opts.LockTimeoutSeconds) * 1000
	if err := call(func() C.polylock_status {
		return C.polylock_lock_new(c.ptr, cs, C.uint32_t(size), ttlMs, nil, &ptr)
	}); err != nil {
		return nil, err
	}
	l := &Lock{Name: name, ptr: ptr}
	if opts.NoAutoRenew {
		if err := call(func() C.polylock_status { return C.polylock_lock_set_auto_renew(ptr, false) }); err != nil {
			C.polylock_lock_free(ptr)
			return nil, err
		}
	}
	runtime.SetFinalizer(l, func(l *Lock) { l.free() })
	return l, nil
}

// TryLock takes the lock if it is free now; the returned Lock's Locked says
// whether it was.
func (c *Client) TryLock(ctx context.Context, name string, opts *LockOptions) (*Lock, error) {
	l, err := c.newLock(name, opts)
	if err != nil {
		return nil, err
	}
	var acquired C.bool
	if err := l.do(func(p *C.polylock_lock) C.polylock_status { return C.polylock_try_acquire(p, &acquired) }); err != nil {
		l.free()
		return nil, err
	}
	if !bool(acquired) {
		l.free()
		return l, nil
	}
	l.held()
	return l, nil
}

// pending is one Lock call's acquisition, as its wait-started hook sees it.
type pending struct {
	// ptr is the handle acquiring; live for as long as the C call runs,
	// which is the only time the hook runs.
	ptr *C.polylock_lock
	// cancelled is set once the context ended.
	cancelled atomic.Bool
	onWait    func()
}

// Lock takes the lock, waiting up to WaitTimeoutSeconds (0: without limit)
// and until ctx ends. A wait that runs out gives ErrLockWaitTimeout; an
// ended context gives ctx.Err(): the pending acquisition is cancelled in C
// (polylock_acquire_cancel), so no thread stays blocked, and a lease
// granted just before the cancel is released before Lock returns.
func (c *Client) Lock(ctx context.Context, name string, opts *LockOptions) (*Lock, error) {
	l, err := c.newLock(name, opts)
	if err != nil {
		return nil, err
	}
	p := &pending{ptr: l.ptr}
	if opts != nil {
		p.onWait = opts.OnWaitStarted
	}
	timeoutMs := int64(-1)
	if opts != nil && opts.WaitTimeoutSeconds > 0 {
		timeoutMs = int64(opts.WaitTimeoutSeconds) * 1000
	}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline).Milliseconds()
		if left < 0 {
			left = 0
		}
		if timeoutMs < 0 || left < timeoutMs {
			timeoutMs = left
		}
	}
	// The hook's user_data: C memory holding a handle on p (a Go pointer
	// may not be kept by C). The hook never runs after the call returned.
	handle := cgo.NewHandle(p)
	slot := (*C.uintptr_t)(C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0)))))
	*slot = C.uintptr_t(handle)
	done := make(chan error, 1)
	go func() {
		err := l.do(func(ptr *C.polylock_lock) C.polylock_status {
			return C.polylock_acquire_with(ptr, C.int64_t(timeoutMs),
				C.polylock_wait_started_callback(C.polylockGoWaitStarted), unsafe.Pointer(slot))
		})
		handle.Delete()
		C.free(unsafe.Pointer(slot))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			l.free()
			if ctx.Err() != nil && (errors.Is(err, ErrLockWaitTimeout) || errors.Is(err, ErrCancelled)) {
				return nil, ctx.Err()
			}
			return nil, err
		}
		l.held()
		return l, nil
	case <-ctx.Done():
		// A cancel before the acquisition began is a no-op in C: the flag
		// makes the wait-started hook cancel it once it parks, and a grant
		// that needed no wait is released by the free below.
		p.cancelled.Store(true)
		l.do(func(ptr *C.polylock_lock) C.polylock_status { return C.polylock_acquire_cancel(ptr) })
		<-done   // prompt: cancelled, or granted just before
		l.free() // releases a lease granted before the cancel
		return nil, ctx.Err()
	}
}

func (l *Lock) held() {
	l.Locked = true
	var holder *C.char
	if l.do(func(p *C.polylock_lock) C.polylock_status { return C.polylock_holder(p, &holder) }) == nil {
		l.Key = C.GoString(holder)
		C.polylock_string_free(holder)
	}
}

// Unlock releases the lease and frees the lock. ErrLockLost if it was
// lost; ErrNotHeld if it was unlocked already. ErrConnection (the backend
// unreachable) leaves the lease held, renewed and in the Lock: call Unlock
// again to retry.
func (l *Lock) Unlock(ctx context.Context) error {
	err := l.do(func(p *C.polylock_lock) C.polylock_status { return C.polylock_release(p) })
	if errors.Is(err, ErrConnection) {
		return err
	}
	l.free()
	return err
}

// Renew renews the lease now: for its TTL from now (polylock also renews
// it on its own unless LockOptions.NoAutoRenew).
func (l *Lock) Renew(ctx context.Context) error {
	return l.do(func(p *C.polylock_lock) C.polylock_status { return C.polylock_renew(p) })
}

// IsHeld reports whether the lease is held and proven now.
func (l *Lock) IsHeld() bool {
	return query(l, func(p *C.polylock_lock) bool { return bool(C.polylock_is_held(p)) })
}

// TimeToExpiration is how long the lease is still proven held.
func (l *Lock) TimeToExpiration() time.Duration {
	ms := query(l, func(p *C.polylock_lock) C.uint64_t { return C.polylock_time_to_expiration_ms(p) })
	return time.Duration(ms) * time.Millisecond
}

// FencingToken is the lease's fencing token (false where the backend has none).
func (l *Lock) FencingToken() (uint64, bool) {
	var has C.bool
	var token C.uint64_t
	err := l.do(func(p *C.polylock_lock) C.polylock_status { return C.polylock_fencing_token(p, &has, &token) })
	if err != nil {
		return 0, false
	}
	return uint64(token), bool(has)
}

// OnLost runs f (on a background goroutine's thread) if the lease is lost;
// at most once. A later call replaces f. A panic in f is recovered and
// printed to stderr (it cannot unwind through C): the process and other
// callbacks go on.
func (l *Lock) OnLost(f func(LostEvent)) error {
	slot := (*C.uintptr_t)(C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0)))))
	*slot = C.uintptr_t(cgo.NewHandle(f))
	// On failure polylock_on_lost frees user_data through polylockGoFree.
	err := l.do(func(p *C.polylock_lock) C.polylock_status {
		return C.polylock_on_lost(p, C.polylock_lost_callback(C.polylockGoLost),
			unsafe.Pointer(slot), C.polylock_user_data_free(C.polylockGoFree))
	})
	if err == errFreed {
		polylockGoFree(unsafe.Pointer(slot))
	}
	return err
}

//export polylockGoLost
func polylockGoLost(userData unsafe.Pointer, event *C.polylock_lost_event) {
	f := cgo.Handle(*(*C.uintptr_t)(userData)).Value().(func(LostEvent))
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "polylock: OnLost callback for %q panicked: %v\n", C.GoString(event.name), r)
		}
	}()
	f(LostEvent{
		Name:         C.GoString(event.name),
		Key:          C.GoString(event.holder),
		FencingToken: uint64(event.fencing_token),
		HasToken:     bool(event.has_fencing_token),
		Reason:       C.GoString(event.reason),
	})
}

//export polylockGoWaitStarted
func polylockGoWaitStarted(userData unsafe.Pointer) {
	p := cgo.Handle(*(*C.uintptr_t)(userData)).Value().(*pending)
	if p.cancelled.Load() {
		// The context ended before the acquisition began (its cancel
		// found nothing pending): cancel it now that it waits.
		C.polylock_acquire_cancel(p.ptr)
	}
	if p.onWait != nil {
		p.onWait()
	}
}

//export polylockGoFree
func polylockGoFree(userData unsafe.Pointer) {
	cgo.Handle(*(*C.uintptr_t)(userData)).Delete()
	C.free(userData)
}
