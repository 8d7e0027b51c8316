//! `NativeEvents`: the distributed lock/unlock event stream of one name.

use std::sync::Arc;

use napi::bindgen_prelude::BigInt;
use napi_derive::napi;
use tokio::sync::{watch, Mutex};

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

/// A subscription to a name's lock events.
#[napi]
pub struct NativeEvents {
    inner: Arc<Mutex<polylock::LockEvents>>,
    closed: watch::Sender<bool>,
}

impl NativeEvents {
    pub(crate) fn new(inner: polylock::LockEvents) -> Self {
        NativeEvents {
            inner: Arc::new(Mutex::new(inner)),
            closed: watch::Sender::new(false),
        }
    }
}

#[napi]
impl NativeEvents {
    /// The next event; null once closed.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<LockEventJs>> {
        let mut closed = self.closed.subscribe();
        if *closed.borrow() {
            return Ok(None);
        }
        let mut stream = self.inner.lock().await;
        let event = tokio::select! {
            event = stream.next() => event,
            _ = closed.wait_for(|closed| *closed) => None,
        };
        Ok(event.map(|event| LockEventJs {
            kind: format!("{:?}", event.kind).to_lowercase(),
            name: event.name.clone(),
            holder: event.holder.clone(),
            fencing_token: event.fencing_token.map(BigInt::from),
        }))
    }

    /// Resolves once the stream sees every change (on Consul, after its
    /// blocking query's first read).
    #[napi]
    pub async fn ready(&self) -> napi::Result<()> {
        self.inner.lock().await.ready().await;
        Ok(())
    }

    /// Ends the subscription; a pending `next()` resolves to null.
    #[napi]
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}
