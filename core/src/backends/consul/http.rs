//! Consul's HTTP API as polylock uses it: KV reads (plain, consistent and
//! blocking), transactions and session calls, with errors mapped to
//! [`Error`] kinds. Nothing here puts the ACL token in a URL or an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::config::ConsulConfig;
use crate::error::{Error, Result};

/// Longest blocking-query wait polylock asks for.
pub(crate) const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// Time limit for calls that do not block.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One KV entry as Consul returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KvPair {
    pub key: String,
    #[serde(default)]
    pub flags: u64,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub modify_index: u64,
    /// The index at which the key was (last) created: it changes when a
    /// key is deleted and made again.
    #[serde(default)]
    pub create_index: u64,
}

impl KvPair {
    /// The decoded value (empty when absent or not base64).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.value
            .as_deref()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .unwrap_or_default()
    }

    /// The holding session, if any.
    pub(crate) fn holder(&self) -> Option<&str> {
        self.session.as_deref().filter(|s| !s.is_empty())
    }
}

/// A KV read: the entries found and the `X-Consul-Index` to block on next.
#[derive(Debug)]
pub(crate) struct KvRead {
    pub pairs: Vec<KvPair>,
    pub index: u64,
}

/// How a KV read waits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadMode {
    /// An ordinary read.
    Now,
    /// A blocking query: return when the index passes `index`, or at `until`.
    Blocking { index: u64, until: Option<Instant> },
}

/// One operation of a `/v1/txn` request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TxnKv<'a> {
    pub verb: &'static str,
    pub key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
}

impl<'a> TxnKv<'a> {
    /// An operation with no value, flags, index or session.
    pub(crate) fn new(verb: &'static str, key: &'a str) -> Self {
        TxnKv {
            verb,
            key,
            value: None,
            flags: None,
            index: None,
            session: None,
        }
    }

    /// Sets the value (base64-encoded as Consul wants).
    pub(crate) fn value(mut self, value: &[u8]) -> Self {
        self.value = Some(base64::engine::general_purpose::STANDARD.encode(value));
        self
    }

    /// Sets the flags.
    pub(crate) fn flags(mut self, flags: u64) -> Self {
        self.flags = Some(flags);
        self
    }

    /// Sets the index (for `cas`, `check-index`, `delete-cas`).
    pub(crate) fn index(mut self, index: u64) -> Self {
        self.index = Some(index);
        self
    }

    /// Sets the session (for `lock`, `unlock`, `check-session`).
    pub(crate) fn session(mut self, session: &'a str) -> Self {
        self.session = Some(session);
        self
    }
}

/// What a transaction did.
#[derive(Debug)]
pub(crate) enum TxnOutcome {
    /// Every operation applied; the entries Consul returned, in order. Not
    /// every operation returns one (`check-not-exists` does not), so look
    /// entries up with [`last_entry`].
    Committed(Vec<KvPair>),
    /// Nothing applied; which operations failed and why.
    RolledBack(Vec<TxnFailure>),
}

/// One failed operation of a rolled-back transaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TxnFailure {
    /// The position of the failed operation in the request.
    #[serde(default)]
    pub op_index: usize,
    /// Consul's reason.
    pub what: String,
}

