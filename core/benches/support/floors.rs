//! The least a backend's lock can cost, measured with plain requests on
//! the same client stacks polylock uses: Consul, two KV PUTs on a session
//! made in advance; MongoDB, one insert and one update.

use mongodb::bson::{doc, Document};
use polylock::backends::consul::LOCK_FLAG;

/// A raw acquire+release a bench can time.
pub enum Floor {
    Consul(ConsulFloor),
    Mongo(MongoFloor),
}

impl Floor {
    /// The floor for a consul:// or mongodb:// URL; `None` for others.
    pub async fn for_url(url: &str, key: &str) -> Option<Floor> {
        if let Some(rest) = url.strip_prefix("consul://") {
            let http = format!("http://{}", rest.split(['/', '?']).next().unwrap());
            Some(Floor::Consul(ConsulFloor::new(&http, key).await))
        } else if url.starts_with("mongodb://") {
            Some(Floor::Mongo(MongoFloor::new(url, key).await))
        } else {
            None
        }
    }

    /// One raw acquire + release.
    pub async fn acquire_release(&mut self) {
        match self {
            Floor::Consul(floor) => floor.acquire_release().await,
            Floor::Mongo(floor) => floor.acquire_release().await,
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
