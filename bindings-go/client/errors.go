package client

import (
	"errors"
	"fmt"

	"github.com/polylock/polylock/bindings-go"
)

// go-ldlm's errors, with its messages, for errors.Is (or ==: the calls
// return these values themselves, not copies).
var (
	// ErrLockDoesNotExist: Unlock of a name this client holds no lease of.
	ErrLockDoesNotExist = errors.New("a lock by that name does not exist")
	// ErrInvalidLockKey: Unlock with a key that is not the key of this
	// client's lease of that name (or of a lease that was lost).
	ErrInvalidLockKey = errors.New("invalid lock key")
	// ErrLockWaitTimeout: Lock waited WaitTimeoutSeconds without getting
	// the lock.
	ErrLockWaitTimeout = errors.New("timeout waiting to acquire lock")
	// ErrLockNotLocked: Lock.Unlock or Lock.Renew on a Lock whose Locked
	// is false.
	ErrLockNotLocked = errors.New("lock is not locked")
	// ErrLockDoesNotExistOrInvalidKey: Renew of a name and key this client
	// holds no lease of (or of a lease that was lost).
	ErrLockDoesNotExistOrInvalidKey = errors.New("lock does not exist or invalid key")
	// ErrInvalidLockSize: a negative Size.
	ErrInvalidLockSize = errors.New("lock size must be greater than 0")
	// ErrLockSizeMismatch: the lock is held with another Size (the first
	// holder's Size stands while the lock is held).
	ErrLockSizeMismatch = errors.New("lock size mismatch")
)

// Errors of this package that go-ldlm reports without a named value.
var (
	// ErrInvalidLockTimeout: Renew with a timeout of 0 or less.
	ErrInvalidLockTimeout = errors.New("lock timeout must be greater than 0")
	// ErrTryLockWaitTimeout: TryLock with WaitTimeoutSeconds set.
	ErrTryLockWaitTimeout = errors.New("wait timeout not supported for TryLock")
	// ErrLockTimeoutMismatch: Renew with a timeout other than the
	// LockTimeoutSeconds the lock was taken with (a polylock lease keeps
	// its TTL).
	ErrLockTimeoutMismatch = errors.New("polylock renews a lease for the LockTimeoutSeconds it was taken with")
	// ErrClientClosed: a call after Close.
	ErrClientClosed = errors.New("the client is closed")
	// ErrDialOption: New was given gRPC dial options; polylock does not
	// use gRPC-Go, so they cannot take effect.
	ErrDialOption = errors.New("gRPC dial options are not supported: polylock has its own connection; put connection settings in Config or the Address URL")
	// ErrConfig: a Config field that does not apply (an LDLM setting with
	// another backend's URL, a key without a certificate, …).
	ErrConfig = errors.New("invalid client config")
)

// ErrLockLost is polylock's error for a lease that was lost (expired
// unrenewed, or taken away); Unlock and Renew of a lost lease return an
// error that is both this and go-ldlm's error for a key the server no
// longer knows.
var ErrLockLost = polylock.ErrLockLost

// both is an error that errors.Is matches against ldlm (go-ldlm's error)
// and cause (polylock's, whose message it shows).
func both(ldlm, cause error) error {
	return fmt.Errorf("%w (%w)", ldlm, cause)
}

// lockError turns the error of a Lock or TryLock attempt into go-ldlm's;
// answered says whether go-ldlm would have had a server answer, so a Lock
// (not locked) goes with the error.
func lockError(err error) (mapped error, answered bool) {
	switch {
	case errors.Is(err, polylock.ErrLockWaitTimeout):
		return ErrLockWaitTimeout, true
	case errors.Is(err, polylock.ErrLimitMismatch):
		return ErrLockSizeMismatch, true
	case errors.Is(err, polylock.ErrInvalidArgument):
		return err, true
	}
	return err, false
}
