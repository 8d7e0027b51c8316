//! Node.js bindings for polylock: the native addon (prebuilt as
//! `polylock.<platform>.node`, or built from source as `polylock.node`) behind
//! the `polylock` npm package, whose JavaScript layer (`index.js`) adds
//! AbortSignal handling, `Symbol.asyncDispose`, async iteration and the
//! lost-listener bookkeeping.
//!
//! Every call that talks to a backend returns a Promise made on the JS
//! thread; its work runs on polylock's runtime (one hop there) and settles
//! the Promise from the runtime thread that finishes it, through one
//! thread-safe function per environment (one hop back; see `bridge.rs`).
//! There is no napi async runtime. A lock handle is a
//! [`polylock::LeaseSlot`]. Errors are `PolylockError`s made natively, with
//! the stable `code` (see `errors.rs`).

// napi-derive registers exports only outside `cfg(test)`.
#![cfg_attr(test, allow(dead_code))]

mod bridge;
mod client;
mod errors;
mod lease;
mod lock;
mod napi_raw;
mod registry;
mod watch;
