//! The one `LISTEN` connection of a client: it turns the channel's
//! notifications into lock events, wake-ups for this client's waiters and
//! loss signals for its leases. When the connection is lost, waiters fall
//! back to a bounded backoff (said in the `polylock.postgres.listen` span)
//! until it is back; then every waiter looks again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;

use super::connection::Connector;
use super::schema::Names;
use crate::model::{LockEvent, LockEventKind};

/// What a waiter hears.
#[derive(Debug, Clone)]
pub enum Note {
    /// A slot of `name` may be free.
    Freed {
        /// The lock's name.
        name: String,
    },
    /// `session` was renewed for `ttl`.
    Renewed {
        /// The session's id.
        session: String,
        /// Its TTL from now.
        ttl: Duration,
    },
    /// Notifications may have been missed (the connection was lost): look again.
    Resync,
}

/// One loss watcher of a holder: its id and where the reason goes.
type Watcher = (u64, oneshot::Sender<String>);

/// The shared end of the listener.
pub struct Listener {
    notes: broadcast::Sender<Note>,
    events: broadcast::Sender<LockEvent>,
    watchers: Mutex<HashMap<String, Vec<Watcher>>>,
    next_watcher: AtomicU64,
    listening: AtomicBool,
}

impl Listener {
    /// Starts listening on `names.channel` through its own connection;
    /// returns once the first `LISTEN` is in place, or its error.
    pub async fn start(
        connector: Connector,
        names: Names,
    ) -> crate::error::Result<(Arc<Listener>, tokio::task::JoinHandle<()>)> {
        let listener = Arc::new(Listener {
            notes: broadcast::channel(4096).0,
            events: broadcast::channel(1024).0,
            watchers: Mutex::new(HashMap::new()),
            next_watcher: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        });
        let (client, notes) = listen(&connector, &names).await?;
        listener.listening.store(true, Ordering::SeqCst);
        let shared = listener.clone();
        let span = tracing::info_span!("polylock.postgres.listen", channel = %names.channel);
        let task = crate::runtime::spawn(
            async move { shared.run(connector, names, client, notes).await }.instrument(span),
        );
        Ok((listener, task))
    }

