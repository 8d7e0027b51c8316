//! Entry points for the fuzz targets (`fuzz/` at the repository root; only
//! with the `fuzzing` cargo feature, not an API). Each takes arbitrary
//! bytes and hands them to the crate's real parsers and decoders, the same
//! functions the backends call on URLs and on what servers send, with no
//! logic of its own beyond splitting the bytes. They panic only where an
//! invariant breaks: an error of the wrong kind (a bad URL or option is
//! always [`ErrorKind::InvalidArgument`], an unreadable reply
//! [`ErrorKind::Backend`]), or a decoder contradicting itself.

use std::time::Duration;

use crate::error::{ErrorKind, Result};
use crate::options::{ClientOptions, LockOptions, ResolvedLockOptions, Secret};

/// Asserts that a failure is of the `expected` kind; the value when not.
#[track_caller]
fn typed<T>(result: Result<T>, expected: &[ErrorKind]) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            assert!(
                expected.contains(&error.kind()),
                "expected an error of kind {expected:?}, got {:?}: {error}",
                error.kind()
            );
            assert!(!error.to_string().is_empty(), "an error without a message");
            None
        }
    }
}

/// Two environments to read settings with: none, and one where every
/// variable has the same value.
type Envs<'a> = [&'a dyn Fn(&str) -> Option<String>; 2];

/// The kind of every URL, name and option error.
const INVALID: &[ErrorKind] = &[ErrorKind::InvalidArgument];

