//! The least a backend's lock can cost, measured with plain requests on
//! the same client stacks polylock uses: Consul, two KV PUTs on a session
//! made in advance; MongoDB, one insert and one update; LDLM, the same two
//! RPCs polylock sends (`Lock` or `TryLock`, then `Unlock`) with the
//! generated client on a tonic `Channel` connected once.

use std::time::{Duration, Instant};

use mongodb::bson::{doc, Document};
use polylock::backends::consul::LOCK_FLAG;
use polylock::backends::ldlm::proto;
use proto::ldlm_client::LdlmClient;

/// A raw acquire+release a bench can time.
pub enum Floor {
    Consul(ConsulFloor),
    Mongo(MongoFloor),
    Ldlm(LdlmFloor),
}

impl Floor {
    /// The floor for a consul://, mongodb:// or ldlm:// URL; `None` for
    /// others (ldlms:// included: the floor speaks cleartext only, and an
    /// ldlm:// URL with a password in it: the floor takes `LDLM_PASSWORD`).
    pub async fn for_url(url: &str, key: &str) -> Option<Floor> {
        if let Some(rest) = url.strip_prefix("consul://") {
            let http = format!("http://{}", rest.split(['/', '?']).next().unwrap());
            Some(Floor::Consul(ConsulFloor::new(&http, key).await))
        } else if url.starts_with("mongodb://") {
            Some(Floor::Mongo(MongoFloor::new(url, key).await))
        } else if url.starts_with("ldlm://") && !url.contains('@') {
            Some(Floor::Ldlm(LdlmFloor::new(url, key).await))
        } else {
            None
        }
    }

    /// One raw acquire + release: the floor of polylock's `acquire`. Returns
    /// how long the release request alone took where the floor times it
    /// (LDLM's `Unlock`: one RPC round trip).
    pub async fn acquire_release(&mut self) -> Option<Duration> {
        match self {
            Floor::Consul(floor) => floor.acquire_release().await,
            Floor::Mongo(floor) => floor.acquire_release().await,
            Floor::Ldlm(floor) => return Some(floor.lock_unlock().await),
        }
        None
    }

    /// One raw try + release: the floor of polylock's `try_acquire` (on
    /// Consul and MongoDB the same requests as [`Floor::acquire_release`]).
    pub async fn try_acquire_release(&mut self) -> Option<Duration> {
        match self {
            Floor::Ldlm(floor) => Some(floor.try_lock_unlock().await),
            other => Box::pin(other.acquire_release()).await,
        }
    }

    /// Cleans up (destroys the session).
    pub async fn close(self) {
        if let Floor::Consul(floor) = self {
            floor.close().await;
        }
    }
}

/// Two PUTs (`?acquire=S`, `?release=S`) with a session made in advance.
pub struct ConsulFloor {
    client: reqwest::Client,
    http: String,
    key: String,
    session: String,
}

