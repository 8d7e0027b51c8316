//! Options for clients and locks, and the validation rules every backend shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::events::Observer;

/// The shortest lease TTL any backend accepts.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest lease TTL any backend accepts (Consul's session limit).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The TTL used when neither the lock nor the client sets one.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// The longest lock name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// The largest holder value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// A secret string (token, password). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is sent to the backend.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How a client connects and keeps its leases.
#[derive(Clone)]
pub struct ClientOptions {
    /// Backend URL: `memory://`, `consul://host:port`, … (may hold secrets; never printed).
    pub url: String,
    /// TTL for locks that do not set their own.
    pub default_ttl: Duration,
    /// Renew each lease after this fraction of its TTL (default 1/3).
    pub renew_fraction: f64,
    /// Treat a lease as lost this fraction of its TTL before its deadline,
    /// unless a renewal proved it (default 1/10).
    pub safety_fraction: f64,
    /// Holder value for locks that do not set their own (default `hostname:pid`).
    pub default_value: String,
    /// ACL token or password, overriding one given in the URL or environment.
    pub token: Option<Secret>,
    /// Observers told about acquisitions, renewals, releases, losses and waits.
    pub observers: Vec<Arc<dyn Observer>>,
}

impl ClientOptions {
    /// Options for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            default_ttl: DEFAULT_TTL,
            renew_fraction: 1.0 / 3.0,
            safety_fraction: 0.1,
            default_value: default_holder_value(),
            token: None,
            observers: Vec::new(),
        }
    }

    /// Adds an observer.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Checks every field; called by `Client::from_options`.
    pub(crate) fn validate(&self) -> Result<()> {
        validate_ttl(self.default_ttl)?;
        if !(self.renew_fraction > 0.0 && self.renew_fraction < 1.0) {
            return Err(Error::invalid(format!(
                "renew_fraction must be between 0 and 1 (exclusive), got {}",
                self.renew_fraction
            )));
        }
        if !(self.safety_fraction >= 0.0 && self.safety_fraction + self.renew_fraction < 1.0) {
            return Err(Error::invalid(format!(
                "safety_fraction must be >= 0 and leave room after renew_fraction, got {}",
                self.safety_fraction
            )));
        }
        validate_value(&self.default_value)
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &crate::url::redact(&self.url))
            .field("default_ttl", &self.default_ttl)
            .field("renew_fraction", &self.renew_fraction)
            .field("safety_fraction", &self.safety_fraction)
            .field("default_value", &self.default_value)
            .field("token", &self.token)
            .field("observers", &self.observers.len())
            .finish()
    }
}

/// Options for one named lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// How many holders at once: 1 is a mutex, N a counting semaphore.
    pub limit: u32,
    /// Lease TTL; `None` takes the client's default.
    pub ttl: Option<Duration>,
    /// Value stored with the lease (who holds it); `None` takes the client's default.
    pub value: Option<String>,
    /// Whether polylock renews the leases itself (the default). When off,
    /// the caller renews ([`Lease::renew`](crate::Lease::renew)): a lease
    /// not renewed within its TTL (from its grant or its last renewal) is
    /// released and reported lost.
    pub auto_renew: bool,
}

impl Default for LockOptions {
    /// A mutex with the client's default TTL and value.
    fn default() -> Self {
        LockOptions {
            limit: 1,
            ttl: None,
            value: None,
            auto_renew: true,
        }
    }
}

impl LockOptions {
    /// A mutex with the client's default TTL and value.
    pub fn mutex() -> Self {
        Self::default()
    }

    /// A counting semaphore admitting `limit` holders at once.
    pub fn semaphore(limit: u32) -> Self {
        LockOptions {
            limit,
            ..Default::default()
        }
    }

    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the holder value.
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Turns automatic renewal on (the default) or off; see
    /// [`LockOptions::auto_renew`](LockOptions#structfield.auto_renew).
    pub fn auto_renew(mut self, on: bool) -> Self {
        self.auto_renew = on;
        self
    }
}

/// Checks a lock name against the rules every backend shares: 1 to
/// [`MAX_NAME_LEN`] bytes of ASCII letters, digits and `-_.:@=+/`, with `/`
/// only between non-empty segments that are not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "lock names are 1 to {MAX_NAME_LEN} bytes long, got {} bytes",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:@=+/".contains(*c)))
    {
        return Err(Error::invalid(format!(
            "lock name {name:?} contains {bad:?}; allowed are ASCII letters, digits and -_.:@=+/"
        )));
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(Error::invalid(format!(
            "lock name {name:?} has an empty, '.' or '..' path segment"
        )));
    }
    Ok(())
}

/// Checks a TTL: from [`MIN_TTL`] to [`MAX_TTL`].
pub fn validate_ttl(ttl: Duration) -> Result<()> {
    if ttl < MIN_TTL || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "ttl must be between {MIN_TTL:?} and {MAX_TTL:?}, got {ttl:?}"
        )));
    }
    Ok(())
}

/// Checks a limit: at least 1.
pub fn validate_limit(limit: u32) -> Result<()> {
    if limit == 0 {
        return Err(Error::invalid("limit must be at least 1"));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::invalid(format!(
            "holder values are at most {MAX_VALUE_LEN} bytes, got {}",
            value.len()
        )));
    }
    Ok(())
}

/// `hostname:pid`, the holder value used when none is given.
pub fn default_holder_value() -> String {
    let host = gethostname::gethostname();
    format!("{}:{}", host.to_string_lossy(), std::process::id())
}

/// A lock's options with the client's defaults filled in and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedLockOptions {
    pub limit: u32,
    pub ttl: Duration,
    pub value: String,
}

impl ResolvedLockOptions {
    pub(crate) fn resolve(options: &LockOptions, client: &ClientOptions) -> Result<Self> {
        let limit = options.limit;
        validate_limit(limit)?;
        let ttl = options.ttl.unwrap_or(client.default_ttl);
        validate_ttl(ttl)?;
        let value = options
            .value
            .clone()
            .unwrap_or_else(|| client.default_value.clone());
        validate_value(&value)?;
        Ok(ResolvedLockOptions { limit, ttl, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "jobs/nightly", "svc/.lock", "a:b@c=d+e_f-g.h"] {
            validate_name(ok).unwrap();
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "./a", "sp ace", "é", "a\0b", &long,
        ] {
            assert_eq!(
                validate_name(bad).unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ttls_and_limits() {
        validate_ttl(MIN_TTL).unwrap();
        validate_ttl(MAX_TTL).unwrap();
        assert!(validate_ttl(Duration::from_millis(999)).is_err());
        assert!(validate_ttl(MAX_TTL + Duration::from_secs(1)).is_err());
        assert!(validate_limit(0).is_err());
    }

    #[test]
    fn default_lock_options_mean_mutex() {
        let client = ClientOptions::new("memory://");
        let resolved = ResolvedLockOptions::resolve(&LockOptions::default(), &client).unwrap();
        assert_eq!(resolved.limit, 1);
        assert_eq!(resolved.ttl, DEFAULT_TTL);
        let zero = LockOptions {
            limit: 0,
            ttl: Some(Duration::from_secs(5)),
            ..LockOptions::default()
        };
        assert!(ResolvedLockOptions::resolve(&zero, &client).is_err());
    }

    #[test]
    fn secrets_stay_hidden() {
        let mut options = ClientOptions::new("consul://127.0.0.1:8500?token=hunter2");
        options.token = Some(Secret::new("hunter2"));
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
