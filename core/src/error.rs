//! The one error type of polylock and its stable [`ErrorKind`].
//!
//! Every fallible call returns [`Error`]. Bindings map [`ErrorKind`] to their
//! own exception classes, `err.code` strings or C status codes, so the kinds
//! and their [`ErrorKind::code`] strings never change meaning.
//!
//! Messages never contain secrets: backends build them from names, keys and
//! server replies, never from tokens, passwords or URLs with credentials.

use std::time::Duration;

/// A result whose error is polylock's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stable classification of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Waiting for a lock ran out of time.
    Timeout,
    /// The lease was lost: it expired or was taken away before this call.
    Lost,
    /// The lease is not held: already released, or never acquired.
    NotHeld,
    /// The lock exists with a different limit (mutex vs. semaphore size).
    LimitMismatch,
    /// The name is in use by something that is not a polylock-compatible lock.
    Conflict,
    /// The backend could not be reached, or the connection broke.
    Connection,
    /// The backend refused the credentials (token, password, certificate).
    Auth,
    /// A name, option or URL is not valid.
    InvalidArgument,
    /// The backend answered with something polylock cannot use.
    Backend,
    /// The API was used where it cannot work: the blocking facade called from
    /// inside an async runtime, or a client used in a forked child.
    Usage,
    /// A pending acquisition was cancelled by its caller
    /// ([`crate::LeaseSlot::cancel`]) before it took the lock.
    Cancelled,
}

impl ErrorKind {
    /// A stable, lowercase identifier for the kind (`"timeout"`, `"lost"`, …),
    /// used as `err.code` by bindings.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Lost => "lost",
            ErrorKind::NotHeld => "not_held",
            ErrorKind::LimitMismatch => "limit_mismatch",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Connection => "connection",
            ErrorKind::Auth => "auth",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Backend => "backend",
            ErrorKind::Usage => "usage",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// Everything that can go wrong in polylock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Waiting for `name` did not succeed within `waited`.
    #[error("timed out after {waited:?} waiting for lock {name:?}")]
    Timeout {
        /// The lock's name.
        name: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// The lease on `name` was lost before this call.
    #[error("the lease on {name:?} was lost: {reason}")]
    Lost {
        /// The lock's name.
        name: String,
        /// Why the lease was lost.
        reason: String,
    },
    /// The lease on `name` is not held.
    #[error("the lease on {name:?} is not held: {reason}")]
    NotHeld {
        /// The lock's name.
        name: String,
        /// Why it is not held (released already, release in progress…).
        reason: String,
    },
    /// `name` exists with limit `existing`, the caller asked for `requested`.
    #[error("lock {name:?} is in use with {}, not {requested}", existing_limit(*existing))]
    LimitMismatch {
        /// The lock's name.
        name: String,
        /// The limit the caller asked for.
        requested: u32,
        /// The limit the lock has now, where the backend says (LDLM does not).
        existing: Option<u32>,
    },
    /// `name` is taken by data that is not a compatible lock.
    #[error("lock {name:?} conflicts with existing data: {detail}")]
    Conflict {
        /// The lock's name.
        name: String,
        /// What was found instead of a lock.
        detail: String,
    },
    /// The backend could not be reached.
    #[error("connection to the backend failed: {0}")]
    Connection(String),
    /// The backend refused the credentials.
    #[error("the backend refused the credentials: {0}")]
    Auth(String),
    /// A name, option or URL is not valid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend answered with something polylock cannot use.
    #[error("backend error: {0}")]
    Backend(String),
    /// The API was used where it cannot work.
    #[error("usage error: {0}")]
    Usage(String),
    /// The acquisition of `name` was cancelled before it took the lock.
    #[error("the acquisition of lock {name:?} was cancelled")]
    Cancelled {
        /// The lock's name.
        name: String,
    },
}

fn existing_limit(existing: Option<u32>) -> String {
    match existing {
        Some(limit) => format!("limit {limit}"),
        None => "another limit".into(),
    }
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Lost { .. } => ErrorKind::Lost,
            Error::NotHeld { .. } => ErrorKind::NotHeld,
            Error::LimitMismatch { .. } => ErrorKind::LimitMismatch,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Connection(_) => ErrorKind::Connection,
            Error::Auth(_) => ErrorKind::Auth,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Backend(_) => ErrorKind::Backend,
            Error::Usage(_) => ErrorKind::Usage,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    /// True for errors worth retrying as-is (the backend may answer later).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Connection(_))
    }
}