/// Consul's reasons, joined for an error message.
pub(crate) fn describe(failures: &[TxnFailure]) -> String {
    failures
        .iter()
        .map(|f| f.what.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// An HTTP client for one Consul agent.
pub(crate) struct ConsulHttp {
    client: reqwest::Client,
    config: ConsulConfig,
    /// Calls that do not block, at most this many at once (blocking queries
    /// are capped by [`super::topics`]).
    calls: tokio::sync::Semaphore,
    /// The highest `X-Consul-Index` any reply carried: a lower bound of the
    /// cluster's index now.
    last_index: AtomicU64,
}

impl ConsulHttp {
    pub(crate) fn new(config: ConsulConfig) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            // Idle connections count against Consul's per-address limit
            // (200 by default): keep few once a burst is over.
            .pool_max_idle_per_host(16)
            .tcp_nodelay(true)
            .use_rustls_tls();
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::invalid(format!("cannot read CA file {}: {e}", ca.display()))
            })?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| Error::invalid(format!("bad CA file {}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(certificate);
        }
        if let Some((cert, key)) = &config.client_cert {
            let mut pem = std::fs::read(cert).map_err(|e| {
                Error::invalid(format!(
                    "cannot read client certificate {}: {e}",
                    cert.display()
                ))
            })?;
            pem.extend(std::fs::read(key).map_err(|e| {
                Error::invalid(format!("cannot read client key {}: {e}", key.display()))
            })?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| Error::invalid(format!("bad client certificate or key: {e}")))?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| Error::invalid(format!("cannot build the HTTP client: {e}")))?;
        let calls = tokio::sync::Semaphore::new(config.max_calls());
        Ok(ConsulHttp {
            client,
            config,
            calls,
            last_index: AtomicU64::new(0),
        })
    }

    /// The highest index seen in any reply so far.
    pub(crate) fn last_index(&self) -> u64 {
        self.last_index.load(Ordering::Relaxed)
    }

    fn saw_index(&self, index: u64) {
        self.last_index.fetch_max(index, Ordering::Relaxed);
    }

    /// Waits for a slot among the calls that do not block.
    async fn call_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.calls
            .acquire()
            .await
            .expect("polylock never closes its call semaphore")
    }

    pub(crate) fn config(&self) -> &ConsulConfig {
        &self.config
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut url = self.config.address.clone();
        url.set_path(path);
        let mut request = self.client.request(method, url);
        if let Some(token) = &self.config.token {
            request = request.header("X-Consul-Token", token.expose());
        }
        request
    }

    /// Sends a request and maps transport failures and error statuses.
    /// `allow` lists non-2xx statuses returned to the caller as they are.
    async fn send(&self, request: RequestBuilder, allow: &[StatusCode]) -> Result<Response> {
        let response = request
            .send()
            .await
            .map_err(|e| Error::Connection(format!("consul: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() || allow.contains(&status) {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let body = body.trim();
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                Error::Auth(format!("consul refused the ACL token ({status}): {body}"))
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Error::Connection(format!("consul answered {status}: {body}"))
            }
            _ => Error::Backend(format!("consul answered {status}: {body}")),
        })
    }

    /// Checks that the agent answers and its cluster has a leader, and that
    /// a configured token exists. Needs no ACL permission, so a token
    /// limited to the lock keys passes.
    pub(crate) async fn check(&self) -> Result<()> {
        let _slot = self.call_slot().await;
        let request = self
            .request(Method::GET, "/v1/status/leader")
            .timeout(CALL_TIMEOUT);
        let leader: String =
            self.send(request, &[]).await?.json().await.map_err(|e| {
                Error::Backend(format!("consul sent an unreadable leader reply: {e}"))
            })?;
        if leader.is_empty() {
            return Err(Error::Connection("the consul cluster has no leader".into()));
        }
        if self.config.token.is_some() {
            // Any existing token may read itself; 401 means ACLs are off.
            let request = self
                .request(Method::GET, "/v1/acl/token/self")
                .timeout(CALL_TIMEOUT);
            self.send(request, &[StatusCode::UNAUTHORIZED]).await?;
        }
        Ok(())
    }

    /// Reads one key (or, with `recurse`, every key under it).
    pub(crate) async fn read(
        &self,
        key: &str,
        recurse: bool,
        mode: ReadMode,
        consistent: bool,
    ) -> Result<KvRead> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if recurse {
            query.push(("recurse", String::new()));
        }
        if consistent {
            query.push(("consistent", String::new()));
        }
        let mut timeout = CALL_TIMEOUT;
        let _slot = match mode {
            ReadMode::Now => Some(self.call_slot().await),
            ReadMode::Blocking { .. } => None,
        };
        if let ReadMode::Blocking { index, until } = mode {
            let wait = until
                .map(|u| u.saturating_duration_since(Instant::now()))
                .unwrap_or(MAX_BLOCKING_WAIT)
                .clamp(Duration::from_millis(1), MAX_BLOCKING_WAIT);
            query.push(("index", index.max(1).to_string()));
            query.push(("wait", format!("{}ms", wait.as_millis().max(1))));
            // Consul adds up to wait/16 of jitter.
            timeout = wait + wait / 16 + CALL_TIMEOUT;
        }
        let request = self
            .request(Method::GET, &format!("/v1/kv/{key}"))
            .query(&query)
            .timeout(timeout);
        let response = self.send(request, &[StatusCode::NOT_FOUND]).await?;
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        self.saw_index(index);
        let pairs = if response.status() == StatusCode::NOT_FOUND {
            Vec::new()
        } else {
            let body = response
                .bytes()
                .await
                .map_err(|e| Error::Backend(format!("consul sent an unreadable KV reply: {e}")))?;
            decode_kv_reply(&body)?
        };
        Ok(KvRead { pairs, index })
    }

    /// `PUT /v1/kv/KEY?acquire=SESSION&flags=FLAGS` with `value`; true if acquired.
    pub(crate) async fn acquire_key(
        &self,
        key: &str,
        session: &str,
        flags: u64,
        value: &[u8],
    ) -> Result<bool> {
        let _slot = self.call_slot().await;
        let request = self
            .request(Method::PUT, &format!("/v1/kv/{key}"))
            .query(&[("acquire", session), ("flags", &flags.to_string())])
            .body(value.to_vec())
            .timeout(CALL_TIMEOUT);
        let response = self.send(request, &[]).await?;
        parse_bool(response).await
    }

    /// Runs a transaction.
    pub(crate) async fn txn(&self, ops: &[TxnKv<'_>]) -> Result<TxnOutcome> {
        let _slot = self.call_slot().await;
        let body: Vec<Value> = ops
            .iter()
            .map(|op| serde_json::json!({ "KV": op }))
            .collect();
        let request = self
            .request(Method::PUT, "/v1/txn")
            .json(&body)
            .timeout(CALL_TIMEOUT);
        let response = self.send(request, &[StatusCode::CONFLICT]).await?;
        let conflict = response.status() == StatusCode::CONFLICT;
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::Backend(format!("consul sent an unreadable txn reply: {e}")))?;
        let outcome = decode_txn_reply(conflict, &body)?;
        if let TxnOutcome::Committed(entries) = &outcome {
            if let Some(index) = entries.iter().map(|kv| kv.modify_index).max() {
                self.saw_index(index);
            }
        }
        Ok(outcome)
    }

    /// `PUT` with a JSON body; returns the JSON reply, or `None` on 404.
    pub(crate) async fn put_json(&self, path: &str, body: Option<&Value>) -> Result<Option<Value>> {
        let _slot = self.call_slot().await;
        let mut request = self.request(Method::PUT, path).timeout(CALL_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request, &[StatusCode::NOT_FOUND]).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| Error::Backend(format!("consul sent an unreadable reply: {e}")))
    }
}