    /// Whether the `LISTEN` connection is up (else waiters poll).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// Notes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Note> {
        self.notes.subscribe()
    }

    /// Lock events from now on.
    pub fn events(&self) -> broadcast::Receiver<LockEvent> {
        self.events.subscribe()
    }

    /// Resolves with a reason when `holder`'s lease is released by an
    /// operator or reclaimed after its expiry.
    pub async fn lost(&self, holder: &str) -> String {
        let (tx, rx) = oneshot::channel();
        let id = self.next_watcher.fetch_add(1, Ordering::Relaxed);
        self.watchers
            .lock()
            .unwrap()
            .entry(holder.to_string())
            .or_default()
            .push((id, tx));
        let _guard = WatchGuard {
            listener: self,
            holder,
            id,
        };
        match rx.await {
            Ok(reason) => reason,
            // The listener is gone (the client closed): renewals still tell.
            Err(_) => std::future::pending().await,
        }
    }

    async fn run(
        self: Arc<Self>,
        connector: Connector,
        names: Names,
        mut client: tokio_postgres::Client,
        mut notes: mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    ) {
        loop {
            while let Some(note) = notes.recv().await {
                self.dispatch(note.payload());
            }
            drop(client);
            self.listening.store(false, Ordering::SeqCst);
            tracing::warn!(
                "LISTEN connection lost; waiters poll with a bounded backoff until it is back"
            );
            let mut pause = Duration::from_millis(100);
            loop {
                tokio::time::sleep(pause).await;
                match listen(&connector, &names).await {
                    Ok((c, n)) => {
                        (client, notes) = (c, n);
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "reconnecting the LISTEN connection failed");
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
            self.listening.store(true, Ordering::SeqCst);
            tracing::info!("LISTEN connection back; waiters look again");
            let _ = self.notes.send(Note::Resync);
        }
    }

    /// One notification's payload (see [`super::schema`]).
    fn dispatch(&self, payload: &str) {
        match parse_payload(payload) {
            None => {}
            Some(Payload::Renewed { session, ttl }) => {
                let _ = self.notes.send(Note::Renewed {
                    session: session.to_string(),
                    ttl,
                });
            }
            Some(Payload::Lock {
                name,
                holder,
                token,
                frees,
                lost,
                event,
            }) => {
                if let Some(reason) = lost {
                    self.resolve(holder, reason);
                }
                if let Some(kind) = event {
                    let _ = self.events.send(LockEvent {
                        name: name.to_string(),
                        kind,
                        holder: holder.to_string(),
                        fencing_token: Some(token),
                    });
                }
                if frees {
                    let _ = self.notes.send(Note::Freed {
                        name: name.to_string(),
                    });
                }
            }
        }
    }

    fn resolve(&self, holder: &str, reason: &str) {
        let waiting = self.watchers.lock().unwrap().remove(holder);
        for (_, tx) in waiting.into_iter().flatten() {
            let _ = tx.send(reason.to_string());
        }
    }
}

/// What one notification's payload says (see [`super::schema`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Payload<'a> {
    /// `n TTL_MS SESSION`: a session was renewed.
    Renewed {
        /// The session's id.
        session: &'a str,
        /// Its TTL from now.
        ttl: Duration,
    },
    /// `KIND TOKEN HOLDER NAME`: something happened to a lease.
    Lock {
        /// The lock's name (may hold spaces).
        name: &'a str,
        /// The lease's holder id.
        holder: &'a str,
        /// The lease's fencing token.
        token: u64,
        /// Whether a slot may be free.
        frees: bool,
        /// Why the holder lost the lease, if it did.
        lost: Option<&'static str>,
        /// The lock event, if any.
        event: Option<LockEventKind>,
    },
}

/// Reads a notification's payload; `None` for one that is not ours.
pub(crate) fn parse_payload(payload: &str) -> Option<Payload<'_>> {
    let mut parts = payload.splitn(4, ' ');
    let (Some(kind), Some(second), Some(third)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if kind == "n" {
        let ms = second.parse::<u64>().ok()?;
        return Some(Payload::Renewed {
            session: third,
            ttl: Duration::from_millis(ms),
        });
    }
    let (Some(name), Ok(token)) = (parts.next(), second.parse::<u64>()) else {
        return None;
    };
    // What each kind tells: whether a slot may be free, the reason its
    // holder lost the lease (if it did), and the lock event (if any).
    let (frees, lost, event) = match kind {
        "a" => (false, None, Some(LockEventKind::Acquired)),
        "r" => (true, None, Some(LockEventKind::Released)),
        "f" => (
            true,
            Some("released by another client (an operator)"),
            Some(LockEventKind::Released),
        ),
        "e" => (
            true,
            Some("its session expired and another holder took the slot"),
            Some(LockEventKind::Expired),
        ),
        "w" => (true, None, None),
        _ => return None,
    };
    Some(Payload::Lock {
        name,
        holder: third,
        token,
        frees,
        lost,
        event,
    })
}

/// Removes a loss watcher that went away (its lease released or dropped).
struct WatchGuard<'a> {
    listener: &'a Listener,
    holder: &'a str,
    id: u64,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        let mut watchers = self.listener.watchers.lock().unwrap();
        if let Some(list) = watchers.get_mut(self.holder) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                watchers.remove(self.holder);
            }
        }
    }
}

/// A connection that has run `LISTEN`, and its notifications.
async fn listen(
    connector: &Connector,
    names: &Names,
) -> crate::error::Result<(
    tokio_postgres::Client,
    mpsc::UnboundedReceiver<tokio_postgres::Notification>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = connector.notifying_connection(tx).await?;
    client
        .batch_execute(&names.listen())
        .await
        .map_err(|e| connector.error(&e))?;
    Ok((client, rx))
}
