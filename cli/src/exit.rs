//! Exit codes: one per kind of outcome, documented in `--help` and README.

use polylock::{Error, ErrorKind};

/// Success.
pub const OK: i32 = 0;
/// The backend failed, could not be reached, or refused the credentials.
pub const FAILED: i32 = 1;
/// Bad command line, name, TTL or URL; an operation the backend lacks.
pub const USAGE: i32 = 2;
/// The lock stayed busy until `--timeout` (or, for `acquire` without
/// `--timeout`, it was busy).
pub const BUSY: i32 = 3;
/// The lease is not held (`renew`/`release` of a holder that does not hold it).
pub const NOT_HELD: i32 = 4;
/// `run`: the lock was lost while the command ran; the command was stopped.
pub const LOST: i32 = 5;
/// `run`: the command could not be started.
pub const CANNOT_RUN: i32 = 126;
/// `run`: the command was not found.
pub const NOT_FOUND: i32 = 127;

/// The exit codes, for `--help`.
pub const CODES_HELP: &str = "\
Exit codes:
  0    success (run: the command's own exit code; 128+N if it died of signal N)
  1    backend failure, connection or credentials
  2    usage: bad arguments, name, TTL, limit or URL, or an operation the backend lacks
  3    the lock was busy (timeout)
  4    the lease is not held (renew / release)
  5    run: the lock was lost while the command ran; the command was stopped
  126  run: the command could not be started
  127  run: the command was not found";

/// The exit code for a polylock error.
pub fn code_for(error: &Error) -> i32 {
    match error.kind() {
        ErrorKind::Timeout => BUSY,
        ErrorKind::NotHeld => NOT_HELD,
        ErrorKind::Lost => LOST,
        ErrorKind::InvalidArgument | ErrorKind::Usage | ErrorKind::LimitMismatch => USAGE,
        _ => FAILED,
    }
}
