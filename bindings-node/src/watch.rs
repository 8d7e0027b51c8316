//! `NativeEvents`: the distributed lock/unlock event stream of one name.

use std::sync::Arc;

use napi::bindgen_prelude::{BigInt, ToNapiValue};
use napi::{sys, Env};
use napi_derive::napi;
use tokio::sync::{watch, Mutex};

use crate::bridge::{self, IntoJs, Raw};

/// One lock event.
#[napi(object)]
pub struct LockEventJs {
    /// `"acquired"`, `"released"`, `"expired"` or `"lost"`.
    pub kind: String,
    /// The lock's name.
    pub name: String,
    /// The holder the event is about.
    pub holder: String,
    /// Its fencing token, if any.
    pub fencing_token: Option<BigInt>,
}

/// A subscription to a name's lock events. Closed or collected, it ends (a
/// pending `next()` resolves to null); closed, it frees the stream at once
/// (its backend subscription and buffer), not when collected.
#[napi]
pub struct NativeEvents {
    /// The stream; `None` once closed.
    inner: Arc<Mutex<Option<polylock::LockEvents>>>,
    closed: watch::Sender<bool>,
}

impl NativeEvents {
    pub(crate) fn new(inner: polylock::LockEvents) -> Self {
        NativeEvents {
            inner: Arc::new(Mutex::new(Some(inner))),
            closed: watch::Sender::new(false),
        }
    }
}

impl Drop for NativeEvents {
    fn drop(&mut self) {
        self.closed.send_replace(true);
    }
}

/// An event, or none once closed.
struct Next(Option<polylock::LockEvent>);

impl IntoJs for Next {
    fn into_js(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        let event = self.0.map(|event| LockEventJs {
            kind: format!("{:?}", event.kind).to_lowercase(),
            name: event.name.clone(),
            holder: event.holder.clone(),
            fencing_token: event.fencing_token.map(BigInt::from),
        });
        unsafe { ToNapiValue::to_napi_value(env, event) }
    }
}

#[napi]
impl NativeEvents {
    /// A Promise of the next event; null once closed.
    #[napi]
    pub fn next(&self, env: Env) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let mut closed = self.closed.subscribe();
        let inner = self.inner.clone();
        polylock::spawn(async move {
            let mut stream = inner.lock().await;
            let event = match stream.as_mut() {
                Some(stream) if !*closed.borrow() => tokio::select! {
                    event = stream.next() => event,
                    _ = closed.wait_for(|closed| *closed) => None,
                },
                _ => None,
            };
            drop(stream);
            deferred.settle_result(Ok(Next(event)));
        });
        Ok(promise)
    }

    /// A Promise that resolves once the stream sees every change (on
    /// Consul, after its blocking query's first read).
    #[napi]
    pub fn ready(&self, env: Env) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let inner = self.inner.clone();
        let mut closed = self.closed.subscribe();
        polylock::spawn(async move {
            if let Some(stream) = inner.lock().await.as_mut() {
                tokio::select! {
                    _ = stream.ready() => {}
                    _ = closed.wait_for(|closed| *closed) => {}
                }
            }
            deferred.settle_result(Ok(()));
        });
        Ok(promise)
    }

    /// Ends the subscription and frees the stream; a pending `next()`
    /// resolves to null.
    #[napi]
    pub fn close(&self) {
        self.closed.send_replace(true);
        let inner = self.inner.clone();
        // After a pending `next()` let go of the stream.
        polylock::spawn(async move {
            inner.lock().await.take();
        });
    }
}
