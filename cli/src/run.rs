//! `polylock run NAME -- COMMAND…`: hold the lock while the command runs.
//!
//! The command gets the lease in its environment (`POLYLOCK_NAME`,
//! `POLYLOCK_HOLDER`, `POLYLOCK_FENCING_TOKEN`) so it can fence its own
//! writes. On a backend without fencing tokens (LDLM: `fencing_token()` is
//! `None`) `POLYLOCK_FENCING_TOKEN` is removed from the command's
//! environment rather than left as `run` inherited it: a token from an
//! outer `run` (another lock's) must not pass for this lease's, and a
//! command that fences sees plainly that there is nothing to fence with.
//! If the lease is lost, the command gets SIGTERM, then SIGKILL
//! after `--grace`, and `run` exits with [`exit::LOST`]. Otherwise `run`
//! releases the lock and exits with the command's code. SIGTERM, SIGINT and
//! SIGHUP sent to `run` are passed on to the command.

use std::process::ExitStatus;

use polylock::{Client, Lease, Wait};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::args::RunArgs;
use crate::spinner::Spinner;
use crate::{commands, exit, fail};

/// Runs `args.command` under the lock; returns the exit code.
pub async fn run(client: &Client, args: RunArgs) -> i32 {
    let lease = match take(client, &args).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return exit::BUSY,
        Err(error) => return fail(&error),
    };
    let mut child = match spawn(&args, &lease) {
        Ok(child) => child,
        Err(error) => {
            eprintln!("polylock: cannot run {:?}: {error}", args.command[0]);
            release(&lease).await;
            return if error.kind() == std::io::ErrorKind::NotFound {
                exit::NOT_FOUND
            } else {
                exit::CANNOT_RUN
            };
        }
    };
    match supervise(&mut child, &lease).await {
        Ok(status) => {
            release(&lease).await;
            child_code(status)
        }
        Err(reason) => {
            eprintln!(
                "polylock: lost the lock {:?} ({reason}); stopping the command",
                lease.name()
            );
            stop(&mut child, args.grace).await;
            exit::LOST
        }
    }
}

/// Takes the lock, waiting as `--timeout` says (forever by default).
async fn take(client: &Client, args: &RunArgs) -> polylock::Result<Option<Lease>> {
    let lock = commands::lock(client, &args.lock)?;
    let wait = args.lock.timeout.map_or(Wait::Forever, Wait::For);
    let _spinner = Spinner::start(format!("waiting for {}", args.lock.name));
    lock.acquire_with(wait).await
}

/// Starts the command with the lease in its environment.
fn spawn(args: &RunArgs, lease: &Lease) -> std::io::Result<Child> {
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("POLYLOCK_NAME", lease.name())
        .env("POLYLOCK_HOLDER", lease.holder());
    match lease.fencing_token() {
        Some(token) => command.env("POLYLOCK_FENCING_TOKEN", token.to_string()),
        None => command.env_remove("POLYLOCK_FENCING_TOKEN"),
    };
    command.spawn()
}

/// Waits for the command to end (passing on signals), or for the lease to be
/// lost (`Err` with the reason).
async fn supervise(child: &mut Child, lease: &Lease) -> Result<ExitStatus, String> {
    let mut signals = [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ]
    .map(|kind| (kind, signal(kind).expect("installing a signal handler")));
    let [(term, term_rx), (int, int_rx), (hup, hup_rx)] = &mut signals;
    loop {
        tokio::select! {
            status = child.wait() => {
                return status.map_err(|e| format!("waiting for the command failed: {e}"));
            }
            lost = lease.lost() => {
                if let Some(event) = lost {
                    return Err(event.reason);
                }
                // Released or abandoned: not by us, so keep the command going.
                return child.wait().await.map_err(|e| e.to_string());
            }
            _ = term_rx.recv() => send(child, *term),
            _ = int_rx.recv() => send(child, *int),
            _ = hup_rx.recv() => send(child, *hup),
        }
    }
}

/// Sends `kind` to the child, if it still runs.
fn send(child: &Child, kind: SignalKind) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        unsafe {
            libc::kill(pid, kind.as_raw_value());
        }
    }
}

/// TERM, then KILL after `grace`.
async fn stop(child: &mut Child, grace: std::time::Duration) {
    send(child, SignalKind::terminate());
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        eprintln!("polylock: the command outlived its {grace:?} grace; killing it");
        let _ = child.kill().await;
    }
}

async fn release(lease: &Lease) {
    if let Err(error) = lease.release().await {
        fail(&error);
    }
}

/// The shell convention: the exit code, or 128 + the signal.
fn child_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(exit::FAILED)
}
