//! Renewal sessions: one document per renewal unit (a client's leases of
//! one TTL) in a small collection of their own, `<collection>_sessions`. A
//! lease's generation names its unit; it is live until its own expiry or
//! its session's, whichever is later, so one write renews every lease of
//! the unit, however many.
//!
//! A lease taken away behind its holder's back leaves an *end record* for
//! the holder's next renewal to find, in the same collection: an operator's
//! forced release writes it before its release marker (so the holder cannot
//! miss it), a takeover after expiry once it won (its holder's own deadline
//! ran out first). A renewal reads its unit's records in the same request
//! that finds nothing else: the collection stays small, and FerretDB reads
//! a whole collection for any query but an exact `_id`.
//!
//! Documents: `{_id: "s/<unit>", unit, expires_at, keep_until}` and
//! `{_id: "e/<lease id>", unit, released, keep_until}`; a sweep now and then
//! deletes what is past `keep_until`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::Collection;

use super::errors;
use crate::error::Result;

/// How long a session or an end record is kept past its use.
const KEEP: Duration = Duration::from_secs(10 * 60);

/// The renewal unit of client `client`'s leases with `ttl`.
pub(crate) fn unit_name(client: &str, ttl: Duration) -> String {
    format!("{client}-ttl-{}", ttl.as_millis())
}

/// The TTL of a unit's leases, from its name (the longest TTL when the
/// name is not one of [`unit_name`]'s).
fn unit_ttl(unit: &str) -> Duration {
    unit.rsplit_once("-ttl-")
        .and_then(|(_, ms)| ms.parse().ok())
        .map_or(crate::options::MAX_TTL, Duration::from_millis)
}

/// Until when (server ms) the end record of a lease of `unit` made at
/// `now_ms` is kept: three of the unit's TTLs and [`KEEP`]. A unit name
/// read from a document may claim any TTL; the sum saturates.
pub(crate) fn end_keep_until(unit: &str, now_ms: i64) -> i64 {
    let keep = unit_ttl(unit).saturating_mul(3).saturating_add(KEEP);
    now_ms.saturating_add(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

/// An end record's lease id and whether a forced release ended it (else a
/// takeover); `None` for a document that is not an end record.
pub(crate) fn end_record(doc: &Document) -> Option<(String, bool)> {
    let lease = doc.get_str("_id").ok()?.strip_prefix("e/")?;
    Some((lease.to_string(), doc.get_bool("released").unwrap_or(false)))
}

fn session_id(unit: &str) -> String {
    format!("s/{unit}")
}

fn end_id(lease: &str) -> String {
    format!("e/{lease}")
}

/// The sessions collection (cheap to clone).
#[derive(Clone)]
pub(crate) struct Sessions {
    coll: Collection<Document>,
}

impl Sessions {
    pub(crate) fn new(coll: Collection<Document>) -> Self {
        Sessions { coll }
    }

    /// Proves every lease of `unit` live until `expires_at` (server ms):
    /// one write, creating the session at its first renewal.
    pub(crate) async fn renew(&self, unit: &str, expires_at: i64) -> Result<()> {
        let keep_until = expires_at + KEEP.as_millis() as i64;
        self.coll
            .update_one(
                doc! { "_id": session_id(unit) },
                doc! { "$set": { "unit": unit, "expires_at": expires_at, "keep_until": keep_until } },
            )
            .upsert(true)
            .await
            .map_err(errors::map)?;
        Ok(())
    }

    /// The leases of `unit` taken away from it, by lease id, each with
    /// whether by a forced release (else a takeover): one read.
    pub(crate) async fn ended(&self, unit: &str) -> Result<HashMap<String, bool>> {
        let docs: Vec<Document> = self
            .coll
            .find(doc! { "unit": unit })
            .await
            .map_err(errors::map)?
            .try_collect()
            .await
            .map_err(errors::map)?;
        Ok(docs.iter().filter_map(end_record).collect())
    }

    /// Tells `unit`'s renewal that lease `lease` was taken away (`released`:
    /// by a forced release). Kept for at least three of its TTLs.
    pub(crate) async fn record_end(
        &self,
        unit: &str,
        lease: &str,
        released: bool,
        now_ms: i64,
    ) -> Result<()> {
        let keep_until = end_keep_until(unit, now_ms);
        let record = doc! {
            "_id": end_id(lease),
            "unit": unit,
            "released": released,
            "keep_until": keep_until,
        };
        match self.coll.insert_one(record).await {
            Ok(_) => Ok(()),
            Err(e) if errors::is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(errors::map(e)),
        }
    }

    /// Forgets end records a renewal has read.
    pub(crate) async fn forget_ends(&self, leases: &[String]) {
        for lease in leases {
            if let Err(error) = self.coll.delete_one(doc! { "_id": end_id(lease) }).await {
                tracing::debug!(%error, "deleting a lease's end record failed");
            }
        }
    }

    /// The session expiries of `units` (server ms; a unit without a
    /// session is absent), read together.
    pub(crate) async fn expiries(&self, units: &[&str]) -> Result<HashMap<String, i64>> {
        let reads = units.iter().map(|unit| async move {
            let found = self.coll.find_one(doc! { "_id": session_id(unit) }).await?;
            Ok::<_, mongodb::error::Error>(
                found.and_then(|d| Some((unit.to_string(), d.get_i64("expires_at").ok()?))),
            )
        });
        let found = futures_util::future::try_join_all(reads)
            .await
            .map_err(errors::map)?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Deletes sessions and end records kept long enough (best effort).
    pub(crate) async fn sweep(&self, now_ms: i64) {
        let swept = self
            .coll
            .delete_many(doc! { "keep_until": { "$lt": now_ms } })
            .await;
        if let Err(error) = swept {
            tracing::debug!(%error, "sweeping old renewal sessions failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_names_its_ttl() {
        let unit = unit_name("00ff", Duration::from_millis(1500));
        assert_eq!(unit_ttl(&unit), Duration::from_millis(1500));
        assert_eq!(unit_ttl("elsewhere"), crate::options::MAX_TTL);
    }

    /// A unit name read from a document may claim any TTL: the end
    /// record's keep time saturates instead of overflowing (a panic found
    /// by fuzzing: `3 * Duration::from_millis(u64::MAX)`).
    #[test]
    fn an_end_record_of_any_unit_has_a_keep_time() {
        let unit = format!("c-ttl-{}", u64::MAX);
        assert_eq!(end_keep_until(&unit, 0), i64::MAX);
        assert_eq!(end_keep_until(&unit, i64::MAX), i64::MAX);
        let unit = unit_name("c", Duration::from_secs(10));
        assert_eq!(end_keep_until(&unit, 1_000), 1_000 + 30_000 + 600_000);
        let record = doc! { "_id": "e/l/0/00000000000000000001", "released": true };
        assert_eq!(
            end_record(&record),
            Some(("l/0/00000000000000000001".to_string(), true))
        );
        assert_eq!(end_record(&doc! { "_id": "s/unit" }), None);
    }
}
