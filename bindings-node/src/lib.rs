//! Node.js bindings for polylock: the native addon (`polylock.node`) behind
//! the `polylock` npm package, whose JavaScript layer (`index.js`) adds
//! AbortSignal handling, `Symbol.asyncDispose`, async iteration and error
//! codes.
//!
//! Every call that talks to a backend is async (a Promise) and runs on
//! polylock's runtime, never on Node's thread. Errors reach JavaScript as
//! `"<code>: <message>"` with the core's stable code; `index.js` turns them
//! into `PolylockError`s with `err.code`.

// napi-derive registers exports only outside `cfg(test)`.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod errors;
mod lease;
mod lock;
mod registry;
mod watch;
