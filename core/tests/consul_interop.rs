//! Consul-only behaviour against a real agent: interoperability with
//! HashiCorp's `consul lock` (api.Lock / api.Semaphore underneath), refusal
//! of non-lock keys, fencing across key deletion, one session for many
//! leases, lock-delay, and ACL errors.
//!
//! Needs `POLYLOCK_TEST_CONSUL_URL` and `POLYLOCK_CONSUL_BIN`, for the ACL
//! case `POLYLOCK_TEST_CONSUL_ACL_URL` + `POLYLOCK_TEST_CONSUL_ACL_TOKEN`, and
//! for the TLS case `POLYLOCK_TEST_CONSUL_TLS_URL` +
//! `POLYLOCK_TEST_CONSUL_TLS_CERTS`; `tests/with-servers.sh` sets them. In CI
//! a missing variable fails the test.

#[path = "support/env.rs"]
mod env;
#[path = "support/proxy.rs"]
mod proxy;

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polylock::backends::consul::{LOCK_FLAG, SEMAPHORE_FLAG};
use polylock::{Client, ClientOptions, ErrorKind, Lease, Lock, LockOptions, Secret};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(60);

/// A required server setting (see `support/env.rs`).
fn env(var: &str) -> Option<String> {
    env::server_env(var, true)
}

struct Agent {
    url: String,
    http: String,
    bin: String,
}

fn agent() -> Option<Agent> {
    let url = env("POLYLOCK_TEST_CONSUL_URL")?;
    let bin = env("POLYLOCK_CONSUL_BIN")?;
    Some(Agent {
        http: url.replacen("consul://", "http://", 1),
        url,
        bin,
    })
}

fn unique(base: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "interop/{base}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Agent {
    /// Starts `consul lock ARGS PREFIX` around a child that prints "held"
    /// and waits for its stdin to close; returns once it holds the lock.
    async fn hold_with_cli(&self, args: &[&str], prefix: &str) -> Child {
        let mut child = Command::new(&self.bin)
            .arg("lock")
            .arg(format!("-http-addr={}", self.http))
            .args(["-pass-stdin", "-shell"])
            .args(args)
            .arg(prefix)
            .arg("echo held; read _ || true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("consul lock starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(WAIT, async {
            // consul lock may print its own lines first.
            while let Some(line) = lines.next_line().await.unwrap() {
                if line == "held" {
                    return;
                }
            }
            panic!("consul lock exited without running its child");
        })
        .await
        .expect("consul lock acquires in time");
        child
    }

    /// Runs `consul lock -timeout=1s ARGS PREFIX true`; true if it got the lock.
    async fn cli_can_lock(&self, args: &[&str], prefix: &str) -> bool {
        let status = tokio::time::timeout(
            WAIT,
            Command::new(&self.bin)
                .arg("lock")
                .arg(format!("-http-addr={}", self.http))
                .arg("-timeout=1s")
                .args(args)
                .arg(prefix)
                .arg("true")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
        )
        .await
        .expect("consul lock ends in time")
        .unwrap();
        status.success()
    }

    async fn get_flags(&self, key: &str) -> u64 {
        let body: serde_json::Value = reqwest::get(format!("{}/v1/kv/{key}", self.http))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body[0]["Flags"].as_u64().unwrap()
    }

    async fn put(&self, key: &str, query: &str, body: &'static str) {
        let response = reqwest::Client::new()
            .put(format!("{}/v1/kv/{key}?{query}", self.http))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    async fn delete(&self, key: &str) {
        reqwest::Client::new()
            .delete(format!("{}/v1/kv/{key}", self.http))
            .send()
            .await
            .unwrap();
    }
}

/// The error `result` must be, checked to be of `kind`.
fn expect_kind<T>(result: polylock::Result<T>, kind: ErrorKind) -> polylock::Error {
    let Err(error) = result else {
        panic!("expected a {kind:?} error, got success")
    };
    assert_eq!(error.kind(), kind, "{error}");
    error
}

/// Takes `name`, which must be free.
async fn hold(client: &Client, name: &str, options: LockOptions) -> Lease {
    client
        .lock(name, options)
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("the lock is free")
}

/// `theirs` (a running `consul lock`) keeps `lock` from us until it exits;
/// then our waiting acquire gets it.
async fn we_wait_for_the_cli(lock: &Lock, theirs: Child, why: &str) {
    assert!(lock.try_acquire().await.unwrap().is_none(), "{why}");
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire(WAIT).await })
    };
    finish(theirs).await;
    waiter.await.unwrap().unwrap().release().await.unwrap();
}

