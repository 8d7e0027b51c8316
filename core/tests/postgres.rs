//! PostgreSQL beyond the conformance suite, on the real server
//! tests/with-servers.sh starts (`POLYLOCK_TEST_POSTGRES_URL`, its state in
//! `POLYLOCK_TEST_POSTGRES_DIR` for the restart case): tenants in their own
//! schema and table, SQL injection attempts through names, values and
//! schema options, fencing tokens across deletes, renewal counted (one
//! statement per client and TTL, whatever the lease count), TLS, passwords
//! and client certificates (`POLYLOCK_TEST_POSTGRES_TLS_URL`, `_TLS_DIR`:
//! `postgres.sh start-tls`), and waiters woken after
//! a server restart (the LISTEN connection comes back; on a second server,
//! `POLYLOCK_TEST_POSTGRES_RESTART_URL` and `_DIR`, so no other test sees
//! the restart).

#[path = "support/counted_client.rs"]
mod counted_client;
#[path = "support/counting_proxy.rs"]
mod counting_proxy;
#[path = "support/env.rs"]
mod env;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polylock::{Client, ErrorKind, LockOptions};

const WAIT: Duration = Duration::from_secs(60);

fn url() -> Option<String> {
    env::server_env("POLYLOCK_TEST_POSTGRES_URL", true)
}

fn name(base: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "pg-test/{base}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with `options` (`key=value&…`) added to its query.
fn with(url: &str, options: &str) -> String {
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}{options}")
}

