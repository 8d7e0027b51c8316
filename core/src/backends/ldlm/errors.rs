//! LDLM replies and gRPC statuses → polylock's error kinds.
//!
//! The server reports most failures in-band (RPC status OK, an `Error`
//! with a code); some come as code 0 (`Unknown`) with only a text, which is
//! matched here. UNAUTHENTICATED is the one status the server itself sends.

use tonic::Code;

use super::connection::TransportFailure;
use super::proto::{self as pb, ErrorCode};
use crate::error::Error;

/// What an in-band error means for the call that got it.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The lock or key is not (any more) on the server: lost, not held.
    NoSuchLock(String),
    /// The wait for the lock ran out (wait timeout or deadline).
    WaitTimedOut,
    /// Anything else, as an error.
    Failed(Error),
}

/// Reads the in-band error of a reply about lock `name` requested with `limit`.
pub(crate) fn refusal(name: &str, limit: u32, error: &pb::Error) -> Refusal {
    let message = error.message.clone();
    match ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unknown) {
        ErrorCode::LockSizeMismatch => Refusal::Failed(Error::LimitMismatch {
            name: name.to_string(),
            requested: limit,
            existing: None,
        }),
        ErrorCode::InvalidLockSize => Refusal::Failed(Error::invalid(format!(
            "the LDLM server refused limit {limit} for {name:?}: {message}"
        ))),
        ErrorCode::LockWaitTimeout => Refusal::WaitTimedOut,
        ErrorCode::LockDoesNotExist
        | ErrorCode::InvalidLockKey
        | ErrorCode::NotLocked
        | ErrorCode::LockDoesNotExistOrInvalidKey => Refusal::NoSuchLock(message),
        ErrorCode::Unknown => unknown(name, message),
    }
}

/// Code 0 comes with a text only (server v1.2).
fn unknown(name: &str, message: String) -> Refusal {
    let lower = message.to_ascii_lowercase();
    if lower.contains("does not exist") || lower.contains("invalid key") {
        Refusal::NoSuchLock(message)
    } else if lower.contains("deadline exceeded") || lower.contains("timeout waiting") {
        Refusal::WaitTimedOut
    } else if lower.contains("cannot be empty") || lower.contains("must be greater than 0") {
        Refusal::Failed(Error::invalid(format!(
            "the LDLM server refused the request for {name:?}: {message}"
        )))
    } else {
        Refusal::Failed(Error::Backend(format!(
            "the LDLM server failed the request for {name:?}: {message}"
        )))
    }
}

/// A failed call's status as polylock's error. Transport failures keep the
/// kind they were given; the server's own statuses are mapped by code.
pub(crate) fn status_error(status: &tonic::Status) -> Error {
    let mut source = std::error::Error::source(status);
    while let Some(current) = source {
        if let Some(TransportFailure(error)) = current.downcast_ref::<TransportFailure>() {
            return clone_error(error);
        }
        if current.downcast_ref::<hyper::Error>().is_some() {
            return Error::Connection(format!("the LDLM connection failed: {current}"));
        }
        source = current.source();
    }
    let message = status.message();
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => {
            Error::Auth(format!("the LDLM server refused the password: {message}"))
        }
        Code::Unavailable | Code::Cancelled | Code::Aborted => {
            Error::Connection(format!("the LDLM server is unavailable: {message}"))
        }
        Code::DeadlineExceeded => {
            Error::Connection(format!("the LDLM call ran out of time: {message}"))
        }
        code => Error::Backend(format!("the LDLM server answered {code:?}: {message}")),
    }
}

/// True when `status` says the call's deadline passed.
pub(crate) fn is_deadline(status: &tonic::Status) -> bool {
    status.code() == Code::DeadlineExceeded
}

fn clone_error(error: &Error) -> Error {
    match error {
        Error::Auth(m) => Error::Auth(m.clone()),
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::Backend(m) => Error::Backend(m.clone()),
        other => Error::Connection(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn error(code: ErrorCode, message: &str) -> pb::Error {
        pb::Error {
            code: code as i32,
            message: message.into(),
        }
    }

    #[test]
    fn in_band_codes() {
        let kind = |r: Refusal| match r {
            Refusal::Failed(e) => Some(e.kind()),
            _ => None,
        };
        let mismatch = refusal(
            "n",
            2,
            &error(ErrorCode::LockSizeMismatch, "lock size mismatch"),
        );
        assert_eq!(kind(mismatch), Some(ErrorKind::LimitMismatch));
        let size = refusal(
            "n",
            0,
            &error(
                ErrorCode::InvalidLockSize,
                "lock size must be greater than 0",
            ),
        );
        assert_eq!(kind(size), Some(ErrorKind::InvalidArgument));
        for code in [
            ErrorCode::LockDoesNotExist,
            ErrorCode::InvalidLockKey,
            ErrorCode::NotLocked,
            ErrorCode::LockDoesNotExistOrInvalidKey,
        ] {
            assert!(matches!(
                refusal("n", 1, &error(code, "x")),
                Refusal::NoSuchLock(_)
            ));
        }
        assert!(matches!(
            refusal(
                "n",
                1,
                &error(
                    ErrorCode::LockWaitTimeout,
                    "timeout waiting to acquire lock"
                )
            ),
            Refusal::WaitTimedOut
        ));
        let renew = error(ErrorCode::Unknown, "lock does not exist or invalid key");
        assert!(matches!(refusal("n", 1, &renew), Refusal::NoSuchLock(_)));
        let empty = refusal(
            "n",
            1,
            &error(ErrorCode::Unknown, "lock name cannot be empty"),
        );
        assert_eq!(kind(empty), Some(ErrorKind::InvalidArgument));
        let deadline = error(ErrorCode::Unknown, "context deadline exceeded");
        assert!(matches!(refusal("n", 1, &deadline), Refusal::WaitTimedOut));
        let other = refusal("n", 1, &error(ErrorCode::Unknown, "disk on fire"));
        assert_eq!(kind(other), Some(ErrorKind::Backend));
    }

    #[test]
    fn statuses() {
        let auth = status_error(&tonic::Status::unauthenticated("invalid credentials"));
        assert_eq!(auth.kind(), ErrorKind::Auth);
        let down = status_error(&tonic::Status::unavailable("gone"));
        assert!(down.is_transient());
        let failure =
            tonic::Status::from_error(Box::new(TransportFailure(Error::Auth("tls".into()))));
        assert_eq!(status_error(&failure).kind(), ErrorKind::Auth);
    }
}
