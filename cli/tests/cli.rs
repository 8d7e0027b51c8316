//! The `polylock` binary, run as a user would, against memory:// and the real
//! servers `tests/with-servers.sh` starts (Consul; FerretDB where the
//! backend supports the subcommand; LDLM, where `acquire` and the operator
//! views are refused and `run`, `renew` and `release` work).

#[path = "../../core/tests/support/env.rs"]
mod env;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Most any child process of a test may take.
const BOUND: Duration = Duration::from_secs(60);

fn polylock(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polylock"));
    command
        .env("POLYLOCK_URL", url)
        .env_remove("POLYLOCK_TOKEN")
        .env_remove("RUST_LOG");
    command
}

/// Runs `polylock ARGS` on `url` to the end (bounded).
fn run(url: &str, args: &[&str]) -> Output {
    let child = polylock(url)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the polylock binary starts");
    finish(child)
}

/// Waits for `child` (at most [`BOUND`]; then kills it) and collects its
/// output.
fn finish(child: Child) -> Output {
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match output.recv_timeout(BOUND) {
        Ok(output) => output.expect("polylock's output"),
        Err(_) => {
            kill(pid);
            panic!("polylock did not finish within {BOUND:?}; killed it");
        }
    }
}

/// SIGKILL to a child that outlived [`BOUND`], so no test leaves one behind.
fn kill(pid: u32) {
    let pid = i32::try_from(pid).expect("a pid");
    // SAFETY: kill(2) with a valid signal on our own child's pid (not yet
    // reaped: its waiting thread is still blocked in wait).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs and expects exit code `expected`; the stdout parsed as JSON when it is JSON.
fn expect(url: &str, args: &[&str], expected: i32) -> Value {
    let output = run(url, args);
    assert_eq!(
        code(&output),
        expected,
        "polylock {args:?}: stdout {:?}, stderr {:?}",
        stdout(&output),
        stderr(&output)
    );
    serde_json::from_str(&stdout(&output)).unwrap_or(Value::Null)
}

/// A lock name unique to this test run.
fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "cli-test/{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn consul() -> Option<String> {
    env::server_env("POLYLOCK_TEST_CONSUL_URL", true)
}

fn ferretdb() -> Option<String> {
    env::server_env("POLYLOCK_TEST_FERRETDB_URL", true)
}

fn postgres() -> Option<String> {
    env::server_env("POLYLOCK_TEST_POSTGRES_URL", true)
}

fn ldlm() -> Option<String> {
    env::ldlm_env("POLYLOCK_TEST_LDLM_URL")
}

/// Whether a backend's grants carry fencing tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fencing {
    /// Consul, MongoDB, memory://.
    Tokens,
    /// LDLM.
    None,
}

// ---- every backend -------------------------------------------------------

