// Package client has go-ldlm's client API (github.com/imoore76/go-ldlm/client)
// over polylock, so code written for go-ldlm runs with only its import path
// changed: on an LDLM server ("host:port", as go-ldlm) and, with a polylock
// URL as Config.Address (consul://, mongodb://, memory://, ldlm://), on
// every backend polylock has.
//
// It wraps package polylock: each Lock is a polylock lease, renewed by
// polylock in the background (or by the caller, with NoAutoRenew and a
// LockTimeoutSeconds). Where polylock differs from go-ldlm, the calls say
// so with an error rather than ignore a setting; see each item's comment.
package client

import (
	"context"
	"fmt"
	"sync"

	"github.com/polylock/polylock/bindings-go"
)

// Config is go-ldlm's client configuration. Address is "host:port" of an
// LDLM server or a polylock URL; the other fields are LDLM settings (an
// error with another backend's URL, whose own options go in its URL).
type Config struct {
	// Address is host:port of an LDLM server (ldlm://host:port), or a
	// polylock URL: consul://host:port, mongodb://…, memory://, ldlm://,
	// ldlms://.
	Address string
	// NoAutoRenew: locks taken with a LockTimeoutSeconds are not renewed
	// in the background; call Renew before the timeout passes (counted
	// from the grant or the last Renew), or the lease ends. Locks without
	// a LockTimeoutSeconds are renewed by polylock all the same (go-ldlm's
	// have no timeout at all).
	NoAutoRenew bool
	// UseTls connects with TLS (ldlms://).
	UseTls bool
	// SkipVerify accepts any server certificate (tests only).
	SkipVerify bool
	// CAFile is a PEM file of the CA that signs the server's certificate.
	CAFile string
	// TlsCert is a PEM client certificate (TLS is used when it is set).
	TlsCert string
	// TlsKey is TlsCert's PEM private key.
	TlsKey string
	// Password is sent to the LDLM server with every call (the URL's
	// password, ldlm://:PASSWORD@host). Without it polylock reads
	// LDLM_PASSWORD. Never shown in errors or in Config's String.
	Password string
	// MaxRetries is how often a call is retried after a network error;
	// 0 keeps polylock's default (3; an ldlm:// Address with max_retries=0
	// asks for none).
	MaxRetries int
}

// String shows the Config with its Password redacted (%v and %+v use it).
func (c Config) String() string {
	shown := c
	if shown.Password != "" {
		shown.Password = "[redacted]"
	}
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(shown))
}

// GoString is String for %#v.
func (c Config) GoString() string { return "client.Config" + c.String() }

// Client is go-ldlm's Client: one connection to a backend and the leases
// taken through it. Its methods may be called from any goroutine.
type Client struct {
	pl          *polylock.Client
	ctx         context.Context
	cancel      context.CancelFunc
	stop        func() bool
	gone        chan struct{} // closed when the context's letGo is done
	noAutoRenew bool

	mu     sync.Mutex
	closed bool
	// held is this client's leases by name (several for a Size above 1).
	held map[string][]*lease
}

// lease is one lease this client holds.
type lease struct {
	key     string
	timeout int32
	lock    *polylock.Lock
}

// New connects to the backend Config names. Cancelling ctx aborts the
// client's operations, as in go-ldlm: a waiting Lock returns ctx.Err(),
// every later call returns ctx.Err(), and the client lets go of its leases
// (it could not unlock them any more). gRPC dial options (go-ldlm's
// variadic argument) cannot apply to polylock's connection: giving any is
// ErrDialOption.
func New(ctx context.Context, conf Config, opts ...any) (*Client, error) {
	if len(opts) > 0 {
		return nil, fmt.Errorf("%w (got %d: %T…)", ErrDialOption, len(opts), opts[0])
	}
	if ctx == nil {
		return nil, fmt.Errorf("%w: New needs a context", ErrConfig)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	address, err := polylockURL(conf)
	if err != nil {
		return nil, err
	}
	pl, err := polylock.New(address)
	if err != nil {
		return nil, err
	}
	inner, cancel := context.WithCancel(ctx)
	c := &Client{pl: pl, ctx: inner, cancel: cancel, noAutoRenew: conf.NoAutoRenew, held: map[string][]*lease{}}
	c.gone = make(chan struct{})
	c.stop = context.AfterFunc(inner, func() { c.letGo(); close(c.gone) })
	return c, nil
}

// letGo releases every lease the client holds (its context ended).
func (c *Client) letGo() {
	c.mu.Lock()
	held := c.held
	c.held = map[string][]*lease{}
	c.mu.Unlock()
	for _, leases := range held {
		for _, l := range leases {
			l.lock.Unlock(context.Background())
		}
	}
}

// usable is the error for a call now: ErrClientClosed after Close,
// ctx.Err() once New's context ended.
func (c *Client) usable() error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClientClosed
	}
	return c.ctx.Err()
}

// Close releases the client's leases, ends its waiting Lock calls
// (ErrClientClosed) and closes the connection. Later calls give
// ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	c.closed = true
	c.mu.Unlock()
	if !c.stop() {
		<-c.gone // the context ended first: its letGo runs; wait for it
	}
	c.cancel() // ends waiting Lock calls
	c.letGo()
	return c.pl.Close()
}

// keep records a lease this client took; false (and the lease released)
// when the client was closed or its context ended meanwhile.
func (c *Client) keep(name string, l *lease) bool {
	c.mu.Lock()
	if !c.closed && c.ctx.Err() == nil {
		c.held[name] = append(c.held[name], l)
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	l.lock.Unlock(context.Background())
	return false
}

// find is this client's lease of name with key; found says whether it
// holds any lease of name.
func (c *Client) find(name, key string) (l *lease, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.held[name] {
		if l.key == key {
			return l, true
		}
	}
	return nil, len(c.held[name]) > 0
}

// forget drops l from the client's leases.
func (c *Client) forget(name string, l *lease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	leases := c.held[name]
	for i, other := range leases {
		if other == l {
			leases = append(leases[:i:i], leases[i+1:]...)
			break
		}
	}
	if len(leases) == 0 {
		delete(c.held, name)
	} else {
		c.held[name] = leases
	}
}
