//! MongoDB driver errors mapped to polylock's [`Error`] kinds. Driver
//! messages name hosts and codes, never credentials.

use mongodb::error::{ErrorKind, WriteFailure};

use crate::error::Error;

/// The server's code for a duplicate `_id`: someone else inserted first.
const DUPLICATE_KEY: i32 = 11000;
/// Codes for refused credentials or permissions.
const AUTH_CODES: [i32; 3] = [13, 18, 8000];

/// The server error code, from a command error or a write error alike.
pub(crate) fn code(error: &mongodb::error::Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(e) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => Some(e.code),
        _ => None,
    }
}

/// True when the error says the `_id` exists already. Covers both shapes
/// the driver reports it in: a write error and a command error.
pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    code(error) == Some(DUPLICATE_KEY)
}

/// Maps a driver error to polylock's kinds.
pub(crate) fn map(error: mongodb::error::Error) -> Error {
    if let Some(code) = code(&error) {
        if AUTH_CODES.contains(&code) {
            return Error::Auth(format!("mongodb refused the credentials: {error}"));
        }
    }
    match error.kind.as_ref() {
        ErrorKind::Authentication { message, .. } => {
            Error::Auth(format!("mongodb refused the credentials: {message}"))
        }
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. } => Error::Connection(format!("mongodb: {error}")),
        _ => Error::Backend(format!("mongodb: {error}")),
    }
}
