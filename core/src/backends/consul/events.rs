//! The lock event stream on Consul: a blocking query on the watched names'
//! keys (one shared [`super::topics::Topic`]), each new state compared with
//! the one before. A holder that appears is `Acquired`; one that goes is
//! `Released` when its key stayed (a mutex `unlock`, or its slot taken out
//! of a semaphore's `.lock`), `Expired` when its key went with its session
//! (sessions use `Behavior: delete`; an operator's delete looks the same).
//!
//! The stream starts from the first state its query returns (its feed says
//! when: [`crate::LockEvents::ready`]); holders in it
//! whose acquisition index is above `since` (the highest index the client
//! had seen when the stream was made) are reported as `Acquired`, so a lock
//! taken just after the call still shows. A semaphore holder's token is
//! `.lock`'s index when the stream first saw it: exact when it saw the
//! admitting write. A semaphore holder whose dead entry was pruned before
//! the stream saw it shows as `Released`. A holder that came and went
//! between two answers of the query (within about one round trip) is not
//! seen at all: the stream shows changes of state, not every write.

use std::collections::BTreeMap;

use tokio::sync::{broadcast, oneshot};

use super::http::KvPair;
use super::mutex::LOCK_FLAG;
use super::semaphore::{listed_holders, SEMAPHORE_FLAG};
use super::topics::Topics;
use crate::model::{LockEvent, LockEventKind, LockFeed};

/// Events a slow consumer may fall behind by before it skips some.
const BACKLOG: usize = 1024;

/// One holder of one lock, as a state shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holding {
    token: u64,
    /// Mutex: the key's `CreateIndex`. Semaphore: 0.
    created: u64,
    /// A semaphore holder whose contender key is gone (dead, not yet pruned).
    dead: bool,
}

type Holdings = BTreeMap<(String, String), Holding>;

/// What one state shows: holders, and every mutex key's `CreateIndex`
/// (held or free), to tell an unlock from a delete.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    holdings: Holdings,
    mutex_keys: BTreeMap<String, u64>,
}

/// The events of the locks whose names start with `prefix`, as seen from
/// now on by a blocking query on `root + prefix`.
pub(crate) fn stream(topics: &Topics, root: &str, prefix: &str, since: u64) -> LockFeed {
    let (sender, receiver) = broadcast::channel(BACKLOG);
    let (live, started) = oneshot::channel();
    let mut live = Some(live);
    let topic = topics.get_for_stream(&format!("{root}{prefix}"), true);
    let root = root.to_string();
    crate::runtime::spawn(async move {
        let mut states = topic.subscribe();
        let mut before: Option<Seen> = None;
        loop {
            let state = states.borrow_and_update().clone();
            if let Some(state) = state {
                for event in step(&root, &mut before, &state.pairs, since) {
                    if sender.send(event).is_err() {
                        return; // nobody listens any more
                    }
                }
                if let Some(live) = live.take() {
                    let _ = live.send(());
                }
            }
            tokio::select! {
                changed = states.changed() => if changed.is_err() { return },
                _ = sender.closed() => return,
            }
        }
    });
    LockFeed::starting(receiver, started)
}

/// The events from the state before (`None`: this is the first) to the
/// state `pairs` (keys under `root`), which becomes the state before.
pub(crate) fn step(
    root: &str,
    before: &mut Option<Seen>,
    pairs: &[KvPair],
    since: u64,
) -> Vec<LockEvent> {
    let mut now = seen(root, pairs);
    let events = match before.as_ref() {
        Some(before) => diff(before, &now),
        None => baseline(&now.holdings, since),
    };
    if let Some(before) = before.as_ref() {
        carry_tokens(&before.holdings, &mut now.holdings);
    }
    *before = Some(now);
    events
}

/// Every holder in `pairs` (keys under `root`), by (name, holder).
fn seen(root: &str, pairs: &[KvPair]) -> Seen {
    let mut found = Seen::default();
    let name_of = |key: &str| key.strip_prefix(root).map(str::to_string);
    for pair in pairs {
        if pair.flags == LOCK_FLAG {
            let Some(name) = name_of(&pair.key) else {
                continue;
            };
            found.mutex_keys.insert(name.clone(), pair.create_index);
            if let Some(session) = pair.holder() {
                let holding = Holding {
                    token: pair.modify_index,
                    created: pair.create_index,
                    dead: false,
                };
                found.holdings.insert((name, session.to_string()), holding);
            }
        } else if let Some(listed) = listed_holders(pair) {
            let Some(name) = name_of(&pair.key[..pair.key.len() - "/.lock".len()]) else {
                continue;
            };
            for session in listed {
                let contender = format!("{root}{name}/{session}");
                let alive = pairs.iter().any(|p| {
                    p.key == contender && p.flags == SEMAPHORE_FLAG && p.holder() == Some(&session)
                });
                let holding = Holding {
                    token: pair.modify_index,
                    created: 0,
                    dead: !alive,
                };
                found.holdings.insert((name.clone(), session), holding);
            }
        }
    }
    found
}

/// A semaphore holder keeps the token it was first seen with.
fn carry_tokens(before: &Holdings, now: &mut Holdings) {
    for (id, holding) in now.iter_mut() {
        if let Some(old) = before.get(id).filter(|old| old.created == 0) {
            holding.token = old.token;
        }
    }
}

/// The first state: holders acquired after `since` count as new, in the
/// order they acquired.
fn baseline(now: &Holdings, since: u64) -> Vec<LockEvent> {
    let mut events: Vec<LockEvent> = now
        .iter()
        .filter(|(_, h)| !h.dead && h.token > since)
        .map(|((name, holder), h)| event(name, holder, LockEventKind::Acquired, h.token))
        .collect();
    events.sort_by_key(|e| e.fencing_token);
    events
}

/// What changed from `before` to `now`: holders gone, then holders new,
/// each in the order of their tokens.
fn diff(before: &Seen, now: &Seen) -> Vec<LockEvent> {
    let live = |h: &Holding| !h.dead;
    let still_held = |id: &(String, String), old: &Holding| {
        now.holdings
            .get(id)
            .is_some_and(|new| live(new) && new.created == old.created)
    };
    let mut events = Vec::new();
    for (id, old) in before.holdings.iter().filter(|(_, h)| live(h)) {
        if still_held(id, old) {
            continue;
        }
        let (name, holder) = id;
        let kind = if old.created == 0 {
            // A semaphore slot: still listed means its key went with its
            // session; taken out of `.lock` means given back.
            match now.holdings.get(id) {
                Some(_) => LockEventKind::Expired,
                None => LockEventKind::Released,
            }
        } else if now.mutex_keys.get(name) == Some(&old.created) {
            LockEventKind::Released // the same key, unlocked
        } else {
            LockEventKind::Expired // the key went (and maybe came back)
        };
        events.push(event(name, holder, kind, old.token));
    }
    events.sort_by_key(|e| e.fencing_token);
    let gone = events.len();
    for (id, new) in now.holdings.iter().filter(|(_, h)| live(h)) {
        let known = before
            .holdings
            .get(id)
            .is_some_and(|old| live(old) && old.created == new.created);
        if !known {
            events.push(event(&id.0, &id.1, LockEventKind::Acquired, new.token));
        }
    }
    events[gone..].sort_by_key(|e| e.fencing_token);
    events
}

fn event(name: &str, holder: &str, kind: LockEventKind, token: u64) -> LockEvent {
    LockEvent {
        name: name.to_string(),
        kind,
        holder: holder.to_string(),
        fencing_token: Some(token),
    }
}
