package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/polylock/polylock/bindings-go"
)

// LockOptions are go-ldlm's options of Lock and TryLock (nil: all zero).
type LockOptions struct {
	// WaitTimeoutSeconds bounds Lock's wait (ErrLockWaitTimeout); 0 waits
	// as long as it takes. TryLock refuses it (ErrTryLockWaitTimeout).
	WaitTimeoutSeconds int32
	// LockTimeoutSeconds is the lease's TTL (1 to 86400). 0, go-ldlm's "no
	// timeout", is polylock's default TTL (15 s) renewed by polylock until
	// Unlock, even with Config.NoAutoRenew.
	LockTimeoutSeconds int32
	// Size is the lock's size (a semaphore of Size holders); 0 is 1. The
	// first holder's Size stands while the lock is held: another is
	// ErrLockSizeMismatch.
	Size int32
}

// Lock is go-ldlm's Lock: the outcome of a Lock, TryLock or Renew call.
// Its fields are that call's answer; Unlock does not change them.
type Lock struct {
	client *Client
	// Name is the lock's name.
	Name string
	// Key is the lease's key (polylock's holder id: the LDLM key, the
	// Consul session, …), for Client.Unlock and Client.Renew.
	Key string
	// Locked says whether the call took the lock.
	Locked bool
}

// Unlock unlocks the lock (Client.Unlock with its Name and Key);
// ErrLockNotLocked if Locked is false.
func (l *Lock) Unlock() error {
	if !l.Locked || l.client == nil {
		return ErrLockNotLocked
	}
	_, err := l.client.Unlock(l.Name, l.Key)
	return err
}

// Renew renews the lock (Client.Renew with its Name and Key);
// ErrLockNotLocked if Locked is false.
func (l *Lock) Renew(lockTimeoutSeconds int32) error {
	if !l.Locked || l.client == nil {
		return ErrLockNotLocked
	}
	_, err := l.client.Renew(l.Name, l.Key, lockTimeoutSeconds)
	return err
}

// options checks o and makes polylock's options of it.
func (c *Client) options(o *LockOptions) (*LockOptions, *polylock.LockOptions, error) {
	if o == nil {
		o = &LockOptions{}
	}
	if o.Size < 0 {
		return o, nil, ErrInvalidLockSize
	}
	if o.WaitTimeoutSeconds < 0 || o.LockTimeoutSeconds < 0 {
		return o, nil, fmt.Errorf("%w: WaitTimeoutSeconds and LockTimeoutSeconds must not be negative", polylock.ErrInvalidArgument)
	}
	return o, &polylock.LockOptions{
		WaitTimeoutSeconds: o.WaitTimeoutSeconds,
		LockTimeoutSeconds: o.LockTimeoutSeconds,
		Size:               o.Size,
		NoAutoRenew:        c.noAutoRenew && o.LockTimeoutSeconds > 0,
	}, nil
}

// Lock takes the lock name, waiting up to WaitTimeoutSeconds (0: as long
// as it takes) or until New's context ends. When the wait runs out: a Lock
// with Locked false and ErrLockWaitTimeout; another Size than the
// holders': ErrLockSizeMismatch (with a Lock, as go-ldlm). A connection
// error or the ended context: a nil Lock.
func (c *Client) Lock(name string, o *LockOptions) (*Lock, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	o, opts, err := c.options(o)
	if err != nil {
		return &Lock{client: c, Name: name}, err
	}
	l, err := c.pl.Lock(c.ctx, name, opts)
	return c.taken(name, o, l, err)
}

// TryLock takes the lock name if it is free now; the returned Lock's
// Locked says whether it was (nil error either way).
func (c *Client) TryLock(name string, o *LockOptions) (*Lock, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if o != nil && o.WaitTimeoutSeconds > 0 {
		return nil, ErrTryLockWaitTimeout
	}
	o, opts, err := c.options(o)
	if err != nil {
		return &Lock{client: c, Name: name}, err
	}
	l, err := c.pl.TryLock(c.ctx, name, opts)
	if err == nil && !l.Locked {
		return &Lock{client: c, Name: name}, nil
	}
	return c.taken(name, o, l, err)
}