/// Backend URLs, lock names and options: the first line of `data` (as
/// UTF-8, lossily) is a backend URL, parsed and checked as connecting
/// would ([`crate::url`], then the backend's own URL settings, once
/// without environment and once with every variable set to the rest);
/// the rest is a lock name, a Go duration, percent-encoded URL text, a
/// holder value and a token. The last bytes pick a limit and the
/// fractions of the client options.
pub fn url_options(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (url_text, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = crate::url::redact(url_text);
    if let Some(url) = typed(crate::url::parse(url_text), INVALID) {
        if typed(crate::url::connector(url.scheme()), INVALID).is_some() {
            backend_settings(&url, rest);
        }
    }
    typed(crate::options::validate_name(rest), INVALID);
    #[cfg(any(feature = "consul", feature = "ldlm"))]
    let duration = typed(crate::backends::duration::parse_go_duration(rest), INVALID);
    #[cfg(not(any(feature = "consul", feature = "ldlm")))]
    let duration: Option<Duration> = None;
    #[cfg(feature = "consul")]
    if let Some(duration) = duration {
        let (rounded, text) = crate::backends::duration::whole_seconds(duration);
        assert!(rounded >= duration && text.ends_with('s'), "{duration:?}");
    }
    #[cfg(any(feature = "ldlm", feature = "postgres"))]
    let _ = crate::backends::url_text::percent_decode(rest);

    let tail = |at: usize| data.len().checked_sub(at).map_or(0, |i| data[i]);
    let ttl = duration.unwrap_or(Duration::from_secs(u64::from(tail(1))));
    typed(crate::options::validate_ttl(ttl), INVALID);
    let limit = u32::from_le_bytes([tail(2), tail(3), 0, 0]);
    typed(crate::options::validate_limit(limit), INVALID);
    let fraction = |at: usize| f64::from(tail(at)) / 128.0 - 0.25;
    let client = ClientOptions {
        url: url_text.to_string(),
        default_ttl: ttl,
        renew_fraction: fraction(4),
        safety_fraction: fraction(5),
        default_value: rest.to_string(),
        token: (!rest.is_empty()).then(|| Secret::new(rest)),
        observers: Vec::new(),
    };
    let _ = format!("{client:?}");
    typed(client.validate(), INVALID);
    let lock = LockOptions {
        limit,
        ttl: (tail(6) % 2 == 0).then_some(ttl),
        value: (tail(6) % 3 == 0).then(|| rest.to_string()),
        auto_renew: tail(6) % 5 == 0,
    };
    typed(ResolvedLockOptions::resolve(&lock, &client), INVALID);
}

/// The backend's own reading of `url`, with `rest` as the token, and as
/// every environment variable on a second reading.
fn backend_settings(url: &url::Url, rest: &str) {
    let token = (!rest.is_empty()).then(|| Secret::new(rest));
    let envs: Envs<'_> = [&|_| None, &|_| Some(rest.to_string())];
    match url.scheme() {
        "memory" => {
            typed(crate::backends::memory::namespace(url), INVALID);
        }
        #[cfg(feature = "consul")]
        "consul" | "consul+https" => {
            use crate::backends::consul::ConsulConfig;
            for env in envs {
                if let Some(config) = typed(
                    ConsulConfig::from_url_and_env(url, token.clone(), env),
                    INVALID,
                ) {
                    assert!(config.max_calls() >= 1 && config.max_long_polls() >= 2);
                    let _ = format!("{config:?}");
                }
            }
        }
        #[cfg(feature = "mongodb")]
        "mongodb" | "mongodb+srv" => {
            use crate::backends::mongo::MongoConfig;
            if let Some(config) = typed(MongoConfig::from_url(url, token.clone()), INVALID) {
                let _ = (config.sessions_collection(), format!("{config:?}"));
            }
        }
        #[cfg(feature = "ldlm")]
        "ldlm" | "ldlms" => {
            use crate::backends::ldlm::LdlmConfig;
            for env in envs {
                if let Some(config) = typed(
                    LdlmConfig::from_url_and_env(url, token.clone(), env),
                    INVALID,
                ) {
                    let _ = (config.address(), format!("{config:?}"));
                }
            }
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => postgres_config(url, token.clone(), envs),
        _ => {}
    }
    let _ = (envs, &token);
}

/// PostgreSQL settings from `url`, and the statements naming its schema
/// and table.
#[cfg(feature = "postgres")]
fn postgres_config(url: &url::Url, token: Option<Secret>, envs: Envs<'_>) {
    use crate::backends::postgres::schema::Names;
    use crate::backends::postgres::PostgresConfig;
    for env in envs {
        if let Some(config) = typed(
            PostgresConfig::from_url_and_env(url, token.clone(), env),
            INVALID,
        ) {
            let _ = (config.address(), format!("{config:?}"));
            let names = Names::new(&config);
            let _ = (names.create(), names.listen(), names.acquire());
        }
    }
}

/// Consul HTTP reply bodies: `data` read as every body polylock decodes
/// (a KV read, a committed and a rolled-back `/v1/txn` reply, a session
/// reply, a `true`/`false` reply), and the entries found run through the
/// mutex and semaphore recipes, the operator views and the event stream's
/// state comparison (the entries, half of them, all again, none).
#[cfg(feature = "consul")]
pub fn consul_responses(data: &[u8]) {
    use crate::backends::consul::{http, session};
    const BACKEND: &[ErrorKind] = &[ErrorKind::Backend];
    if let Some(pairs) = typed(http::decode_kv_reply(data), BACKEND) {
        consul_state(&pairs);
    }
    match typed(http::decode_txn_reply(false, data), BACKEND) {
        Some(http::TxnOutcome::Committed(entries)) => {
            for entry in &entries {
                let last = http::last_entry(&entries, &entry.key).expect("an entry it returned");
                assert_eq!(last.key, entry.key);
            }
            consul_state(&entries);
        }
        Some(http::TxnOutcome::RolledBack(_)) => unreachable!("a 200 reply rolls nothing back"),
        None => {}
    }
    if let Some(http::TxnOutcome::RolledBack(failures)) =
        typed(http::decode_txn_reply(true, data), BACKEND)
    {
        let _ = http::describe(&failures);
    }
    typed(
        http::parse_bool_text(&String::from_utf8_lossy(data)),
        BACKEND,
    );
    if let Ok(reply) = serde_json::from_slice::<serde_json::Value>(data) {
        typed(session::session_id(&reply), BACKEND);
        let _ = session::parse_session_ttl(&reply);
    }
}

/// What polylock reads from one set of KV entries.
#[cfg(feature = "consul")]
fn consul_state(pairs: &[crate::backends::consul::http::KvPair]) {
    use crate::backends::consul::http::{next_index, KvRead};
    use crate::backends::consul::topics::Snapshot;
    use crate::backends::consul::{events, inspect, mutex, semaphore};
    const CONFLICT: &[ErrorKind] = &[ErrorKind::Conflict];
    let snapshot = Snapshot {
        index: pairs.iter().map(|p| p.modify_index).max().unwrap_or(0),
        pairs: pairs.to_vec(),
    };
    let read = KvRead {
        pairs: pairs.to_vec(),
        index: snapshot.index,
    };
    for pair in pairs {
        let _ = (pair.bytes(), next_index(snapshot.index, pair.modify_index));
        let holder = pair.holder().unwrap_or("");
        typed(mutex::classify(&pair.key, &pair.key, Some(pair)), CONFLICT);
        assert!(mutex::free_slots(&pair.key, &snapshot) <= 1);
        let _ = mutex::lost(&pair.key, holder, &snapshot);
        let _ = semaphore::listed_holders(pair);
        if let Some(prefix) = pair.key.strip_suffix("/.lock") {
            typed(semaphore::holders(prefix, prefix, &read), CONFLICT);
            let keys = semaphore::Keys::new(prefix, holder);
            for limit in [1, 3] {
                let _ = semaphore::free_slots(&keys, limit, pairs);
            }
        }
    }
    let root = pairs
        .first()
        .and_then(|p| p.key.split_once('/'))
        .map_or(String::new(), |(root, _)| format!("{root}/"));
    for root in ["", root.as_str()] {
        let _ = inspect::held_names(root, "", pairs);
        let mut before = None;
        let half = &pairs[..pairs.len() / 2];
        for state in [pairs, half, pairs, &[]] {
            let _ = events::step(root, &mut before, state, 0);
        }
    }
}

/// MongoDB documents: `data` as a sequence of BSON documents (up to 64,
/// up to the first that does not decode), each read as a generation, an
/// end record, a session, an event, a `buildInfo` reply and a cursor
/// reply (whose batch is read the same way); the generations surveyed and
/// planned for a few limits and server times.
#[cfg(feature = "mongodb")]
pub fn mongo_documents(data: &[u8]) {
    use crate::backends::mongo::events;
    use mongodb::bson::Document;
    let mut reader = data;
    let mut docs = Vec::new();
    while !reader.is_empty() && docs.len() < 64 {
        match Document::from_reader(&mut reader) {
            Ok(doc) => docs.push(doc),
            Err(_) => break,
        }
    }
    mongo_read(&docs);
    for doc in &docs {
        for field in ["firstBatch", "nextBatch"] {
            if let Some((_, batch)) = typed(events::batch(doc, field), &[ErrorKind::Backend]) {
                mongo_read(&batch);
            }
        }
    }
}

/// What polylock reads from a set of documents.
#[cfg(feature = "mongodb")]
fn mongo_read(docs: &[mongodb::bson::Document]) {
    use crate::backends::mongo::events::{self, EventEffect, Position};
    use crate::backends::mongo::ledger::IdReads;
    use crate::backends::mongo::plan::{doc_id, head_id, Generation, Plan, Survey, MAX_LIMIT};
    use crate::backends::mongo::sessions;
    let generations: Vec<Generation> = docs.iter().filter_map(Generation::from_doc).collect();
    let mut times = vec![0, i64::MIN, i64::MAX];
    let mut limits = vec![1, 2];
    for g in generations.iter().take(4) {
        let marker = g.marker();
        assert!(marker.released && marker.gen >= g.gen, "{g:?} → {marker:?}");
        let _ = (doc_id(&g.id, g.slot, g.gen), head_id(&g.id, g.slot));
        times.push(g.expires_at);
        limits.push(g.limit.clamp(1, MAX_LIMIT));
    }
    let survey = Survey::from_generations(generations);
    for &limit in &limits {
        for &now in &times {
            let _ = survey.other_limit(limit, now);
            match survey.plan(limit, now, |n| n / 2) {
                Plan::Take {
                    slot,
                    gen,
                    replaces,
                } => {
                    assert!((0..limit as i32).contains(&slot), "slot {slot} of {limit}");
                    assert!(replaces.is_none_or(|r| {
                        r.slot == slot && !r.released && r.gen.saturating_add(1) == gen
                    }));
                }
                Plan::Busy { .. } | Plan::Mismatch { .. } => {}
            }
        }
    }
    let mut position = Position::new(0);
    for doc in docs {
        let at = doc.get_i64("at").unwrap_or(0);
        let _ = sessions::end_record(doc);
        if let Ok(unit) = doc.get_str("unit") {
            assert!(sessions::end_keep_until(unit, at) >= at);
        }
        let _ = IdReads::for_server(doc);
        let _ = position.advance(doc);
        if let Some(read) = events::read_event(doc) {
            if let Some((_, EventEffect::Taken { expires_at, .. })) = read.effect {
                for &now in &times {
                    assert!(events::ms_until_expiry(expires_at.unwrap_or(at), now) >= 1);
                }
            }
        }
    }
}

/// LDLM replies: `data` decoded (protobuf) as a `LockResponse`, an
/// `UnlockResponse` and an `Error`, each read as the backend reads it;
/// then as a gRPC status (code from the first 4 bytes, message the rest),
/// and as the `grpc-status` / `grpc-message` headers tonic reads a status
/// from, each mapped to polylock's error kinds.
#[cfg(feature = "ldlm")]
pub fn ldlm_messages(data: &[u8]) {
    use crate::backends::ldlm::{errors, lease_reply, lock_reply, proto as pb};
    use prost::Message;
    const NAME: &str = "fuzz/lock";
    if let Ok(reply) = pb::LockResponse::decode(data) {
        for limit in [1, 3] {
            let granted = lock_reply(NAME, limit, reply.clone());
            if reply.locked {
                assert_eq!(granted.ok().flatten(), Some(reply.key.clone()));
            }
        }
        let _ = lease_reply(NAME, reply.locked, reply.error.as_ref());
    }
    if let Ok(reply) = pb::UnlockResponse::decode(data) {
        let _ = lease_reply(NAME, reply.unlocked, reply.error.as_ref());
    }
    if let Ok(error) = pb::Error::decode(data) {
        let _ = errors::refusal(NAME, 1, &error);
    }
    let (code, message) = data.split_at(data.len().min(4));
    let mut code_bytes = [0; 4];
    code_bytes[..code.len()].copy_from_slice(code);
    let status = tonic::Status::new(
        tonic::Code::from(i32::from_le_bytes(code_bytes)),
        String::from_utf8_lossy(message),
    );
    let _ = (errors::status_error(&status), errors::is_deadline(&status));
    let (status_text, message) = data.split_at(data.iter().position(|&b| b == b'\n').unwrap_or(0));
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(status_text) {
        headers.insert("grpc-status", value);
    }
    if let Ok(value) = http::HeaderValue::from_bytes(message.get(1..).unwrap_or_default()) {
        headers.insert("grpc-message", value);
    }
    if let Some(status) = tonic::Status::from_header_map(&headers) {
        let _ = (errors::status_error(&status), errors::is_deadline(&status));
    }
}

/// PostgreSQL: `data` (as UTF-8, lossily) as a `NOTIFY` payload on
/// polylock's channel (`KIND TOKEN HOLDER NAME` or `n TTL_MS SESSION`),
/// and as the rest of a `postgres://` URL read into settings.
#[cfg(feature = "postgres")]
pub fn postgres_notifications(data: &[u8]) {
    use crate::backends::postgres::listen::{parse_payload, Payload};
    let text = String::from_utf8_lossy(data);
    match parse_payload(&text) {
        Some(Payload::Lock {
            name,
            holder,
            frees,
            lost,
            event,
            ..
        }) => {
            assert!(!holder.contains(' ') && text.ends_with(name));
            assert!(lost.is_none() || (frees && event.is_some()));
        }
        Some(Payload::Renewed { session, .. }) => {
            assert!(!session.contains(' ') || text.ends_with(session))
        }
        None => {}
    }
    if let Ok(url) = url::Url::parse(&format!("postgres://{text}")) {
        let envs: Envs<'_> = [&|_| None, &|_| Some(text.to_string())];
        postgres_config(&url, None, envs);
    }
}
