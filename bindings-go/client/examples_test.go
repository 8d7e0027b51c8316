package client_test

// go-ldlm's README examples (github.com/imoore76/go-ldlm/client), as
// tests, on every backend: the calls are the README's, with the import
// path changed; each test then checks what the example promises. (The
// README's "Common Patterns" snippets call Lock and TryLock with one
// argument and one result, which go-ldlm's own client does not compile
// either; here they take go-ldlm's real signatures.)

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/polylock/polylock/bindings-go/client"
)

// "Create a Client"
func TestExampleCreateAClient(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c, err := client.New(context.Background(), client.Config{
			Address: address,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.TryLock("after-close", nil); !errors.Is(err, client.ErrClientClosed) {
			t.Fatalf("a call after Close: %v", err)
		}
	})
}

// "Simple lock"
func TestExampleSimpleLock(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c, other := connect(t, address), connect(t, address)
		name := unique("my-task")
		var lock *client.Lock
		var err error

		lock, err = c.Lock(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Unlock()

		// Perform task... while nobody else has the lock.
		if !lock.Locked || lock.Name != name || lock.Key == "" {
			t.Fatalf("lock: %+v", lock)
		}
		if busy, err := other.TryLock(name, nil); err != nil || busy.Locked {
			t.Fatalf("another client took a held lock: %+v %v", busy, err)
		}
	})
}

// "Wait timeout"
func TestExampleWaitTimeout(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c, holder := connect(t, address), connect(t, address)
		name := unique("my-task")
		held, err := holder.Lock(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Unlock()

		lock, err := c.Lock(name, &client.LockOptions{WaitTimeoutSeconds: 1})
		if err != nil {
			// handle err
			if !errors.Is(err, client.ErrLockWaitTimeout) {
				t.Fatalf("the error is not because the wait timeout was exceeded: %v", err)
			}
		} else {
			t.Fatal("took a held lock")
		}
		defer lock.Unlock()

		if lock.Locked || err != client.ErrLockWaitTimeout {
			t.Fatalf("after the wait: %+v %v", lock, err)
		}
		if err := lock.Unlock(); err != client.ErrLockNotLocked {
			t.Fatalf("Unlock of a lock not taken: %v", err)
		}
	})
}

// "Simple try lock"
func TestExampleSimpleTryLock(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c, other := connect(t, address), connect(t, address)
		name := unique("my-task")
		worked := func(c *client.Client) bool {
			lock, err := c.TryLock(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !lock.Locked {
				// Something else is holding the lock
				return false
			}
			defer lock.Unlock()
			// Do work... while the other client finds it held.
			if busy, err := other.TryLock(name, nil); err != nil || busy.Locked {
				t.Fatalf("held twice: %+v %v", busy, err)
			}
			return true
		}
		if !worked(c) {
			t.Fatal("TryLock of a free lock did not take it")
		}
		held, err := other.TryLock(name, nil)
		if err != nil || !held.Locked {
			t.Fatalf("free again after the deferred Unlock: %+v %v", held, err)
		}
		if worked(c) {
			t.Fatal("TryLock took a held lock")
		}
		if _, err := c.TryLock(name, &client.LockOptions{WaitTimeoutSeconds: 1}); err != client.ErrTryLockWaitTimeout {
			t.Fatalf("TryLock with a wait timeout: %v", err)
		}
	})
}

// "Simple unlock": with the key; a wrong key, or a lock not held, is
// go-ldlm's error for it.
func TestExampleSimpleUnlock(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c, other := connect(t, address), connect(t, address)
		name := unique("my_task")
		lock, err := c.Lock(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if unlocked, err := c.Unlock(name, "not-"+lock.Key); unlocked || err != client.ErrInvalidLockKey {
			t.Fatalf("Unlock with a wrong key: %v %v", unlocked, err)
		}

		unlocked, err := c.Unlock(name, lock.Key)

		if !unlocked || err != nil {
			t.Fatalf("Unlock with the key: %v %v", unlocked, err)
		}
		if next, err := other.TryLock(name, nil); err != nil || !next.Locked {
			t.Fatalf("not free after Unlock: %+v %v", next, err)
		} else {
			next.Unlock()
		}
		if unlocked, err := c.Unlock(name, lock.Key); unlocked || err != client.ErrLockDoesNotExist {
			t.Fatalf("a second Unlock: %v %v", unlocked, err)
		}
	})
}

// "Renew Lock"
func TestExampleRenewLock(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c := connect(t, address)
		name := unique("task1-lock")
		lock, err := c.Lock(name, &client.LockOptions{
			LockTimeoutSeconds: 300,
		})

		if err != nil {
			t.Fatal(err)
		}

		// There was no wait timeout set, so if there was no error, the lock was acquired
		defer lock.Unlock()

		// do some work, then

		if _, err := c.Renew(name, lock.Key, 300); err != nil {
			t.Fatal(err)
		}

		// do some more work, then

		if _, err := c.Renew(name, lock.Key, 300); err != nil {
			t.Fatal(err)
		}

		// do some more work

		if err := lock.Renew(300); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Renew(name, lock.Key, 200); !errors.Is(err, client.ErrLockTimeoutMismatch) {
			t.Fatalf("Renew with another timeout: %v", err)
		}
		if _, err := c.Renew(name, "not-"+lock.Key, 300); err != client.ErrLockDoesNotExistOrInvalidKey {
			t.Fatalf("Renew with a wrong key: %v", err)
		}
		if _, err := c.Renew(name, lock.Key, 0); err != client.ErrInvalidLockTimeout {
			t.Fatalf("Renew with timeout 0: %v", err)
		}
	})
}