async fn finish(mut child: Child) {
    drop(child.stdin.take());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("consul lock exits once its child does")
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_mutex_and_consul_lock_exclude_each_other() {
    let Some(agent) = agent() else { return };
    let prefix = unique("mutex");
    let key = format!("{prefix}/.lock"); // what `consul lock -n 1 PREFIX` locks
    let client = Client::connect(&agent.url).await.unwrap();
    let lock = client.lock(&key, LockOptions::mutex()).unwrap();

    let ours = lock.try_acquire().await.unwrap().unwrap();
    assert_eq!(agent.get_flags(&key).await, LOCK_FLAG);
    assert!(
        !agent.cli_can_lock(&[], &prefix).await,
        "consul lock must wait for us"
    );
    ours.release().await.unwrap();
    assert_eq!(
        agent.get_flags(&key).await,
        LOCK_FLAG,
        "release keeps the lock flags"
    );

    let theirs = agent.hold_with_cli(&[], &prefix).await;
    we_wait_for_the_cli(&lock, theirs, "we must wait for consul lock").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_semaphore_and_consul_lock_share_slots() {
    let Some(agent) = agent() else { return };
    let prefix = unique("semaphore");
    let options = LockOptions::semaphore(2);
    let (a, b) = (
        Client::connect(&agent.url).await.unwrap(),
        Client::connect(&agent.url).await.unwrap(),
    );
    let first = hold(&a, &prefix, options.clone()).await;
    let second = hold(&b, &prefix, options.clone()).await;
    assert_eq!(
        agent.get_flags(&format!("{prefix}/.lock")).await,
        SEMAPHORE_FLAG
    );
    assert!(
        !agent.cli_can_lock(&["-n=2"], &prefix).await,
        "both slots are ours"
    );
    assert!(
        !agent.cli_can_lock(&["-n=3"], &prefix).await,
        "a different limit conflicts"
    );
    second.release().await.unwrap();

    let theirs = agent.hold_with_cli(&["-n=2"], &prefix).await;
    let lock = b.lock(&prefix, options).unwrap();
    we_wait_for_the_cli(&lock, theirs, "consul lock holds the other slot").await;
    first.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_are_not_locks_are_conflicts() {
    let Some(agent) = agent() else { return };
    let client = Client::connect(&agent.url).await.unwrap();
    let plain = unique("plain");
    agent.put(&plain, "flags=0", "not a lock").await;
    let error = expect_kind(
        client
            .lock(&plain, LockOptions::mutex())
            .unwrap()
            .try_acquire()
            .await,
        ErrorKind::Conflict,
    );
    assert!(error.to_string().contains("flags"), "{error}");

    let prefix = unique("plain-semaphore");
    agent.put(&format!("{prefix}/.lock"), "flags=7", "{}").await;
    expect_kind(
        client
            .lock(&prefix, LockOptions::semaphore(2))
            .unwrap()
            .try_acquire()
            .await,
        ErrorKind::Conflict,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_survive_key_deletion() {
    let Some(agent) = agent() else { return };
    let client = Client::connect(&agent.url).await.unwrap();
    let key = unique("fencing");
    let lock = client.lock(&key, LockOptions::mutex()).unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let lease = lock.try_acquire().await.unwrap().unwrap();
        let token = lease.fencing_token().unwrap();
        assert!(token > last, "{token} after {last}");
        last = token;
        lease.release().await.unwrap();
        agent.delete(&key).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_keeps_many_leases() {
    let Some(agent) = agent() else { return };
    let client = Client::connect(&agent.url).await.unwrap();
    let mut leases = Vec::new();
    for i in 0..5 {
        let lock = client
            .lock(&unique(&format!("many{i}")), LockOptions::mutex())
            .unwrap();
        leases.push(lock.try_acquire().await.unwrap().unwrap());
    }
    let semaphore = client
        .lock(&unique("many-sem"), LockOptions::semaphore(4))
        .unwrap();
    leases.push(semaphore.try_acquire().await.unwrap().unwrap());
    let sessions: std::collections::HashSet<_> =
        leases.iter().map(|l| l.holder().to_string()).collect();
    assert_eq!(
        sessions.len(),
        1,
        "every lease shares the client's one session"
    );
    // Taking the same semaphore again needs a second session (one slot each).
    let again = semaphore.try_acquire().await.unwrap().unwrap();
    assert_ne!(again.holder(), leases[0].holder());
    for lease in leases.iter().chain([&again]) {
        lease.release().await.unwrap();
    }
}

/// Consul refuses one address more than `http_max_conns_per_client` (200 by
/// default, as the test agent runs) connections, and every loss watch is a
/// long-poll holding one: a client must cap its watches to hold more leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_more_leases_than_consul_allows_connections() {
    let Some(agent) = agent() else { return };
    let client = Client::connect(&agent.url).await.unwrap();
    let prefix = unique("beyond-conn-limit");
    let mut leases = Vec::new();
    for i in 0..250 {
        let lock = client
            .lock(&format!("{prefix}/{i}"), LockOptions::mutex())
            .unwrap();
        leases.push(lock.try_acquire().await.unwrap().expect("a free name"));
    }
    // Watches have long started by now; every request still gets through.
    for lease in &leases {
        lease.renew().await.unwrap();
    }
    let more = client
        .lock(&format!("{prefix}/more"), LockOptions::mutex())
        .unwrap();
    let extra = more.try_acquire().await.unwrap().expect("a free name");
    assert!(leases.iter().all(Lease::is_held));
    for lease in leases.iter().chain([&extra]) {
        lease.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_delay_holds_a_lost_key_back_then_frees_it() {
    let Some(agent) = agent() else { return };
    let url = format!("{}?lock_delay=1s", agent.url);
    let (a, b) = (
        Client::connect(&url).await.unwrap(),
        Client::connect(&url).await.unwrap(),
    );
    let key = unique("lock-delay");
    let lease = hold(&a, &key, LockOptions::mutex()).await;
    let (tx, lost) = tokio::sync::oneshot::channel();
    lease.on_lost(move |_| {
        let _ = tx.send(());
    });
    reqwest::Client::new()
        .put(format!(
            "{}/v1/session/destroy/{}",
            agent.http,
            lease.holder()
        ))
        .send()
        .await
        .unwrap();
    tokio::time::timeout(WAIT, lost).await.unwrap().unwrap();
    let next = b
        .lock(&key, LockOptions::mutex())
        .unwrap()
        .acquire(WAIT)
        .await
        .unwrap();
    assert!(next.fencing_token() > lease.fencing_token());
    next.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_tokens_are_checked_and_never_shown() {
    let (Some(url), Some(token)) = (
        env("POLYLOCK_TEST_CONSUL_ACL_URL"),
        env("POLYLOCK_TEST_CONSUL_ACL_TOKEN"),
    ) else {
        return;
    };
    // Without a token, the anonymous token may lack permission: connecting
    // works (it needs none), the first lock is refused with a typed error.
    let anonymous = Client::connect(&url).await.unwrap();
    expect_kind(
        anonymous
            .lock(&unique("anonymous"), LockOptions::mutex())
            .unwrap()
            .try_acquire()
            .await,
        ErrorKind::Auth,
    );

    let wrong = "00000000-1111-2222-3333-444444444444";
    let error = expect_kind(
        Client::connect(&format!("{url}?token={wrong}")).await,
        ErrorKind::Auth,
    );
    assert!(!error.to_string().contains(wrong), "{error}");

    let mut options = ClientOptions::new(url.clone());
    options.token = Some(Secret::new(token.clone()));
    assert!(!format!("{options:?}").contains(&token));
    let client = Client::from_options(options).await.unwrap();
    assert!(!format!("{client:?}").contains(&token));
    let lease = hold(&client, &unique("acl"), LockOptions::mutex()).await;
    lease.release().await.unwrap();

    // A least-privilege token, writable only under its own prefix, works there.
    let scope = unique("scoped");
    let scoped = scoped_token(&url, &token, &scope).await;
    let client = Client::connect(&format!("{url}?token={scoped}"))
        .await
        .unwrap();
    let inside = hold(&client, &format!("{scope}/job"), LockOptions::mutex()).await;
    inside.release().await.unwrap();
    expect_kind(
        client
            .lock(&unique("outside"), LockOptions::mutex())
            .unwrap()
            .try_acquire()
            .await,
        ErrorKind::Auth,
    );
}

/// Makes (with the management token) a token that may write keys under
/// `prefix/` and create sessions, and nothing else; returns its secret.
async fn scoped_token(url: &str, management: &str, prefix: &str) -> String {
    let http = url.replacen("consul://", "http://", 1);
    let client = reqwest::Client::new();
    let policy = format!("polylock-{}", prefix.replace('/', "-"));
    let rules = format!(
        r#"key_prefix "{prefix}/" {{ policy = "write" }} session_prefix "" {{ policy = "write" }}"#
    );
    let response = client
        .put(format!("{http}/v1/acl/policy"))
        .header("X-Consul-Token", management)
        .json(&serde_json::json!({ "Name": policy, "Rules": rules }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let token: serde_json::Value = client
        .put(format!("{http}/v1/acl/token"))
        .header("X-Consul-Token", management)
        .json(&serde_json::json!({ "Policies": [{ "Name": policy }] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["SecretID"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_ca_and_client_certificate() {
    let (Some(url), Some(certs)) = (
        env("POLYLOCK_TEST_CONSUL_TLS_URL"),
        env("POLYLOCK_TEST_CONSUL_TLS_CERTS"),
    ) else {
        return;
    };
    let ca = format!("{certs}/consul-agent-ca.pem");
    let cert = format!("{certs}/dc1-client-consul-0.pem");
    let key = format!("{certs}/dc1-client-consul-0-key.pem");

    let client = Client::connect(&format!("{url}?ca={ca}&cert={cert}&key={key}"))
        .await
        .expect("CA + client certificate connect");
    let lease = hold(&client, &unique("tls"), LockOptions::mutex()).await;
    lease.release().await.unwrap();

    // The agent requires a client certificate.
    expect_kind(
        Client::connect(&format!("{url}?ca={ca}")).await,
        ErrorKind::Connection,
    );
    // Without the CA, the agent's certificate is not trusted.
    expect_kind(
        Client::connect(&format!("{url}?cert={cert}&key={key}")).await,
        ErrorKind::Connection,
    );
    // Unreadable files are invalid arguments, reported before connecting.
    expect_kind(
        Client::connect(&format!("{url}?ca={certs}/missing.pem")).await,
        ErrorKind::InvalidArgument,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_agent_loses_leases_at_their_deadline() {
    let Some(agent) = agent() else { return };
    let target = agent.http.trim_start_matches("http://").parse().unwrap();
    let proxy = proxy::Proxy::start(target).await;
    let cut_off = Client::connect(&format!("consul://{}", proxy.addr))
        .await
        .unwrap();
    let key = unique("unreachable");
    let options = LockOptions::mutex().ttl(Duration::from_secs(2));
    let lease = hold(&cut_off, &key, options.clone()).await;
    let (tx, lost) = tokio::sync::oneshot::channel();
    lease.on_lost(move |event| {
        let _ = tx.send(event.reason.clone());
    });

    proxy.cut();
    let reason = tokio::time::timeout(WAIT, lost)
        .await
        .expect("the keeper declares an unprovable lease lost")
        .unwrap();
    assert!(reason.contains("deadline"), "{reason}");
    assert!(!lease.is_held());
    assert_eq!(lease.time_to_expiration(), Duration::ZERO);

    // Consul expires the unrenewed session; the lock is then free for others.
    let other = Client::connect(&agent.url).await.unwrap();
    let next = other
        .lock(&key, options)
        .unwrap()
        .acquire(WAIT)
        .await
        .unwrap();
    assert!(next.fencing_token() > lease.fencing_token());
    next.release().await.unwrap();
    // The cut-off client's release cannot prove anything either: a typed error.
    assert_eq!(lease.release().await.unwrap_err().kind(), ErrorKind::Lost);
}