async fn parse_bool(response: Response) -> Result<bool> {
    let text = response
        .text()
        .await
        .map_err(|e| Error::Connection(format!("consul: {}", e.without_url())))?;
    parse_bool_text(&text)
}

/// The body of a KV read (`GET /v1/kv/…`, 200): Consul's JSON array of entries.
pub(crate) fn decode_kv_reply(body: &[u8]) -> Result<Vec<KvPair>> {
    serde_json::from_slice(body)
        .map_err(|e| Error::Backend(format!("consul sent an unreadable KV reply: {e}")))
}

/// The body of a `/v1/txn` reply: committed (200, its entries in order)
/// or rolled back (`conflict`: 409, its failures).
pub(crate) fn decode_txn_reply(conflict: bool, body: &[u8]) -> Result<TxnOutcome> {
    let reply: TxnReply = serde_json::from_slice(body)
        .map_err(|e| Error::Backend(format!("consul sent an unreadable txn reply: {e}")))?;
    if conflict {
        return Ok(TxnOutcome::RolledBack(reply.errors.unwrap_or_default()));
    }
    Ok(TxnOutcome::Committed(
        reply
            .results
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.kv)
            .collect(),
    ))
}

/// The text of a `true` / `false` reply (`PUT /v1/kv/…?acquire=`).
pub(crate) fn parse_bool_text(text: &str) -> Result<bool> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::Backend(format!(
            "consul answered {other:?}, expected true or false"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnReply {
    results: Option<Vec<TxnResult>>,
    errors: Option<Vec<TxnFailure>>,
}

#[derive(Deserialize)]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<KvPair>,
}

/// The last entry a committed transaction returned for `key`: the state
/// after the transaction's final operation on it.
pub(crate) fn last_entry<'a>(entries: &'a [KvPair], key: &str) -> Result<&'a KvPair> {
    entries
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .ok_or_else(|| {
            Error::Backend(format!(
                "consul's transaction returned no entry for {key:?}"
            ))
        })
}

/// The next index to block on, following Consul's rules: reset to 0 when
/// the index went backwards, and never below 1.
pub(crate) fn next_index(previous: u64, returned: u64) -> u64 {
    if returned < previous {
        1
    } else {
        returned.max(1)
    }
}
