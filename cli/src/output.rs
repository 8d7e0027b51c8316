//! Printing results: text for people, JSON for scripts (`--json`).

use std::time::Duration;

use polylock::{HolderStatus, Lease, LockEvent, LockEventKind, LockStatus};
use serde_json::{json, Value};

/// Where results go and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON instead of text.
    pub json: bool,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Output {
    /// Prints `value` as JSON, or `text` for people.
    fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    /// A lease just taken (`acquire`).
    pub fn lease(&self, lease: &Lease) {
        let value = json!({
            "name": lease.name(),
            "holder": lease.holder(),
            "fencing_token": lease.fencing_token(),
            "limit": lease.limit(),
            "ttl_ms": millis(lease.ttl()),
            "value": lease.value(),
        });
        self.emit(value, || {
            format!(
                "acquired {} (holder {}, fencing token {}, ttl {:?}); it stays held for its TTL: \
                 renew with `polylock renew {} --holder {}`",
                lease.name(),
                lease.holder(),
                token_text(lease.fencing_token()),
                lease.ttl(),
                lease.name(),
                lease.holder()
            )
        });
    }

    /// A lock's holders (`status`).
    pub fn status(&self, status: &LockStatus) {
        let holders: Vec<Value> = status.holders.iter().map(holder_json).collect();
        let value = json!({
            "name": status.name,
            "limit": status.limit,
            "held": !status.is_free(),
            "holders": holders,
        });
        self.emit(value, || {
            if status.is_free() {
                return format!("{}: free", status.name);
            }
            let mut text = format!(
                "{}: held by {} of {}",
                status.name,
                status.holders.len(),
                status.limit.unwrap_or(1)
            );
            for h in &status.holders {
                let expiry = h
                    .expires_in
                    .map(|e| format!("expires in {:.1}s", e.as_secs_f64()))
                    .unwrap_or_else(|| "expiry unknown".into());
                text.push_str(&format!(
                    "\n  holder {}  value {:?}  fencing token {}  {expiry}",
                    h.holder,
                    h.value,
                    token_text(h.fencing_token)
                ));
            }
            text
        });
    }

    /// A semaphore's size, and how to take one of its places
    /// (`create-semaphore`).
    pub fn semaphore(&self, name: &str, limit: u32, ttl: Duration) {
        let acquire = format!(
            "polylock acquire {name} --limit {limit} --ttl {}ms",
            millis(ttl)
        );
        let value =
            json!({ "name": name, "limit": limit, "ttl_ms": millis(ttl), "acquire": acquire });
        self.emit(value, || {
            format!(
                "{name}: a semaphore of {limit} (made on demand; nothing stored)\n  take a place with: {acquire}"
            )
        });
    }

    /// Held lock names (`list`).
    pub fn names(&self, names: &[String]) {
        self.emit(json!(names), || names.join("\n"));
    }

    /// A lease renewed (`renew`).
    pub fn renewed(&self, name: &str, holder: &str, ttl: Duration) {
        let value = json!({ "name": name, "holder": holder, "ttl_ms": millis(ttl) });
        self.emit(value, || {
            format!("renewed {name} (holder {holder}) for {ttl:?}")
        });
    }

    /// A lease released (`release`).
    pub fn released(&self, name: &str, holder: &str) {
        let value = json!({ "name": name, "holder": holder, "released": true });
        self.emit(value, || format!("released {name} (holder {holder})"));
    }

    /// Leases taken away (`delete`).
    pub fn deleted(&self, name: &str, count: u32) {
        let value = json!({ "name": name, "released": count });
        self.emit(value, || format!("{name}: released {count} lease(s)"));
    }

    /// One lock event (`watch`).
    pub fn event(&self, event: &LockEvent) {
        let kind = match event.kind {
            LockEventKind::Acquired => "acquired",
            LockEventKind::Released => "released",
            LockEventKind::Expired => "expired",
            _ => "changed",
        };
        let value = json!({
            "name": event.name,
            "event": kind,
            "holder": event.holder,
            "fencing_token": event.fencing_token,
        });
        self.emit(value, || {
            format!(
                "{kind} {} holder {} fencing token {}",
                event.name,
                event.holder,
                token_text(event.fencing_token)
            )
        });
    }
}

fn holder_json(h: &HolderStatus) -> Value {
    json!({
        "holder": h.holder,
        "value": h.value,
        "fencing_token": h.fencing_token,
        "expires_in_ms": h.expires_in.map(millis),
    })
}

fn token_text(token: Option<u64>) -> String {
    token.map_or_else(|| "none".into(), |t| t.to_string())
}