/// `run` passes the command's exit code and the lease in its environment
/// (no POLYLOCK_FENCING_TOKEN without fencing, not even one `run` inherited).
fn run_passes_exit_code_and_lease(url: &str, fencing: Fencing) {
    let name = unique("run");
    expect(url, &["run", &name, "--", "sh", "-c", "exit 7"], 7);
    let token_check = match fencing {
        Fencing::Tokens => {
            r#"test -n "$POLYLOCK_FENCING_TOKEN" && test "$POLYLOCK_FENCING_TOKEN" != stale"#
        }
        Fencing::None => r#"test -z "${POLYLOCK_FENCING_TOKEN+set}""#,
    };
    let script =
        format!(r#"test "$POLYLOCK_NAME" = "$1" && test -n "$POLYLOCK_HOLDER" && {token_check}"#);
    let output = polylock(url)
        // As an outer `run` would have left it.
        .env("POLYLOCK_FENCING_TOKEN", "stale")
        .args(["run", &name, "--", "sh", "-c", &script, "sh", &name])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    expect(
        url,
        &["run", &name, "--", "sh", "-c", "kill -9 $$"],
        128 + 9,
    );
    expect(url, &["run", &name, "--", "/nonexistent/command"], 127);
    if url.starts_with("memory:") {
        return; // the store lives in each process
    }
    if fencing == Fencing::None {
        // The lock was released every time: a run that may not wait long
        // gets it.
        expect(url, &["run", &name, "--timeout", "5s", "--", "true"], 0);
        return;
    }
    // The lock was released every time: acquire does not wait.
    let lease = expect(url, &["acquire", &name, "--json"], 0);
    expect(
        url,
        &[
            "release",
            &name,
            "--holder",
            lease["holder"].as_str().unwrap(),
        ],
        0,
    );
}

#[test]
fn memory_run() {
    run_passes_exit_code_and_lease("memory://", Fencing::Tokens);
}

#[test]
fn consul_run() {
    if let Some(url) = consul() {
        run_passes_exit_code_and_lease(&url, Fencing::Tokens);
    }
}

#[test]
fn ferretdb_run() {
    if let Some(url) = ferretdb() {
        run_passes_exit_code_and_lease(&url, Fencing::Tokens);
    }
}

#[test]
fn postgres_run() {
    if let Some(url) = postgres() {
        run_passes_exit_code_and_lease(&url, Fencing::Tokens);
    }
}

#[test]
fn ldlm_run() {
    if let Some(url) = ldlm() {
        run_passes_exit_code_and_lease(&url, Fencing::None);
    }
}

#[test]
fn bad_input_is_a_usage_error_with_a_clear_message() {
    let output = polylock("memory://")
        .env_remove("POLYLOCK_URL")
        .args(["status", "x"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("POLYLOCK_URL"),
        "{}",
        stderr(&output)
    );
    let output = run("memory://", &["status", "bad name"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("invalid_argument"),
        "{}",
        stderr(&output)
    );
    expect("memory://", &["acquire", "x", "--ttl", "0s"], 2);
    expect("memory://", &["acquire", "x", "--ttl", "soon"], 2);
    expect("memory://", &["run", "x"], 2); // no command
    expect("memory://", &["delete", "x"], 2); // no --yes
    expect("memory://", &["renew", "x", "--holder", "nobody"], 4);
    expect("memory://", &["release", "x", "--holder", "nobody"], 4);
    expect("not-a-url", &["list"], 2);
}

#[test]
fn tokens_stay_out_of_output() {
    let secret = "s3cret-token-value";
    let output = run(
        "consul://127.0.0.1:1/",
        &["--token", secret, "--log", "trace", "status", "x"],
    );
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!all.contains(secret), "{all}");
    let url = format!("consul://127.0.0.1:1/?token={secret}");
    let output = run(&url, &["status", "x"]);
    assert!(!stderr(&output).contains(secret), "{}", stderr(&output));
}

#[test]
fn memory_status_list_delete_on_a_free_lock() {
    let status = expect("memory://", &["status", "free", "--json"], 0);
    assert_eq!(status["held"], false);
    assert_eq!(
        expect("memory://", &["list", "--json"], 0),
        Value::Array(vec![])
    );
    let deleted = expect("memory://", &["delete", "free", "--yes", "--json"], 0);
    assert_eq!(deleted["released"], 0);
    let output = run("memory://", &["watch", "x", "--count", "0"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

// ---- Consul: scripted use across processes ---------------------------------

#[test]
fn consul_acquire_status_list_renew_release() {
    let Some(url) = consul() else { return };
    let name = unique("scripted");
    let lease = expect(
        &url,
        &[
            "acquire", &name, "--ttl", "20s", "--value", "worker-1", "--json",
        ],
        0,
    );
    let holder = lease["holder"].as_str().unwrap().to_string();
    let token = lease["fencing_token"].as_u64().unwrap();
    // Held by another process now: busy at once, and after a timeout.
    expect(&url, &["acquire", &name], 3);
    expect(&url, &["acquire", &name, "--timeout", "200ms"], 3);
    let status = expect(&url, &["status", &name, "--json"], 0);
    assert_eq!(status["held"], true);
    assert_eq!(status["limit"], 1);
    assert_eq!(status["holders"][0]["holder"], holder.as_str());
    assert_eq!(status["holders"][0]["value"], "worker-1");
    assert_eq!(status["holders"][0]["fencing_token"], token);
    let human = stdout(&run(&url, &["status", &name]));
    assert!(
        human.contains("held by 1 of 1") && human.contains("worker-1"),
        "{human}"
    );
    let listed = expect(&url, &["list", "cli-test/", "--json"], 0);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == name.as_str()),
        "{listed}"
    );
    let renewed = expect(&url, &["renew", &name, "--holder", &holder, "--json"], 0);
    assert!(renewed["ttl_ms"].as_u64().unwrap() >= 20_000, "{renewed}");
    expect(&url, &["release", &name, "--holder", &holder], 0);
    assert_eq!(expect(&url, &["status", &name, "--json"], 0)["held"], false);
    // Released already.
    expect(&url, &["release", &name, "--holder", &holder], 4);
    expect(&url, &["renew", &name, "--holder", &holder], 4);
    // The next holder's token is higher.
    let next = expect(&url, &["acquire", &name, "--json"], 0);
    assert!(next["fencing_token"].as_u64().unwrap() > token);
    expect(&url, &["delete", &name, "--yes"], 0);
}

#[test]
fn consul_semaphore_status_and_delete() {
    let Some(url) = consul() else { return };
    let name = unique("semaphore");
    for _ in 0..2 {
        expect(&url, &["acquire", &name, "--limit", "2", "--json"], 0);
    }
    expect(&url, &["acquire", &name, "--limit", "2"], 3);
    expect(&url, &["acquire", &name, "--limit", "3"], 2); // limit mismatch
    let status = expect(&url, &["status", &name, "--json"], 0);
    assert_eq!(status["limit"], 2);
    assert_eq!(status["holders"].as_array().unwrap().len(), 2);
    // Not without --yes.
    expect(&url, &["delete", &name], 2);
    let deleted = expect(&url, &["delete", &name, "--yes", "--json"], 0);
    assert_eq!(deleted["released"], 2);
    assert_eq!(expect(&url, &["status", &name, "--json"], 0)["held"], false);
    expect(&url, &["acquire", &name, "--limit", "3", "--json"], 0);
    expect(&url, &["delete", &name, "--yes"], 0);
}

// ---- db_locks' command names ---------------------------------------------

/// db_locks' command line, each command under its db_locks name: a mutex
/// acquired, heartbeat, get, released and deleted; a semaphore created,
/// acquired to its size, got with its holders, deleted.
fn db_locks_commands(url: &str) {
    let mutex = unique("db-locks-mutex");
    let lease = expect(url, &["acquire", &mutex, "--ttl", "20s", "--json"], 0);
    let holder = lease["holder"].as_str().unwrap().to_string();
    let beat = expect(
        url,
        &["heartbeat", &mutex, "--holder", &holder, "--json"],
        0,
    );
    assert_eq!(beat["holder"], holder.as_str(), "{beat}");
    let got = expect(url, &["get-mutex", &mutex, "--json"], 0);
    assert_eq!(got["holders"][0]["holder"], holder.as_str(), "{got}");
    expect(url, &["release", &mutex, "--holder", &holder], 0);
    expect(url, &["heartbeat", &mutex, "--holder", &holder], 4);
    expect(url, &["acquire", &mutex], 0);
    expect(url, &["delete-mutex", &mutex], 2); // not without --yes
    assert_eq!(
        expect(url, &["delete-mutex", &mutex, "--yes", "--json"], 0)["released"],
        1
    );
    assert_eq!(
        expect(url, &["get-mutex", &mutex, "--json"], 0)["held"],
        false
    );

    let pool = unique("db-locks-pool");
    let created = expect(
        url,
        &["create-semaphore", &pool, "--max-size", "2", "--json"],
        0,
    );
    assert_eq!(created["limit"], 2, "{created}");
    let acquire = created["acquire"].as_str().unwrap().to_string();
    assert!(acquire.contains("--limit 2"), "{acquire}");
    for _ in 0..2 {
        expect(url, &["acquire", &pool, "--limit", "2"], 0);
    }
    expect(url, &["acquire", &pool, "--limit", "2"], 3);
    // In use with size 2: another size is refused until it is free.
    expect(url, &["create-semaphore", &pool, "--limit", "3"], 2);
    expect(url, &["create-semaphore", &pool, "--limit", "0"], 2);
    let semaphore = expect(url, &["get-semaphore", &pool, "--json"], 0);
    assert_eq!(semaphore["limit"], 2, "{semaphore}");
    let holders = expect(url, &["get-semaphore-mutexes", &pool, "--json"], 0);
    assert_eq!(holders["holders"].as_array().unwrap().len(), 2, "{holders}");
    let deleted = expect(url, &["delete-semaphore", &pool, "--yes", "--json"], 0);
    assert_eq!(deleted["released"], 2);
    expect(url, &["create-semaphore", &pool, "--limit", "3"], 0);
}

#[test]
fn consul_db_locks_commands() {
    let Some(url) = consul() else { return };
    db_locks_commands(&url);
}

#[test]
fn ferretdb_db_locks_commands() {
    let Some(url) = ferretdb() else { return };
    db_locks_commands(&url);
}

#[test]
fn postgres_db_locks_commands() {
    let Some(url) = postgres() else { return };
    db_locks_commands(&url);
}

#[test]
fn db_locks_names_are_listed_in_help() {
    let help = stdout(&run("memory://", &["--help"]));
    for alias in [
        "heartbeat",
        "get-mutex",
        "delete-mutex",
        "create-semaphore",
        "get-semaphore",
        "delete-semaphore",
        "get-semaphore-mutexes",
    ] {
        assert!(help.contains(alias), "{alias} missing from --help: {help}");
    }
}

// ---- run: exclusion and loss -------------------------------------------------

/// A `run` whose command prints `started HOLDER`, then waits for stdin to
/// close (exit 0) or for SIGTERM (prints `got-term`, exit 0); its holder id.
fn start_holding_run(url: &str, name: &str, extra: &[&str]) -> HoldingRun {
    let script = r#"trap 'echo got-term; exit 0' TERM; echo "started $POLYLOCK_HOLDER"; while read -r line; do :; done"#;
    let mut child = polylock(url)
        .args(["run", name, "--ttl", "10s", "--grace", "5s"])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let holder = line
        .trim()
        .strip_prefix("started ")
        .unwrap_or_else(|| panic!("{line:?} is not `started HOLDER`"))
        .to_string();
    HoldingRun {
        child,
        stdout,
        holder,
    }
}

/// A `run` holding its lock while its command waits ([`start_holding_run`]).
struct HoldingRun {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    holder: String,
}

impl HoldingRun {
    /// The command's next line.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Lets the command end; `run`'s exit status and stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        drop(self.child.stdin.take());
        wait_bounded(self.child)
    }
}

/// Waits for `child` (bounded; then killed) after its stdout was taken.
fn wait_bounded(mut child: Child) -> (ExitStatus, String) {
    let pid = child.id();
    let mut stderr = child.stderr.take().unwrap();
    let (done, status) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = done.send((child.wait(), text));
    });
    match status.recv_timeout(BOUND) {
        Ok((status, text)) => (status.unwrap(), text),
        Err(_) => {
            kill(pid);
            panic!("run did not end within {BOUND:?}; killed it");
        }
    }
}