// taken records a lease Lock or TryLock took, or maps their error.
func (c *Client) taken(name string, o *LockOptions, l *polylock.Lock, err error) (*Lock, error) {
	if err != nil {
		if stop := c.usable(); stop != nil {
			return nil, stop // closed or cancelled during the wait
		}
		mapped, answered := lockError(err)
		if answered {
			return &Lock{client: c, Name: name}, mapped
		}
		return nil, mapped
	}
	if !c.keep(name, &lease{key: l.Key, timeout: o.LockTimeoutSeconds, lock: l}) {
		return nil, c.usable()
	}
	return &Lock{client: c, Name: name, Key: l.Key, Locked: true}, nil
}

// Unlock releases this client's lease of name whose key is key: true when
// it did. ErrInvalidLockKey when the client holds name under another key,
// ErrLockDoesNotExist when it holds no lease of name (a lease of another
// client cannot be unlocked by its key here); a lost lease gives an error
// that is both ErrInvalidLockKey and ErrLockLost. A connection error keeps
// the lease, held and renewed: call Unlock again.
func (c *Client) Unlock(name string, key string) (bool, error) {
	if err := c.usable(); err != nil {
		return false, err
	}
	l, holdsName := c.find(name, key)
	if l == nil {
		if holdsName {
			return false, ErrInvalidLockKey
		}
		return false, ErrLockDoesNotExist
	}
	err := l.lock.Unlock(c.ctx)
	switch {
	case err == nil:
		c.forget(name, l)
		return true, nil
	case errors.Is(err, polylock.ErrConnection):
		return false, err
	case errors.Is(err, polylock.ErrLockLost):
		c.forget(name, l)
		return false, both(ErrInvalidLockKey, err)
	}
	c.forget(name, l)
	return false, err
}

// Renew renews this client's lease of name whose key is key, for its
// LockTimeoutSeconds from now. A polylock lease keeps the TTL it was
// taken with, so lockTimeoutSeconds must be that LockTimeoutSeconds
// (ErrLockTimeoutMismatch otherwise; a lock taken without one is renewed
// by polylock and cannot be renewed here). ErrLockDoesNotExistOrInvalidKey
// when the client holds no such lease, or it was lost (then the error is
// also ErrLockLost, and the Lock's Locked is false).
func (c *Client) Renew(name string, key string, lockTimeoutSeconds int32) (*Lock, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if lockTimeoutSeconds <= 0 {
		return nil, ErrInvalidLockTimeout
	}
	l, _ := c.find(name, key)
	if l == nil {
		return &Lock{client: c, Name: name, Key: key}, ErrLockDoesNotExistOrInvalidKey
	}
	switch l.timeout {
	case lockTimeoutSeconds:
	case 0:
		return nil, fmt.Errorf("%w: %q was taken without a LockTimeoutSeconds, so polylock renews it itself", ErrLockTimeoutMismatch, name)
	default:
		return nil, fmt.Errorf("%w: %q was taken with LockTimeoutSeconds %d, renewed with %d", ErrLockTimeoutMismatch, name, l.timeout, lockTimeoutSeconds)
	}
	err := l.lock.Renew(c.ctx)
	if errors.Is(err, polylock.ErrLockLost) || errors.Is(err, polylock.ErrNotHeld) {
		c.forget(name, l)
		l.lock.Unlock(context.Background()) // frees the handle
		return &Lock{client: c, Name: name, Key: key}, both(ErrLockDoesNotExistOrInvalidKey, err)
	}
	if err != nil {
		return nil, err
	}
	return &Lock{client: c, Name: name, Key: key, Locked: true}, nil
}
