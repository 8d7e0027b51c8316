//! `NativeLock` and its cancellation token.

use std::sync::Arc;

use napi_derive::napi;
use polylock::Wait;
use tokio::sync::watch;

use crate::errors::{aborted, millis, IntoJs};
use crate::lease::NativeLease;

/// Cancels one wait (fired by the JavaScript layer from an AbortSignal).
#[napi]
pub struct CancelToken {
    fired: watch::Sender<bool>,
}

#[napi]
impl CancelToken {
    /// A token not fired yet.
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken {
            fired: watch::Sender::new(false),
        }
    }

    /// Cancels the wait this token was given to.
    #[napi]
    pub fn cancel(&self) {
        self.fired.send_replace(true);
    }
}

/// A lock handle.
#[napi]
pub struct NativeLock {
    inner: polylock::Lock,
}

impl NativeLock {
    pub(crate) fn new(inner: polylock::Lock) -> Self {
        NativeLock { inner }
    }
}

#[napi]
impl NativeLock {
    /// Takes the lock, waiting at most `timeout_ms` (null: as long as it
    /// takes; 0: no wait), unless `cancel` fires first. Resolves to the
    /// lease, or null when a zero wait found the lock busy.
    #[napi]
    pub async fn acquire(
        &self,
        timeout_ms: Option<f64>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Option<NativeLease>> {
        let wait = match timeout_ms {
            None => Wait::Forever,
            Some(0.0) => Wait::No,
            Some(ms) => Wait::For(millis("timeout", ms)?),
        };
        let mut fired = cancel.map(|token| token.fired.subscribe());
        let attempt = self.inner.acquire_with(wait);
        let lease = match fired.as_mut() {
            None => attempt.await.js()?,
            Some(fired) => tokio::select! {
                lease = attempt => lease.js()?,
                // Dropping the attempt cancels it (a late grant is released).
                _ = fired.wait_for(|fired| *fired) => return Err(aborted()),
            },
        };
        if lease.is_none() && !matches!(wait, Wait::No) {
            return Err(crate::errors::to_js(polylock::Error::Backend(
                "the wait ended without a lease".into(),
            )));
        }
        Ok(lease.map(|lease| NativeLease::new(Arc::new(lease))))
    }

    /// The lock's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// The lock's limit.
    #[napi(getter)]
    pub fn limit(&self) -> u32 {
        self.inner.limit()
    }
}