#[test]
fn consul_run_excludes_others_and_stops_the_command_on_loss() {
    let Some(url) = consul() else { return };
    let name = unique("lost");
    let mut holder = start_holding_run(&url, &name, &[]);
    // Another run cannot get in while the command runs.
    expect(&url, &["run", &name, "--timeout", "300ms", "--", "true"], 3);
    let status = expect(&url, &["status", &name, "--json"], 0);
    assert_eq!(status["held"], true);
    assert_eq!(status["holders"][0]["holder"], holder.holder.as_str());
    // The operator takes the lock away: the command is stopped, run fails.
    expect(&url, &["delete", &name, "--yes"], 0);
    assert_eq!(holder.line(), "got-term");
    let (status, stderr) = holder.finish();
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("lost the lock"), "{stderr}");
    // And a command that ends on its own releases the lock.
    let (status, stderr) = start_holding_run(&url, &name, &[]).finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(expect(&url, &["status", &name, "--json"], 0)["held"], false);
}

// ---- Consul and FerretDB: the event stream ---------------------------------

/// `polylock watch` prints the acquisition and the release another process
/// makes, with one fencing token.
fn watch_prints_other_processes_events(url: &str) {
    let name = unique("watch");
    let mut watcher = polylock(url)
        .args(["watch", &name, "--count", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = BufReader::new(watcher.stderr.take().unwrap());
    let mut line = String::new();
    ready.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching"), "{line}");
    expect(url, &["run", &name, "--", "true"], 0);
    let output = finish(watcher);
    let events: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["event"], "acquired");
    assert_eq!(events[1]["event"], "released");
    assert_eq!(events[0]["fencing_token"], events[1]["fencing_token"]);
}

#[test]
fn consul_watch_prints_other_processes_events() {
    let Some(url) = consul() else { return };
    watch_prints_other_processes_events(&url);
}

#[test]
fn ferretdb_watch_prints_other_processes_events() {
    let Some(url) = ferretdb() else { return };
    watch_prints_other_processes_events(&url);
}

#[test]
fn postgres_watch_prints_other_processes_events() {
    let Some(url) = postgres() else { return };
    watch_prints_other_processes_events(&url);
}

// ---- LDLM: locks end with their connection, no operator views ---------------

/// Runs and expects a usage error (exit 2, nothing on stdout) whose message
/// names the ldlm backend and contains every one of `needles`.
fn expect_refused(url: &str, args: &[&str], needles: &[&str]) {
    let output = run(url, args);
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "polylock {args:?}: {err}");
    assert!(
        stdout(&output).is_empty(),
        "polylock {args:?}: {}",
        stdout(&output)
    );
    assert!(err.contains("ldlm backend"), "polylock {args:?}: {err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "polylock {args:?}: no {needle:?} in {err}"
        );
    }
}

