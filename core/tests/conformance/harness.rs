//! What the conformance cases need from a backend under test: clients, unique
//! lock names, and a way to take a lease away behind its holder's back.

// A build without a backend's feature leaves its harness unused.
#![cfg_attr(
    not(all(
        feature = "consul",
        feature = "mongodb",
        feature = "ldlm",
        feature = "postgres"
    )),
    allow(dead_code)
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polylock::backends::memory::MemoryStore;
use polylock::{Client, ClientOptions, Event, Lease};
use tokio::sync::mpsc;

use crate::counting_proxy::CountingProxy;
use crate::env::server_env;

/// Every case runs under this limit, so no test can hang CI.
pub const CASE_LIMIT: Duration = Duration::from_secs(120);
/// Upper bound for waiting on an event that must happen.
pub const EVENT_LIMIT: Duration = Duration::from_secs(60);

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

enum Kind {
    Memory { namespace: String },
    Consul { http: String },
    Mongo,
    Ldlm,
    Postgres,
}

/// A backend under test.
pub struct Harness {
    kind: Kind,
    url: String,
}

impl Harness {
    pub fn memory() -> Option<Harness> {
        let namespace = format!("conformance-{}", unique());
        Some(Harness {
            url: format!("memory://{namespace}"),
            kind: Kind::Memory { namespace },
        })
    }

    pub fn consul() -> Option<Harness> {
        let url = server_env("POLYLOCK_TEST_CONSUL_URL", true)?;
        let http = url.replacen("consul://", "http://", 1);
        Some(Harness {
            url,
            kind: Kind::Consul { http },
        })
    }

    /// FerretDB, which CI always runs (on its PostgreSQL storage handler).
    pub fn ferretdb() -> Option<Harness> {
        Self::mongo(server_env("POLYLOCK_TEST_FERRETDB_URL", true)?)
    }

    /// FerretDB on its SQLite storage handler, which CI also runs.
    pub fn ferretdb_sqlite() -> Option<Harness> {
        Self::mongo(server_env("POLYLOCK_TEST_FERRETDB_SQLITE_URL", true)?)
    }

    /// A real MongoDB, when one is given.
    pub fn mongodb() -> Option<Harness> {
        Self::mongo(server_env("POLYLOCK_TEST_MONGODB_URL", false)?)
    }

    /// An LDLM server (`tests/with-servers.sh` starts one when the server
    /// binary is in place; see README "LDLM").
    pub fn ldlm() -> Option<Harness> {
        Some(Harness {
            url: crate::env::ldlm_env("POLYLOCK_TEST_LDLM_URL")?,
            kind: Kind::Ldlm,
        })
    }

    /// A PostgreSQL server (`tests/with-servers.sh` starts one; CI always).
    pub fn postgres() -> Option<Harness> {
        Some(Harness {
            url: server_env("POLYLOCK_TEST_POSTGRES_URL", true)?,
            kind: Kind::Postgres,
        })
    }

    fn mongo(url: String) -> Option<Harness> {
        Some(Harness {
            kind: Kind::Mongo,
            url,
        })
    }

    /// A lock name no other case or run uses.
    pub fn name(&self, base: &str) -> String {
        format!("conformance/{base}-{}", unique())
    }

    pub async fn client(&self) -> Client {
        self.client_with(|_| {}).await
    }

    pub async fn client_with(&self, configure: impl FnOnce(&mut ClientOptions)) -> Client {
        let mut options = ClientOptions::new(&self.url);
        configure(&mut options);
        Client::from_options(options)
            .await
            .expect("connecting to the backend under test")
    }

    /// A client whose observer forwards every event to the returned receiver.
    pub async fn observed_client(&self) -> (Client, mpsc::UnboundedReceiver<Event>) {
        observed(&self.url, "connecting to the backend under test").await
    }

    /// An observed client whose every request goes through a counting
    /// proxy; `None` for `memory://` (no network).
    pub async fn counted_client(
        &self,
    ) -> Option<(Client, CountingProxy, mpsc::UnboundedReceiver<Event>)> {
        let (url, proxy) = CountingProxy::in_front_of(&self.url).await?;
        let (client, events) = observed(
            &url,
            "connecting to the backend under test through the proxy",
        )
        .await;
        Some((client, proxy, events))
    }

    /// What a waiter parked on a busy lock may send while nothing frees a
    /// slot, counted from the moment it reports that it waits.
    pub fn park_budget(&self) -> ParkBudget {
        match self.kind {
            // The shared blocking query's first read and its first wait,
            // then one read per change of the key; no write. (Its session
            // renewals, like any holder's, are counted apart: no Raft write.)
            Kind::Consul { .. } => ParkBudget {
                writes: 0,
                reads: Some(2),
                reads_per_change: 1,
            },
            // The one `Lock` call may go out just after the event.
            Kind::Ldlm => ParkBudget {
                writes: 1,
                reads: Some(0),
                reads_per_change: 0,
            },
            // Reads: the event stream's tailing cursor waits on the server
            // for a bounded time per call, and the driver checks the server
            // every 10 s, so reads grow with time; not counted here.
            // A parked waiter hears releases and renewals through the
            // notifications of its LISTEN connection: nothing to send.
            Kind::Postgres => ParkBudget {
                writes: 0,
                reads: Some(0),
                reads_per_change: 0,
            },
            Kind::Mongo | Kind::Memory { .. } => ParkBudget {
                writes: 0,
                reads: None,
                reads_per_change: 0,
            },
        }
    }

    /// Takes `lease` away behind its holder's back, as an operator or a
    /// failure would.
    pub async fn revoke(&self, lease: &Lease) {
        match &self.kind {
            Kind::Memory { namespace } => {
                assert!(MemoryStore::named(namespace).revoke(lease.name(), lease.holder()));
            }
            // MongoDB: a forced release (its release marker) from another
            // client. LDLM: an unlock by key from another connection, as an
            // operator (or go-ldlm's Unlock(name, key)) would.
            Kind::Mongo | Kind::Ldlm | Kind::Postgres => {
                let operator = self.client().await;
                operator
                    .release_holder(lease.name(), lease.holder())
                    .await
                    .expect("the server unlocks the lease by its key");
            }
            Kind::Consul { http } => {
                let response = reqwest::Client::new()
                    .put(format!("{http}/v1/session/destroy/{}", lease.holder()))
                    .send()
                    .await
                    .expect("consul answers");
                assert!(response.status().is_success(), "{}", response.status());
            }
        }
    }
}

/// A client of `url` whose observer forwards every event to the returned
/// receiver.
async fn observed(url: &str, what: &str) -> (Client, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut options = ClientOptions::new(url);
    options
        .observers
        .push(std::sync::Arc::new(move |event: &Event| {
            let _ = tx.send(event.clone());
        }));
    (Client::from_options(options).await.expect(what), rx)
}

/// What a parked waiter may send (see [`Harness::park_budget`]).
#[derive(Debug, Clone, Copy)]
pub struct ParkBudget {
    pub writes: u64,
    /// Reads with no change; `None`: not bounded for this backend.
    pub reads: Option<u64>,
    pub reads_per_change: u64,
}

/// Waits (bounded) for the first event `pick` accepts.
pub async fn next_event<T>(
    events: &mut mpsc::UnboundedReceiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(EVENT_LIMIT, async {
        loop {
            let event = events.recv().await.expect("the observer stays registered");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the expected event did not arrive in time")
}
