//! A client whose requests a counting proxy counts and whose observer
//! events come out of a channel, and a bounded wait for those events.
//! Include with `#[path]` beside `counting_proxy`.

use std::sync::Arc;
use std::time::Duration;

use polylock::{Client, ClientOptions, Event};
use tokio::sync::mpsc;

use super::counting_proxy::CountingProxy;

const WAIT: Duration = Duration::from_secs(120);

/// A client of `url` through a counting proxy, with its events.
pub async fn counted(url: &str) -> (Client, CountingProxy, mpsc::UnboundedReceiver<Event>) {
    let (proxied, proxy) = CountingProxy::in_front_of(url)
        .await
        .expect("a URL the proxy can stand in front of");
    let (tx, rx) = mpsc::unbounded_channel();
    let options = ClientOptions::new(&proxied).observer(Arc::new(move |event: &Event| {
        let _ = tx.send(event.clone());
    }));
    let client = Client::from_options(options)
        .await
        .expect("the server answers");
    (client, proxy, rx)
}

/// Waits (bounded) until `count` events `pick` accepts have arrived.
pub async fn events(
    events: &mut mpsc::UnboundedReceiver<Event>,
    count: usize,
    pick: impl Fn(&Event) -> bool,
) {
    tokio::time::timeout(WAIT, async {
        let mut seen = 0;
        while seen < count {
            if pick(&events.recv().await.expect("the observer stays")) {
                seen += 1;
            }
        }
    })
    .await
    .expect("the expected events arrived");
}