#[test]
fn ldlm_acquire_is_refused_and_points_to_run() {
    let Some(url) = ldlm() else { return };
    let name = unique("acquire");
    let hint = format!("polylock run {name} -- COMMAND");
    let why = "frees a lock as soon as the connection that took it closes";
    expect_refused(&url, &["acquire", &name], &[why, &hint]);
    expect_refused(
        &url,
        &[
            "acquire",
            &name,
            "--json",
            "--timeout",
            "1s",
            "--limit",
            "2",
        ],
        &[why, &hint],
    );
    // Refused before asking: the server never saw a request for the name
    // (it logs each request as it arrives, before it answers).
    if let Ok(log) = std::env::var("POLYLOCK_TEST_LDLM_LOG") {
        let log = std::fs::read_to_string(log).expect("the LDLM server's log");
        assert!(
            !log.contains(&format!("\"{name}\"")),
            "{name} reached the server"
        );
    }
    // And a run takes it at once.
    expect(&url, &["run", &name, "--timeout", "5s", "--", "true"], 0);
    let help = stdout(&run(&url, &["acquire", "--help"]));
    assert!(
        help.contains("LDLM") && help.contains("polylock run NAME -- COMMAND"),
        "{help}"
    );
}

#[test]
fn ldlm_operator_views_are_refused_clearly() {
    let Some(url) = ldlm() else { return };
    let name = unique("views");
    let holders = "show a lock's holders";
    expect_refused(&url, &["status", &name], &["status needs", holders]);
    expect_refused(
        &url,
        &["status", &name, "--json"],
        &["status needs", holders],
    );
    expect_refused(&url, &["list"], &["list needs", "list the held locks"]);
    expect_refused(&url, &["list", "cli-test/", "--json"], &["list needs"]);
    let release = format!("polylock release {name} --holder HOLDER");
    for args in [vec!["delete", &name, "--yes"], vec!["delete", &name]] {
        expect_refused(&url, &args, &["cannot list a lock's holders", &release]);
    }
    let events = "does not support lock event streams";
    expect_refused(&url, &["watch", &name], &[events]);
    expect_refused(
        &url,
        &["watch", "cli-test/", "--prefix", "--count", "1"],
        &[events],
    );
}