impl ConsulFloor {
    async fn new(http: &str, key: &str) -> Self {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .use_rustls_tls()
            .build()
            .unwrap();
        let reply: serde_json::Value = client
            .put(format!("{http}/v1/session/create"))
            .json(&serde_json::json!({"TTL": "60s", "LockDelay": "0s", "Behavior": "delete", "NodeChecks": []}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ConsulFloor {
            client,
            http: http.to_string(),
            key: key.to_string(),
            session: reply["ID"].as_str().unwrap().to_string(),
        }
    }

    async fn put(&self, verb: &str) -> bool {
        let flags = LOCK_FLAG.to_string();
        let text = self
            .client
            .put(format!("{}/v1/kv/{}", self.http, self.key))
            .query(&[(verb, self.session.as_str()), ("flags", flags.as_str())])
            .body("raw")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.trim() == "true"
    }

    async fn acquire_release(&self) {
        assert!(self.put("acquire").await);
        assert!(self.put("release").await);
    }

    async fn close(&self) {
        let _ = self
            .client
            .put(format!("{}/v1/session/destroy/{}", self.http, self.session))
            .send()
            .await;
    }
}

/// One insert and one update of a fresh document.
pub struct MongoFloor {
    collection: mongodb::Collection<Document>,
    key: String,
    round: u64,
}

impl MongoFloor {
    async fn new(url: &str, key: &str) -> Self {
        let client = mongodb::Client::with_uri_str(url).await.unwrap();
        MongoFloor {
            collection: client.database("polylock").collection("bench_raw"),
            key: key.to_string(),
            round: 0,
        }
    }

    async fn acquire_release(&mut self) {
        self.round += 1;
        let id = format!("{}-{}", self.key, self.round);
        self.collection
            .insert_one(doc! { "_id": &id, "released": false })
            .await
            .unwrap();
        self.collection
            .update_one(doc! { "_id": &id }, doc! { "$set": { "released": true } })
            .await
            .unwrap();
    }
}

/// `Lock` (or `TryLock`) and `Unlock` as polylock sends them: the name,
/// `lock_timeout_seconds` = the TTL (polylock's default, 15 s), `size` 1,
/// for `Lock` `wait_timeout_seconds` with the same gRPC deadline, for the
/// others the deadline of polylock's default call time limit (10 s).
#[derive(Clone)]
pub struct LdlmFloor {
    client: LdlmClient<tonic::transport::Channel>,
    name: String,
    password: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

/// The TTL polylock sends by default (`polylock::DEFAULT_TTL`), in seconds.
const LDLM_TTL_SECONDS: i32 = 15;
/// What polylock's `acquire(WAIT)` sends as `wait_timeout_seconds` and the
/// call's deadline, for the bench's `acquire(10 s)`.
pub const LDLM_WAIT: Duration = Duration::from_secs(10);
/// polylock's default LDLM call time limit (`call_timeout`): the deadline
/// of every call the server answers at once.
const LDLM_CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl LdlmFloor {
    async fn new(url: &str, name: &str) -> Self {
        let parsed = url::Url::parse(url).unwrap();
        let address = format!(
            "http://{}:{}",
            parsed.host_str().unwrap(),
            parsed
                .port()
                .unwrap_or(polylock::backends::ldlm::DEFAULT_PORT)
        );
        let channel = tonic::transport::Endpoint::from_shared(address)
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        // The password as polylock reads it when the URL has none.
        let password = std::env::var("LDLM_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap());
        LdlmFloor {
            client: LdlmClient::new(channel),
            name: name.to_string(),
            password,
        }
    }

    /// A request with the password, if any, and polylock's call deadline
    /// (`Lock` sets its own).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(LDLM_CALL_TIMEOUT);
        if let Some(password) = &self.password {
            request
                .metadata_mut()
                .insert("authorization", password.clone());
        }
        request
    }

    /// The floor for an ldlm:// URL on a connection of its own (`None` for
    /// other URLs): the handoff takes two, a holder and a waiter.
    pub async fn for_url(url: &str, name: &str) -> Option<LdlmFloor> {
        match Floor::for_url(url, name).await {
            Some(Floor::Ldlm(floor)) => Some(floor),
            _ => None,
        }
    }

    /// `Lock` then `Unlock`; returns how long the `Unlock` alone took (one
    /// RPC round trip).
    pub async fn lock_unlock(&mut self) -> Duration {
        let key = self.lock(LDLM_WAIT).await;
        self.unlock(key).await
    }

    /// `TryLock` then `Unlock`; returns how long the `Unlock` alone took.
    pub async fn try_lock_unlock(&mut self) -> Duration {
        let key = self.try_lock().await;
        self.unlock(key).await
    }

    /// One `Lock` that may wait `wait` on the server; the grant's key.
    pub async fn lock(&mut self, wait: Duration) -> String {
        let mut request = self.request(proto::LockRequest {
            name: self.name.clone(),
            wait_timeout_seconds: Some(wait.as_secs().max(1) as i32),
            lock_timeout_seconds: Some(LDLM_TTL_SECONDS),
            size: Some(1),
        });
        request.set_timeout(wait);
        let reply = self.client.lock(request).await.unwrap().into_inner();
        assert!(reply.locked, "the floor's Lock: {reply:?}");
        reply.key
    }

    /// One `TryLock` of a free lock; the grant's key.
    pub async fn try_lock(&mut self) -> String {
        let request = self.request(proto::TryLockRequest {
            name: self.name.clone(),
            lock_timeout_seconds: Some(LDLM_TTL_SECONDS),
            size: Some(1),
        });
        let reply = self.client.try_lock(request).await.unwrap().into_inner();
        assert!(reply.locked, "the floor's lock is uncontended: {reply:?}");
        reply.key
    }

    /// One `Unlock`; how long it took.
    pub async fn unlock(&mut self, key: String) -> Duration {
        let request = self.request(proto::UnlockRequest {
            name: self.name.clone(),
            key,
        });
        let started = Instant::now();
        let reply = self.client.unlock(request).await.unwrap().into_inner();
        let took = started.elapsed();
        assert!(reply.unlocked, "the floor's unlock: {reply:?}");
        took
    }
}
