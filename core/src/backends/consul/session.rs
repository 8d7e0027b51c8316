//! The client's Consul sessions. One TTL session renews every lease the
//! client holds with that TTL; a second session is made only when the same
//! client takes the same name twice (a Consul session cannot hold one key
//! twice, and a semaphore counts one slot per session). Sessions use
//! `Behavior: delete`, no health checks (TTL only) and the configured
//! lock-delay. An idle session is renewed and lent again rather than
//! replaced ([`SessionPool::reserve`]); one left unused expires after its
//! TTL.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::http::ConsulHttp;
use crate::backends::duration::{parse_go_duration, whole_seconds};
use crate::error::{Error, Result};

struct Slot {
    id: String,
    ttl: Duration,
    /// Names this session holds or is trying to take.
    names: HashSet<String>,
    /// Names on which it may still hold a lost lease's key, being freed
    /// ([`super::orphans`]): not lent for them until that is done.
    orphans: HashSet<String>,
    /// Until when the session is known to live (last proof + TTL).
    alive_until: Instant,
    /// No new names: an abandoned lease must be left to expire.
    retired: bool,
}

/// The outcome of renewing a session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SessionRenewal {
    /// Alive; guaranteed for this long from when the renewal was sent.
    Alive(Duration),
    /// Consul no longer knows the session: everything on it is gone.
    Gone,
}

/// A session reserved for one acquisition attempt.
#[derive(Debug, Clone)]
pub(crate) struct Reserved {
    pub id: String,
    /// The session TTL (whole seconds).
    pub ttl: Duration,
    /// Until when the session is known to live.
    pub alive_until: Instant,
}

/// The sessions of one client.
#[derive(Default)]
pub(crate) struct SessionPool {
    slots: Mutex<Vec<Slot>>,
}

impl Slot {
    /// Holds, wants or is freeing some name.
    fn in_use(&self) -> bool {
        !self.names.is_empty() || !self.orphans.is_empty()
    }
}

impl SessionPool {
    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live session with this TTL that neither holds nor wants `name`;
    /// marks it as wanting `name`. Creates one when none fits.
    ///
    /// A lease is proven no longer than its session, so a session is lent
    /// as it is only while half its TTL is still ahead. An idle one past
    /// that (a client that acquires rarely) is renewed and reused rather
    /// than replaced: a renewal is no Raft write, and the client keeps one
    /// session per TTL instead of leaving a trail of expiring ones.
    pub(crate) async fn reserve(
        &self,
        http: &ConsulHttp,
        name: &str,
        ttl: Duration,
    ) -> Result<Reserved> {
        let (ttl, ttl_text) = whole_seconds(ttl);
        let stale = {
            let now = Instant::now();
            let mut slots = self.slots();
            // Idle sessions past their TTL have expired.
            slots.retain(|s| s.alive_until > now || s.in_use());
            let fits = |s: &Slot| {
                s.ttl == ttl && !s.retired && !s.names.contains(name) && !s.orphans.contains(name)
            };
            if let Some(slot) = slots
                .iter_mut()
                .find(|s| fits(s) && s.alive_until > now + s.ttl / 2)
            {
                slot.names.insert(name.to_string());
                return Ok(Reserved {
                    id: slot.id.clone(),
                    ttl,
                    alive_until: slot.alive_until,
                });
            }
            slots
                .iter_mut()
                .find(|s| fits(s) && !s.in_use())
                .map(|slot| {
                    // Held for the renewal, so no other call takes it meanwhile.
                    slot.names.insert(name.to_string());
                    slot.id.clone()
                })
        };
        if let Some(id) = stale {
            match self.renew(http, &id).await {
                Ok(SessionRenewal::Alive(_)) => {
                    if let Some(slot) = self.slots().iter().find(|s| s.id == id) {
                        return Ok(Reserved {
                            id,
                            ttl,
                            alive_until: slot.alive_until,
                        });
                    }
                }
                Ok(SessionRenewal::Gone) => {}
                Err(error) => {
                    self.unreserve(&id, name);
                    return Err(error);
                }
            }
            self.forget_session(&id);
        }
        let config = http.config();
        let body = json!({
            "Name": config.session_name,
            "TTL": ttl_text,
            "LockDelay": format!("{}ms", config.lock_delay.as_millis()),
            "Behavior": "delete",
            "NodeChecks": [],
            "ServiceChecks": [],
            "Checks": [],
        });
        let sent = Instant::now();
        let reply = http
            .put_json("/v1/session/create", Some(&body))
            .await?
            .ok_or_else(|| Error::Backend("consul has no session endpoint".into()))?;
        let id = session_id(&reply)?;
        self.slots().push(Slot {
            id: id.clone(),
            ttl,
            names: HashSet::from([name.to_string()]),
            orphans: HashSet::new(),
            alive_until: sent + ttl,
            retired: false,
        });
        Ok(Reserved {
            id,
            ttl,
            alive_until: sent + ttl,
        })
    }

