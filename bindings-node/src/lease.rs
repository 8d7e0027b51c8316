//! `NativeLease`: a held lease.

use std::sync::Arc;

use napi::bindgen_prelude::{BigInt, Function};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::errors::IntoJs;

/// What a lost callback receives.
#[napi(object)]
pub struct LostEventJs {
    /// The lock's name.
    pub name: String,
    /// The backend's id of the lost lease.
    pub holder: String,
    /// The lost lease's fencing token, if the backend has them.
    pub fencing_token: Option<BigInt>,
    /// Why the lease was lost.
    pub reason: String,
}

/// A held lease.
#[napi]
pub struct NativeLease {
    inner: Arc<polylock::Lease>,
}

impl NativeLease {
    pub(crate) fn new(inner: Arc<polylock::Lease>) -> Self {
        NativeLease { inner }
    }
}

#[napi]
impl NativeLease {
    /// The lock's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// The backend's id of this lease.
    #[napi(getter)]
    pub fn holder(&self) -> String {
        self.inner.holder().to_string()
    }

    /// Strictly increasing per name; null where the backend has none.
    #[napi(getter)]
    pub fn fencing_token(&self) -> Option<BigInt> {
        self.inner.fencing_token().map(BigInt::from)
    }

    /// The granted TTL in ms.
    #[napi(getter)]
    pub fn ttl(&self) -> f64 {
        self.inner.ttl().as_secs_f64() * 1000.0
    }

    /// True while held and proven.
    #[napi(getter)]
    pub fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// Ms the lease is still proven held (0 once it is not).
    #[napi(getter)]
    pub fn time_to_expiration(&self) -> f64 {
        self.inner.time_to_expiration().as_secs_f64() * 1000.0
    }

    /// Releases the lease.
    #[napi]
    pub async fn release(&self) -> napi::Result<()> {
        let lease = self.inner.clone();
        polylock::spawn(async move { lease.release().await })
            .await
            .map_err(|e| napi::Error::from_reason(format!("backend: {e}")))?
            .js()
    }

    /// Renews the lease now.
    #[napi]
    pub async fn renew(&self) -> napi::Result<()> {
        let lease = self.inner.clone();
        polylock::spawn(async move { lease.renew().await })
            .await
            .map_err(|e| napi::Error::from_reason(format!("backend: {e}")))?
            .js()
    }

    /// Calls `callback(event)` once if the lease is lost. The callback
    /// does not keep the process alive.
    #[napi]
    pub fn on_lost(&self, callback: Function<LostEventJs, ()>) -> napi::Result<()> {
        let tsfn = callback
            .build_threadsafe_function()
            .weak::<true>()
            .callee_handled::<false>()
            .build()?;
        self.inner.on_lost(move |event| {
            let event = LostEventJs {
                name: event.name.clone(),
                holder: event.holder.clone(),
                fencing_token: event.fencing_token.map(BigInt::from),
                reason: event.reason.clone(),
            };
            tsfn.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }
}