#[test]
fn ldlm_run_excludes_others_and_renew_and_release_work_by_holder() {
    let Some(url) = ldlm() else { return };
    let name = unique("lost");
    let mut holder = start_holding_run(&url, &name, &[]);
    let key = holder.holder.clone();
    // Another run cannot get in while the command runs.
    expect(&url, &["run", &name, "--timeout", "300ms", "--", "true"], 3);
    // Another process renews the lease by its key (the holder id).
    let renewed = expect(
        &url,
        &["renew", &name, "--holder", &key, "--ttl", "12s", "--json"],
        0,
    );
    assert_eq!(renewed["ttl_ms"], 12_000, "{renewed}");
    expect(&url, &["renew", &name, "--holder", "not-a-key"], 4);
    expect(&url, &["release", &name, "--holder", "not-a-key"], 4);
    // It still holds: the wrong keys changed nothing.
    expect(&url, &["run", &name, "--timeout", "300ms", "--", "true"], 3);
    // Another process releases it by its key: the command is stopped and run
    // fails, as after Consul's force release.
    let released = expect(&url, &["release", &name, "--holder", &key, "--json"], 0);
    assert_eq!(released["released"], true, "{released}");
    assert_eq!(holder.line(), "got-term");
    let (status, stderr) = holder.finish();
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("lost the lock"), "{stderr}");
    // Released already.
    expect(&url, &["release", &name, "--holder", &key], 4);
    expect(&url, &["renew", &name, "--holder", &key], 4);
    // A command that ends on its own releases the lock.
    let (status, stderr) = start_holding_run(&url, &name, &[]).finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    expect(&url, &["run", &name, "--timeout", "5s", "--", "true"], 0);
}

