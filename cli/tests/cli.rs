//! The `polylock` binary, run as a user would, against memory:// and the real
//! servers `tests/with-servers.sh` starts (Consul; FerretDB where the
//! backend supports the subcommand).

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

/// Waits for `child` (at most [`BOUND`]) and collects its output.
fn finish(child: Child) -> Output {
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    output
        .recv_timeout(BOUND)
        .expect("polylock finished within the bound")
        .expect("polylock's output")
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

// ---- every backend -------------------------------------------------------

/// `run` passes the command's exit code and the lease in its environment.
fn run_passes_exit_code_and_lease(url: &str) {
    let name = unique("run");
    expect(url, &["run", &name, "--", "sh", "-c", "exit 7"], 7);
    let script = r#"test "$POLYLOCK_NAME" = "$1" && test -n "$POLYLOCK_HOLDER" && test -n "$POLYLOCK_FENCING_TOKEN""#;
    expect(
        url,
        &["run", &name, "--", "sh", "-c", script, "sh", &name],
        0,
    );
    expect(
        url,
        &["run", &name, "--", "sh", "-c", "kill -9 $$"],
        128 + 9,
    );
    expect(url, &["run", &name, "--", "/nonexistent/command"], 127);
    if url.starts_with("memory:") {
        return; // the store lives in each process
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
    run_passes_exit_code_and_lease("memory://");
}

#[test]
fn consul_run() {
    if let Some(url) = consul() {
        run_passes_exit_code_and_lease(&url);
    }
}

#[test]
fn ferretdb_run() {
    if let Some(url) = ferretdb() {
        run_passes_exit_code_and_lease(&url);
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

// ---- run: exclusion and loss -------------------------------------------------

/// A `run` whose command prints `started`, then waits for stdin to close
/// (exit 0) or for SIGTERM (prints `got-term`, exit 0).
fn start_holding_run(url: &str, name: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let script =
        r#"trap 'echo got-term; exit 0' TERM; echo started; while read -r line; do :; done"#;
    let mut child = polylock(url)
        .args([
            "run", name, "--ttl", "10s", "--grace", "5s", "--", "sh", "-c", script,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started");
    (child, stdout)
}

/// Waits for `child` (bounded) after its stdout was taken.
fn wait_bounded(mut child: Child) -> (ExitStatus, String) {
    let mut stderr = child.stderr.take().unwrap();
    let (done, status) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = done.send((child.wait(), text));
    });
    let (status, text) = status
        .recv_timeout(BOUND)
        .expect("run ended within the bound");
    (status.unwrap(), text)
}

#[test]
fn consul_run_excludes_others_and_stops_the_command_on_loss() {
    let Some(url) = consul() else { return };
    let name = unique("lost");
    let (mut holder, mut out) = start_holding_run(&url, &name);
    // Another run cannot get in while the command runs.
    expect(&url, &["run", &name, "--timeout", "300ms", "--", "true"], 3);
    let status = expect(&url, &["status", &name, "--json"], 0);
    assert_eq!(status["held"], true);
    // The operator takes the lock away: the command is stopped, run fails.
    expect(&url, &["delete", &name, "--yes"], 0);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "got-term");
    drop(holder.stdin.take());
    let (status, stderr) = wait_bounded(holder);
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("lost the lock"), "{stderr}");
    // And a command that ends on its own releases the lock.
    let (mut holder, _out) = start_holding_run(&url, &name);
    drop(holder.stdin.take());
    let (status, stderr) = wait_bounded(holder);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(expect(&url, &["status", &name, "--json"], 0)["held"], false);
}

#[test]
fn consul_watch_is_refused_clearly() {
    let Some(url) = consul() else { return };
    let output = run(&url, &["watch", "x"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("does not support lock event streams"),
        "{}",
        stderr(&output)
    );
}

// ---- FerretDB: the event stream ----------------------------------------------

#[test]
fn ferretdb_watch_prints_other_processes_events() {
    let Some(url) = ferretdb() else { return };
    let name = unique("watch");
    let mut watcher = polylock(&url)
        .args(["watch", &name, "--count", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = BufReader::new(watcher.stderr.take().unwrap());
    let mut line = String::new();
    ready.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching"), "{line}");
    expect(&url, &["run", &name, "--", "true"], 0);
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