/// Runs `sql` with psql on the test server as its superuser; its output.
fn psql(sql: &str) -> String {
    let dir = std::env::var("POLYLOCK_TEST_POSTGRES_DIR").expect("POLYLOCK_TEST_POSTGRES_DIR");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/servers/postgres.sh");
    let out = Command::new("bash")
        .args([script, "psql", &dir, "-XAtc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_keep_their_locks_in_their_own_schema_and_table() {
    let Some(url) = url() else { return };
    let a = Client::connect(&with(&url, "schema=tenant_a&table=mutexes"))
        .await
        .unwrap();
    let b = Client::connect(&with(&url, "schema=tenant_b&table=mutexes"))
        .await
        .unwrap();
    let lock = name("tenant");
    let held_a = a
        .lock(&lock, LockOptions::mutex())
        .unwrap()
        .try_acquire()
        .await;
    let held_b = b
        .lock(&lock, LockOptions::mutex())
        .unwrap()
        .try_acquire()
        .await;
    let (held_a, held_b) = (held_a.unwrap().unwrap(), held_b.unwrap().unwrap());
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM tenant_a.mutexes WHERE name = '{lock}'"
        )),
        "1"
    );
    assert_eq!(a.status(&lock).await.unwrap().holders.len(), 1);
    held_a.release().await.unwrap();
    held_b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_injection_attempts_get_typed_errors_and_change_nothing() {
    let Some(url) = url() else { return };
    for option in [
        "schema=x%22%3B%20DROP%20SCHEMA%20polylock%20CASCADE%3B--",
        "table=locks%27%3B%20DROP%20TABLE%20polylock.locks%3B--",
        "schema=Public",
        "table=a%20b",
    ] {
        let error = Client::connect(&with(&url, option)).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::InvalidArgument,
            "{option}: {error}"
        );
    }
    // Nothing was created or dropped: no schema but plain identifiers, and
    // the default table is there once a client has used it.
    assert_eq!(
        psql("SELECT count(*) FROM pg_namespace WHERE nspname ~ '[^a-z0-9_]'"),
        "0"
    );

    let client = Client::connect(&url).await.unwrap();
    for bad in ["x'; DROP TABLE polylock.locks; --", "a\"b", "a b", "$1"] {
        let error = client.lock(bad, LockOptions::mutex()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{bad}: {error}");
    }
    // A value is data, whatever it holds.
    let value = "'); DELETE FROM polylock.locks; -- \" $1 \\ ünïcode";
    let lock = name("value");
    let lease = client
        .lock(&lock, LockOptions::mutex().value(value))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("free");
    let status = client.status(&lock).await.unwrap();
    assert_eq!(status.holders[0].value, value);
    assert_eq!(
        psql("SELECT to_regclass('polylock.locks') IS NOT NULL"),
        "t"
    );
    lease.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_keep_increasing_across_deletes() {
    let Some(url) = url() else { return };
    let client = Client::connect(&url).await.unwrap();
    let lock = name("fence");
    let mut last = 0;
    for round in 0..6 {
        let lease = client
            .lock(&lock, LockOptions::mutex())
            .unwrap()
            .try_acquire()
            .await
            .unwrap()
            .expect("free");
        let token = lease.fencing_token().expect("a token");
        assert!(token > last, "round {round}: {token} after {last}");
        last = token;
        if round % 2 == 0 {
            // An operator empties the table: tokens must not restart.
            assert_eq!(client.force_release(&lock).await.unwrap(), 1);
            psql(&format!("DELETE FROM polylock.locks WHERE name = '{lock}'"));
            drop(lease);
        } else {
            lease.release().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_woken_after_a_server_restart() {
    let Some(url) = env::server_env("POLYLOCK_TEST_POSTGRES_RESTART_URL", true) else {
        return;
    };
    let dir = std::env::var("POLYLOCK_TEST_POSTGRES_RESTART_DIR")
        .expect("POLYLOCK_TEST_POSTGRES_RESTART_DIR, beside its URL");
    let holder = Client::connect(&url).await.unwrap();
    let waiter = Client::connect(&url).await.unwrap();
    let lock = name("restart");
    let options = LockOptions::mutex().ttl(Duration::from_secs(20));
    let lease = holder
        .lock(&lock, options.clone())
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("free");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/servers/postgres.sh");
    let restart = tokio::process::Command::new("bash")
        .args([script, "restart", &dir])
        .status()
        .await
        .unwrap();
    assert!(restart.success());
    // The holder's release goes through a new connection; the waiter hears
    // it on its LISTEN connection once that is back (or by its fallback).
    let wait = waiter.lock(&lock, options).unwrap();
    let waiting = tokio::spawn(async move { wait.acquire(WAIT).await });
    let mut released = false;
    for _ in 0..50 {
        match lease.release().await {
            Ok(()) => {
                released = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::Connection => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("release after the restart: {e}"),
        }
    }
    assert!(released, "the release went through after the restart");
    let taken = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("bounded")
        .unwrap()
        .expect("the waiter gets the lock");
    taken.release().await.unwrap();
}

/// The TLS server's URL (`postgres.sh start-tls`) and its state directory
/// (certs/, password).
fn tls_server() -> Option<(String, std::path::PathBuf)> {
    let url = env::server_env("POLYLOCK_TEST_POSTGRES_TLS_URL", true)?;
    let dir = std::env::var("POLYLOCK_TEST_POSTGRES_TLS_DIR")
        .expect("POLYLOCK_TEST_POSTGRES_TLS_DIR, beside its URL");
    Some((url, dir.into()))
}

/// `url` (`postgres://polylock@localhost:PORT/DB?…`) for another role and
/// other TLS options.
fn as_role(url: &str, role: &str, query: &str) -> String {
    let rest = url
        .strip_prefix("postgres://polylock@")
        .expect("the TLS server's URL");
    let authority_and_db = rest.split('?').next().unwrap();
    format!("postgres://{role}@{authority_and_db}?{query}")
}

async fn can_lock(url: &str, token: Option<&str>) -> polylock::Result<()> {
    let mut options = polylock::ClientOptions::new(url);
    options.token = token.map(polylock::Secret::new);
    let client = Client::from_options(options).await?;
    let lease = client
        .lock(&name("tls"), LockOptions::mutex())?
        .try_acquire()
        .await?
        .expect("free");
    lease.release().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server_as_sslmode_says() {
    let Some((url, dir)) = tls_server() else {
        return;
    };
    let ca = dir.join("certs/ca.pem");
    let ca = ca.display();
    // verify-full, as printed (localhost is on the certificate).
    can_lock(&with(&url, "schema=tls_full"), None)
        .await
        .unwrap();
    // 127.0.0.1 is on it too; verify-ca checks only the chain.
    let by_ip = url.replace("@localhost:", "@127.0.0.1:");
    can_lock(&with(&by_ip, "schema=tls_ip"), None)
        .await
        .unwrap();
    let base = url.split('?').next().unwrap();
    can_lock(
        &format!("{base}?sslmode=verify-ca&sslrootcert={ca}&schema=tls_ca"),
        None,
    )
    .await
    .unwrap();
    // require: TLS, any certificate.
    can_lock(&format!("{base}?sslmode=require&schema=tls_req"), None)
        .await
        .unwrap();
    // A CA that did not sign the server's certificate: refused.
    let wrong_ca = dir.join("certs/server.pem");
    let error = can_lock(
        &format!(
            "{base}?sslmode=verify-full&sslrootcert={}",
            wrong_ca.display()
        ),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection, "{error}");
    // The server takes no connection without TLS.
    let error = can_lock(&format!("{base}?sslmode=disable"), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_signs_in_and_never_shows() {
    let Some((url, dir)) = tls_server() else {
        return;
    };
    let password = std::fs::read_to_string(dir.join("password")).unwrap();
    let password = password.trim();
    let ca = dir.join("certs/ca.pem");
    let query = format!("sslmode=verify-full&sslrootcert={}&schema=pw", ca.display());
    let plain = as_role(&url, "polylock_pw", &query);
    // Given as ClientOptions::token, in the URL, and wrong.
    can_lock(&plain, Some(password)).await.unwrap();
    let in_url = plain.replacen("polylock_pw@", &format!("polylock_pw:{password}@"), 1);
    can_lock(&in_url, None).await.unwrap();
    let wrong = "not-the-password-7c1f";
    let error = can_lock(&plain, Some(wrong)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth, "{error}");
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(password),
        "{shown}"
    );
    let config = polylock::backends::postgres::PostgresConfig::from_url(
        &url::Url::parse(&in_url).unwrap(),
        None,
    )
    .unwrap();
    assert!(!format!("{config:?}").contains(password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_signs_in() {
    let Some((url, dir)) = tls_server() else {
        return;
    };
    let certs = dir.join("certs");
    let ca = certs.join("ca.pem");
    let with_cert = format!(
        "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}&schema=cert",
        ca.display(),
        certs.join("client.pem").display(),
        certs.join("client-key.pem").display()
    );
    can_lock(&as_role(&url, "polylock_cert", &with_cert), None)
        .await
        .unwrap();
    let without = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let error = can_lock(&as_role(&url, "polylock_cert", &without), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_renews_all_of_a_clients_leases() {
    let Some(url) = url() else { return };
    let (client, proxy, mut events) = counted_client::counted(&url).await;
    let leases_held = 50;
    let options = LockOptions::mutex().ttl(Duration::from_secs(3));
    let mut leases = Vec::new();
    for _ in 0..leases_held {
        let lock = client.lock(&name("renewed"), options.clone()).unwrap();
        leases.push(lock.try_acquire().await.unwrap().expect("free"));
    }
    let before = proxy.counts();
    let rounds = 3;
    // Every lease renewed `rounds` times (the keeper reports each lease).
    counted_client::events(&mut events, leases_held * rounds, |e| {
        matches!(e, polylock::Event::Renewed { .. })
    })
    .await;
    let spent = proxy.counts().since(before);
    eprintln!("{leases_held} leases, {rounds} renewals each: {spent:?}");
    // One statement per round; a round may have started before `before`
    // and the next may be under way.
    assert!(
        spent.total() <= (rounds + 1) as u64,
        "{leases_held} leases renewed {rounds} times sent {spent:?}"
    );
    for lease in leases {
        lease.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_is_not_polylocks_is_refused_and_left_alone() {
    let Some(url) = url() else { return };
    psql("CREATE SCHEMA IF NOT EXISTS foreign_app; CREATE TABLE IF NOT EXISTS foreign_app.locks (x integer)");
    let error = Client::connect(&with(&url, "schema=foreign_app"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert_eq!(
        psql("SELECT coalesce(obj_description('foreign_app.locks'::regclass, 'pg_class'), 'none'), (SELECT count(*) FROM pg_proc WHERE pronamespace = 'foreign_app'::regnamespace)"),
        "none|0"
    );
}