    /// Until when `session` is known to live, if the pool knows it.
    pub(crate) fn alive_until(&self, session: &str) -> Option<Instant> {
        self.slots()
            .iter()
            .find(|s| s.id == session)
            .map(|s| s.alive_until)
    }

    /// By when Consul has invalidated `session` unless it is renewed again
    /// (it allows twice the TTL after the last renewal), if the pool knows it.
    pub(crate) fn invalidated_by(&self, session: &str) -> Option<Instant> {
        self.slots()
            .iter()
            .find(|s| s.id == session)
            .map(|s| s.alive_until + s.ttl)
    }

    /// `session` no longer holds or wants `name`.
    pub(crate) fn unreserve(&self, session: &str, name: &str) {
        if let Some(slot) = self.slots().iter_mut().find(|s| s.id == session) {
            slot.names.remove(name);
        }
    }

    /// `session` may still hold a lost lease's key on `name`: from now
    /// until [`orphan_freed`](Self::orphan_freed) it is not lent for `name`
    /// (whatever else ends its reservation of the name meanwhile).
    pub(crate) fn orphan(&self, session: &str, name: &str) {
        if let Some(slot) = self.slots().iter_mut().find(|s| s.id == session) {
            slot.names.remove(name);
            slot.orphans.insert(name.to_string());
        }
    }

    /// `session` holds nothing on `name` any more (see [`orphan`](Self::orphan)).
    pub(crate) fn orphan_freed(&self, session: &str, name: &str) {
        if let Some(slot) = self.slots().iter_mut().find(|s| s.id == session) {
            slot.orphans.remove(name);
        }
    }

    /// Forgets a session Consul no longer knows.
    pub(crate) fn forget_session(&self, session: &str) {
        self.slots().retain(|s| s.id != session);
    }

    /// No new names go to `session`.
    pub(crate) fn retire(&self, session: &str) {
        if let Some(slot) = self.slots().iter_mut().find(|s| s.id == session) {
            slot.retired = true;
        }
    }

    /// Renews `session`; forgets it when Consul no longer knows it.
    pub(crate) async fn renew(&self, http: &ConsulHttp, session: &str) -> Result<SessionRenewal> {
        let sent = Instant::now();
        let reply = http
            .put_json(&format!("/v1/session/renew/{session}"), None)
            .await?;
        let Some(reply) = reply else {
            self.slots().retain(|s| s.id != session);
            return Ok(SessionRenewal::Gone);
        };
        let mut slots = self.slots();
        let Some(slot) = slots.iter_mut().find(|s| s.id == session) else {
            return Ok(SessionRenewal::Alive(Duration::ZERO));
        };
        // Honour a longer TTL the server may have set.
        let granted = parse_session_ttl(&reply).unwrap_or(slot.ttl).max(slot.ttl);
        slot.alive_until = sent + granted;
        Ok(SessionRenewal::Alive(granted))
    }

    /// Destroys every session (client shutdown), except retired ones: they
    /// carry abandoned leases, which must be left to expire.
    pub(crate) async fn destroy_all(&self, http: &ConsulHttp) {
        let ids: Vec<String> = self
            .slots()
            .drain(..)
            .filter(|s| !s.retired)
            .map(|s| s.id)
            .collect();
        for id in ids {
            if let Err(error) = http
                .put_json(&format!("/v1/session/destroy/{id}"), None)
                .await
            {
                tracing::debug!(%error, "destroying a consul session failed; it will expire");
            }
        }
    }
}

/// The session id in a `/v1/session/create` reply.
pub(crate) fn session_id(reply: &serde_json::Value) -> Result<String> {
    Ok(reply["ID"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::Backend(format!("consul's session reply has no ID: {reply}")))?
        .to_string())
}

/// The TTL in a `/v1/session/renew` (or `/info`) reply.
pub(crate) fn parse_session_ttl(reply: &serde_json::Value) -> Option<Duration> {
    reply[0]["TTL"]
        .as_str()
        .and_then(|t| parse_go_duration(t).ok())
}
