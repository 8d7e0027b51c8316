//! The command line, as clap parses it.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Distributed locks from the shell, on any polylock backend.
#[derive(Debug, Parser)]
#[command(name = "polylock", version, about, after_help = crate::exit::CODES_HELP)]
pub struct Cli {
    /// The backend URL (consul://127.0.0.1:8500, mongodb://…, ldlm://host:3144,
    /// postgres://user@host/db, memory://).
    #[arg(long, env = "POLYLOCK_URL", global = true, hide_env_values = true)]
    pub url: Option<String>,

    /// An access token (Consul ACL token, LDLM or PostgreSQL password); kept
    /// out of every output.
    #[arg(long, env = "POLYLOCK_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,

    /// Print JSON (one document, or one line per event) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log polylock's backend calls to stderr (a tracing filter such as
    /// `debug`; `RUST_LOG` works too).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command while holding the lock; on loss, stop it and fail.
    ///
    /// The command sees POLYLOCK_NAME, POLYLOCK_HOLDER (the holder id, for
    /// `renew` and `release`) and POLYLOCK_FENCING_TOKEN. On a backend
    /// without fencing tokens (LDLM) POLYLOCK_FENCING_TOKEN is unset, even
    /// if polylock's own environment had one (from an outer `run`). If the
    /// lock is lost, the command gets SIGTERM, then SIGKILL after --grace,
    /// and run exits 5; otherwise run releases the lock and exits with the
    /// command's code.
    Run(RunArgs),
    /// Take the lock and leave it held for its TTL (print the lease); for
    /// scripts, with `renew` and `release`.
    ///
    /// Only where a lease outlives the process that took it (Consul,
    /// MongoDB). On a backend whose server frees a lock as soon as the
    /// connection that took it closes (LDLM), the lock would end when
    /// polylock exits, so acquire refuses (exit 2): hold the lock for the
    /// work instead, with `polylock run NAME -- COMMAND`.
    Acquire(AcquireArgs),
    /// Renew a lease by its holder id (from `acquire`, or POLYLOCK_HOLDER
    /// under `run`).
    #[command(visible_alias = "heartbeat")]
    Renew(HolderArgs),
    /// Release a lease by its holder id (from `acquire`, or POLYLOCK_HOLDER
    /// under `run`); a `run` holding it is stopped and exits 5.
    Release(HolderArgs),
    /// Show a lock's holders, values, fencing tokens and expiry (not on
    /// LDLM, which cannot show holders).
    #[command(visible_aliases = ["get-mutex", "get-semaphore", "get-semaphore-mutexes"])]
    Status(NameArg),
    /// List the held locks (under a prefix; not on LDLM).
    List(ListArgs),
    /// Force-release a lock from every holder (not on LDLM, which cannot
    /// list holders: release one by its holder id there).
    #[command(visible_aliases = ["delete-mutex", "delete-semaphore"])]
    Delete(DeleteArgs),
    /// Check that a semaphore can be used with --limit N (db_locks'
    /// create-semaphore). polylock makes semaphores on demand: every
    /// `acquire NAME --limit N` states the size, so nothing is stored; this
    /// fails (exit 2) while NAME is held with another limit, and prints the
    /// acquire command to use.
    CreateSemaphore(SemaphoreArgs),
    /// Print a lock's events (acquired, released, expired) as they happen
    /// (memory://, Consul, MongoDB).
    Watch(WatchArgs),
}

/// How a lock is taken.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock's name.
    pub name: String,
    /// Holders allowed at once (1: a mutex; N: a counting semaphore).
    #[arg(long, default_value_t = 1)]
    pub limit: u32,
    /// The lease TTL (30s, 500ms, 2m; plain numbers are seconds).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub ttl: Duration,
    /// How long to wait for the lock (default: forever for `run`, no wait
    /// for `acquire`).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The holder value stored with the lease (default: host:pid).
    #[arg(long)]
    pub value: Option<String>,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The lock.
    #[command(flatten)]
    pub lock: LockArgs,
    /// After a lost lock, how long the command gets between TERM and KILL.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub grace: Duration,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `acquire`.
#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// The lock.
    #[command(flatten)]
    pub lock: LockArgs,
}

/// `renew` and `release`: a lease by its holder id.
#[derive(Debug, Args)]
pub struct HolderArgs {
    /// The lock's name.
    pub name: String,
    /// The holder id (`acquire` prints it; `run` gives it to its command as
    /// POLYLOCK_HOLDER; on LDLM it is the lock's key).
    #[arg(long)]
    pub holder: String,
    /// The TTL to renew for (backends with sessions keep the session's).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub ttl: Duration,
}

/// A lock name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// The lock's name.
    pub name: String,
}

/// `create-semaphore`.
#[derive(Debug, Args)]
pub struct SemaphoreArgs {
    /// The semaphore's name.
    pub name: String,
    /// Holders allowed at once (db_locks' max size).
    #[arg(long, visible_alias = "max-size")]
    pub limit: u32,
    /// The lease TTL its acquisitions would use (30s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub ttl: Duration,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only names starting with this.
    #[arg(default_value = "")]
    pub prefix: String,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The lock's name.
    pub name: String,
    /// Confirm: take the lock away from its holders.
    #[arg(long)]
    pub yes: bool,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The lock's name (a prefix with `--prefix`).
    pub name: String,
    /// Follow every lock whose name starts with NAME.
    #[arg(long)]
    pub prefix: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

/// Parses `30`, `30s`, `500ms`, `2m`, `1h` (fractions allowed: `1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 30s, 500ms, 2m)"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(number * scale).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
