//! polylock quickstart: a mutex with fencing tokens, a waiting contender, a
//! counting semaphore and a lost-lease callback.
//!
//! ```text
//! cargo run -p polylock --example quickstart                              # embedded memory://
//! cargo run -p polylock --example quickstart -- consul://127.0.0.1:8500   # a Consul agent
//! ```

use std::time::Duration;

use polylock::{Client, LockOptions};

#[tokio::main]
async fn main() -> polylock::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".into());
    let (alice, bob) = (Client::connect(&url).await?, Client::connect(&url).await?);
    println!("backend: {}", polylock::url::redact(&url));

    // A mutex: one holder at a time, each grant with a larger fencing token.
    let options = LockOptions::mutex().ttl(Duration::from_secs(10));
    let report = alice.lock("quickstart/report", options.clone())?;
    let lease = report.acquire(Duration::from_secs(5)).await?;
    lease.on_lost(|event| eprintln!("lost {}: {}", event.name, event.reason));
    println!(
        "alice holds {:?}: fencing token {:?}, proven for {:?}",
        lease.name(),
        lease.fencing_token(),
        lease.time_to_expiration()
    );

    // Bob waits (no polling: the backend wakes him) until Alice releases.
    let bobs_lock = bob.lock("quickstart/report", options)?;
    assert!(bobs_lock.try_acquire().await?.is_none());
    let waiting = tokio::spawn(async move { bobs_lock.acquire(Duration::from_secs(30)).await });
    lease.release().await?;
    let bobs = waiting.await.expect("bob's task runs")?;
    println!(
        "bob holds it next: fencing token {:?}",
        bobs.fencing_token()
    );
    bobs.release().await?;

    // A counting semaphore: at most three holders.
    let pool = alice.lock("quickstart/pool", LockOptions::semaphore(3))?;
    let mut slots = Vec::new();
    while let Some(slot) = pool.try_acquire().await? {
        slots.push(slot);
    }
    println!("the semaphore admitted {} holders", slots.len());
    for slot in slots {
        slot.release().await?;
    }
    Ok(())
}