// "Renew Lock" with NoAutoRenew: the caller's Renew keeps the lease; left
// unrenewed, it ends at its timeout and another client takes the lock.
func TestExampleRenewLockWithNoAutoRenew(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c, err := client.New(context.Background(), client.Config{Address: address, NoAutoRenew: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		other := connect(t, address)
		name := unique("task1-lock")
		lock, err := c.Lock(name, &client.LockOptions{LockTimeoutSeconds: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Renew(name, lock.Key, 2); err != nil {
			t.Fatal(err)
		}
		// Nobody renews it now: the other client's wait ends with the lease.
		next, err := other.Lock(name, &client.LockOptions{WaitTimeoutSeconds: 60})
		if err != nil || !next.Locked {
			t.Fatalf("the unrenewed lease did not end: %+v %v", next, err)
		}
		defer next.Unlock()
		unlocked, err := c.Unlock(name, lock.Key)
		if unlocked || !errors.Is(err, client.ErrInvalidLockKey) || !errors.Is(err, client.ErrLockLost) {
			t.Fatalf("Unlock of the ended lease: %v %v", unlocked, err)
		}
	})
}

// "Primary / Secondary Failover": the secondary waits for the lock and
// becomes primary when the primary's process ends (its client closes).
func TestExamplePrimarySecondaryFailover(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		name := unique("application-primary")
		primary, err := client.New(context.Background(), client.Config{Address: address})
		if err != nil {
			t.Fatal(err)
		}
		became := make(chan string, 2)
		failed := make(chan error, 2)
		serve := func(who string, c *client.Client) {
			lock, err := c.Lock(name, nil)

			if err != nil {
				failed <- err
				return
			}

			if !lock.Locked {
				// This should not happen
				failed <- errors.New("error: lock returned but not locked")
				return
			}

			became <- who // "Became primary. Performing work..."
		}
		serve("first", primary)
		if who := <-became; who != "first" {
			t.Fatal(who)
		}
		go serve("second", connect(t, address))
		if busy, err := connect(t, address).TryLock(name, nil); err != nil || busy.Locked {
			t.Fatalf("two primaries: %+v %v", busy, err)
		}
		primary.Close() // the primary's process ends
		select {
		case who := <-became:
			if who != "second" {
				t.Fatal(who)
			}
		case err := <-failed:
			t.Fatal(err)
		case <-time.After(60 * time.Second):
			t.Fatal("the secondary did not become primary within 60 s")
		}
	})
}

// "Task Locking": a worker skips the work items another worker holds.
func TestExampleTaskLocking(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		c, busyWorker := connect(t, address), connect(t, address)
		queue := []string{unique("work-a"), unique("work-b"), unique("work-c")}
		inProgress, err := busyWorker.Lock(queue[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer inProgress.Unlock()
		var done, skipped []string
		for _, workItem := range queue {
			func() {
				lock, err := c.TryLock(workItem, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !lock.Locked {
					skipped = append(skipped, workItem) // "Work %s already in progress"
					return
				}
				defer lock.Unlock()

				done = append(done, workItem) // do work ...
			}()
		}
		if len(done) != 2 || len(skipped) != 1 || skipped[0] != queue[1] {
			t.Fatalf("done %v, skipped %v", done, skipped)
		}
	})
}

// "Resource Utilization Limiting": Size 10 admits 10 clients at once; a
// different Size while it is held is ErrLockSizeMismatch.
func TestExampleResourceUtilizationLimiting(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, address string) {
		name := unique("ElasticSearchSlot")
		var locks []*client.Lock
		for i := 0; i < 10; i++ {
			client1 := connect(t, address)
			lock, err := client1.Lock(name, &client.LockOptions{Size: 10})
			if err != nil {
				t.Fatal(err)
			}
			if !lock.Locked {
				t.Fatal("error: lock returned but not locked")
			}
			locks = append(locks, lock)
		}
		full, err := connect(t, address).TryLock(name, &client.LockOptions{Size: 10})
		if err != nil || full.Locked {
			t.Fatalf("an 11th slot: %+v %v", full, err)
		}
		other, err := connect(t, address).Lock(name, &client.LockOptions{Size: 5})
		if err != client.ErrLockSizeMismatch || other == nil || other.Locked {
			t.Fatalf("another size: %+v %v", other, err)
		}

		// Perform ES operation

		for _, lock := range locks {
			if err := lock.Unlock(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
