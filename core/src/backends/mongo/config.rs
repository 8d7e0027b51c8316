//! MongoDB client settings from a `mongodb://` (or `mongodb+srv://`) URL.
//!
//! ```text
//! mongodb://[user:password@]host[:port][,host…]/[database]?[driver options]&collection=C&events_collection=E
//! ```
//!
//! The database defaults to `polylock`, the lock collection to
//! `polylock_locks`, the renewal sessions to `<collection>_sessions`, the
//! events collection to `<collection>_events`. Every
//! other option (TLS, credentials, `authSource`, `replicaSet`, `w`, …) is the
//! driver's own. Without `w`, writes use write concern `majority`.

use std::fmt;

use url::Url;

use crate::error::{Error, Result};
use crate::options::Secret;

/// How to reach MongoDB and where the locks live.
#[derive(Clone)]
pub struct MongoConfig {
    /// The URL for the driver, without polylock's own parameters (may hold
    /// a password: never printed).
    pub(crate) driver_url: Secret,
    /// The database.
    pub database: String,
    /// The collection of lock generations.
    pub collection: String,
    /// The capped collection of lock events.
    pub events_collection: String,
    /// Whether the URL chose a write concern itself (`w=`).
    pub explicit_write_concern: bool,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("driver_url", &crate::url::redact(self.driver_url.expose()))
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("events_collection", &self.events_collection)
            .field("explicit_write_concern", &self.explicit_write_concern)
            .finish()
    }
}

impl MongoConfig {
    /// The collection of renewal sessions and end records:
    /// The URL for the driver: the given one without polylock's own
    /// parameters (it may hold a password).
    pub fn driver_url(&self) -> &Secret {
        &self.driver_url
    }

    /// `<collection>_sessions`.
    pub fn sessions_collection(&self) -> String {
        format!("{}_sessions", self.collection)
    }

    /// Reads the URL; `password` (from [`crate::ClientOptions::token`]) fills
    /// in a password the URL leaves out.
    pub fn from_url(url: &Url, password: Option<Secret>) -> Result<Self> {
        let mut driver = url.clone();
        let mut collection = "polylock_locks".to_string();
        let mut events_collection = None;
        let mut kept = Vec::new();
        let mut explicit_write_concern = false;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "collection" => collection = value.into_owned(),
                "events_collection" => events_collection = Some(value.into_owned()),
                other => {
                    explicit_write_concern |= other.eq_ignore_ascii_case("w");
                    kept.push((name.into_owned(), value.into_owned()));
                }
            }
        }
        driver.set_query(None);
        if !kept.is_empty() {
            driver.query_pairs_mut().extend_pairs(kept);
        }
        if let Some(password) = password {
            if url.password().is_none() && !url.username().is_empty() {
                driver
                    .set_password(Some(password.expose()))
                    .map_err(|_| Error::invalid("cannot put the password into the MongoDB URL"))?;
            }
        }
        let database = url.path().trim_matches('/');
        let database = if database.is_empty() {
            "polylock"
        } else {
            database
        }
        .to_string();
        for (what, value) in [("database", &database), ("collection", &collection)] {
            if value.is_empty() || value.contains(['$', '\0', ' ']) {
                return Err(Error::invalid(format!("bad MongoDB {what} name {value:?}")));
            }
        }
        let events_collection = events_collection.unwrap_or_else(|| format!("{collection}_events"));
        Ok(MongoConfig {
            driver_url: Secret::new(driver.to_string()),
            database,
            collection,
            events_collection,
            explicit_write_concern,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polylock_parameters_are_taken_out() {
        let url =
            Url::parse("mongodb://u:hunter2@h:27017/locksdb?collection=l&tls=true&w=1").unwrap();
        let config = MongoConfig::from_url(&url, None).unwrap();
        assert_eq!(config.database, "locksdb");
        assert_eq!(config.collection, "l");
        assert_eq!(config.events_collection, "l_events");
        assert!(config.explicit_write_concern);
        let driver = config.driver_url.expose();
        assert!(
            driver.contains("tls=true") && !driver.contains("collection="),
            "{driver}"
        );
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn defaults_and_password_from_options() {
        let url = Url::parse("mongodb://app@h/").unwrap();
        let config = MongoConfig::from_url(&url, Some(Secret::new("s3cret"))).unwrap();
        assert_eq!(config.database, "polylock");
        assert_eq!(config.collection, "polylock_locks");
        assert!(!config.explicit_write_concern);
        assert!(config.driver_url.expose().contains("app:s3cret@"));
        assert!(
            MongoConfig::from_url(&Url::parse("mongodb://h/?collection=a$b").unwrap(), None)
                .is_err()
        );
    }
}
