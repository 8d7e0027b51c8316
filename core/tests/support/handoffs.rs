//! Requests per handoff of one mutex among waiters of one client, counted
//! at a proxy (tests assert they stay flat as waiters grow; the bench
//! reports them). Include with `#[path]` beside `counting_proxy` and
//! `own_collection`.

use std::sync::Arc;
use std::time::Duration;

use polylock::{Client, ClientOptions, Event, LockOptions};
use tokio::sync::mpsc;

use super::counting_proxy::{CountingProxy, Counts};
use super::own_collection::own_collection;

const WAIT: Duration = Duration::from_secs(120);

/// Requests per handoff with `waiters` waiters of one client on one mutex:
/// each waiter takes the lock, hands the lease to this task (which
/// releases it) and queues again. Its locks live in a collection of their
/// own (kept: it stays small): the events of other tests running beside it
/// would otherwise reach its events cursor and be counted.
pub async fn requests_per_handoff(url: &str, waiters: usize) -> f64 {
    const HANDOFFS: usize = 12;
    const WARM_UP: usize = 4;
    const COLLECTION: &str = "polylock_handoffs";
    let own = own_collection(url, COLLECTION);
    let (proxied, proxy) = CountingProxy::in_front_of(&own)
        .await
        .expect("a URL the proxy can stand in front of");
    let (tx, mut started) = mpsc::unbounded_channel();
    let options = ClientOptions::new(&proxied).observer(Arc::new(move |event: &Event| {
        if matches!(event, Event::WaitStarted { .. }) {
            let _ = tx.send(());
        }
    }));
    let client = Client::from_options(options)
        .await
        .expect("the server answers");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("handoffs/{waiters}-{}-{nanos}", std::process::id());
    let first = client
        .lock(&name, LockOptions::mutex())
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("a free lock");
    let (tx, mut handed) = mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..waiters)
        .map(|_| {
            let (lock, tx) = (
                client.lock(&name, LockOptions::mutex()).unwrap(),
                tx.clone(),
            );
            tokio::spawn(async move {
                while let Ok(lease) = lock.acquire(WAIT).await {
                    if tx.send(lease).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    for _ in 0..waiters {
        tokio::time::timeout(WAIT, started.recv())
            .await
            .expect("every waiter waits")
            .expect("the client lives");
    }
    let mut held = first;
    let mut start = Counts::default();
    for handoff in 0..WARM_UP + HANDOFFS {
        if handoff == WARM_UP {
            start = proxy.counts();
        }
        held.release().await.unwrap();
        held = tokio::time::timeout(WAIT, handed.recv())
            .await
            .expect("a waiter takes the lock")
            .expect("the waiters live");
    }
    let spent = proxy.counts().since(start);
    for task in &tasks {
        task.abort();
    }
    held.release().await.unwrap();
    let per_handoff = spent.total() as f64 / HANDOFFS as f64;
    eprintln!("{waiters} waiters: {spent:?} over {HANDOFFS} handoffs = {per_handoff:.1} each");
    per_handoff
}
