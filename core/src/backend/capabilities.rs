//! A backend's [`Capabilities`]: the few it declares
//! ([`DeclaredCapabilities`]) and those that follow from the parts it
//! offers, so that no flag can disagree with what the backend does.
//!
//! Derived: `loss_watch` ([`super::LossWatch`]), `event_stream`
//! ([`super::LockEventSource`]) and `inspection` ([`super::Inspect`]); and,
//! though not a capability, whether a backend has its own acquisition
//! policy ([`super::AcquirePolicy`]). Declared, because no part shows them:
//! fencing tokens, server-woken waits, semaphores, shared renewal, a
//! server-side wait (which needs an acquisition policy), an idle lock's
//! limit resetting, and a lease outliving its connection.

use super::Backend;
use crate::model::Capabilities;

/// What a backend says it can do; see the fields of the same names on
/// [`Capabilities`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeclaredCapabilities {
    /// [`Capabilities::fencing`].
    pub fencing: bool,
    /// [`Capabilities::change_notifications`].
    pub change_notifications: bool,
    /// [`Capabilities::semaphores`].
    pub semaphores: bool,
    /// [`Capabilities::shared_renewal`].
    pub shared_renewal: bool,
    /// [`Capabilities::server_wait`]: only with an
    /// [`super::AcquirePolicy`].
    pub server_wait: bool,
    /// [`Capabilities::idle_limit_resets`].
    pub idle_limit_resets: bool,
    /// [`Capabilities::outlives_connection`].
    pub outlives_connection: bool,
}

impl dyn Backend {
    /// What this backend can do: what it declares, and what the parts it
    /// offers show.
    pub fn capabilities(&self) -> Capabilities {
        let DeclaredCapabilities {
            fencing,
            change_notifications,
            semaphores,
            shared_renewal,
            server_wait,
            idle_limit_resets,
            outlives_connection,
        } = self.declared_capabilities();
        debug_assert!(
            !server_wait || self.acquire_policy().is_some(),
            "the {} backend declares a server-side wait without an acquisition policy",
            self.scheme()
        );
        Capabilities {
            fencing,
            loss_watch: self.loss_watch().is_some(),
            change_notifications,
            semaphores,
            shared_renewal,
            event_stream: self.event_source().is_some(),
            inspection: self.inspect().is_some(),
            server_wait,
            idle_limit_resets,
            outlives_connection,
        }
    }
}