#[test]
fn ldlm_run_semaphore() {
    let Some(url) = ldlm() else { return };
    let name = unique("semaphore");
    let first = start_holding_run(&url, &name, &["--limit", "2"]);
    let second = start_holding_run(&url, &name, &["--limit", "2"]);
    assert_ne!(first.holder, second.holder);
    expect(
        &url,
        &[
            "run",
            &name,
            "--limit",
            "2",
            "--timeout",
            "300ms",
            "--",
            "true",
        ],
        3,
    );
    // A held lock keeps its limit.
    expect(&url, &["run", &name, "--limit", "3", "--", "true"], 2);
    for holder in [first, second] {
        let (status, stderr) = holder.finish();
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
}

/// One invocation of [`ldlm_password_stays_out_of_output`].
struct SecretCase<'a> {
    /// Stands for the arguments in messages (which may hold the password).
    what: &'a str,
    url: &'a str,
    args: Vec<&'a str>,
    /// POLYLOCK_TOKEN, when set.
    env_token: Option<&'a str>,
    code: i32,
}

impl SecretCase<'_> {
    /// Runs the case; fails if `secrets` appear in the output, then if the
    /// exit code is not the expected one.
    fn check(&self, secrets: &[&str]) {
        let mut command = polylock(self.url);
        if let Some(token) = self.env_token {
            command.env("POLYLOCK_TOKEN", token);
        }
        let child = command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = finish(child);
        let all = format!("{}{}", stdout(&output), stderr(&output));
        let what = self.what;
        for (i, secret) in secrets.iter().enumerate() {
            assert!(!all.contains(secret), "secret {i} was shown ({what})");
        }
        // Only now may the output appear in a message.
        assert_eq!(code(&output), self.code, "{what}: {all}");
        if self.code == 1 {
            assert!(all.contains("refused the credentials"), "{what}: {all}");
        }
    }
}

#[test]
fn ldlm_password_stays_out_of_output() {
    let Some(url) = env::ldlm_env("POLYLOCK_TEST_LDLM_PASSWORD_URL") else {
        return;
    };
    let password = env::ldlm_env("POLYLOCK_TEST_LDLM_PASSWORD")
        .expect("POLYLOCK_TEST_LDLM_PASSWORD goes with its URL");
    let wrong = "wrong-ldlm-password-3f9c1e";
    let name = unique("password");
    let in_url = url.replacen("ldlm://", &format!("ldlm://:{password}@"), 1);
    let trace = ["--log", "trace"];
    let true_run = [&trace[..], &["run", &name, "--", "true"]].concat();
    let cases = [
        SecretCase {
            what: "no password",
            url: &url,
            args: true_run.clone(),
            env_token: None,
            code: 1,
        },
        SecretCase {
            what: "a wrong --token",
            url: &url,
            args: [&["--token", wrong][..], &true_run].concat(),
            env_token: None,
            code: 1,
        },
        SecretCase {
            what: "--token",
            url: &url,
            args: [&["--token", &password][..], &true_run].concat(),
            env_token: None,
            code: 0,
        },
        SecretCase {
            what: "POLYLOCK_TOKEN",
            url: &url,
            args: true_run.clone(),
            env_token: Some(&password),
            code: 0,
        },
        SecretCase {
            what: "the URL",
            url: &in_url,
            args: true_run.clone(),
            env_token: None,
            code: 0,
        },
        SecretCase {
            what: "--token, status refused",
            url: &url,
            args: [&["--token", &password][..], &trace, &["status", &name]].concat(),
            env_token: None,
            code: 2,
        },
        SecretCase {
            what: "the URL, acquire refused",
            url: &in_url,
            args: [&trace[..], &["acquire", &name]].concat(),
            env_token: None,
            code: 2,
        },
    ];
    for case in &cases {
        case.check(&[&password, wrong]);
    }
}
