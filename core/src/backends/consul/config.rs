//! Consul client settings from a `consul://` URL and the usual `CONSUL_HTTP_*`
//! environment variables (the URL wins; [`crate::ClientOptions::token`] wins
//! over both).
//!
//! ```text
//! consul://host:port?token=…&ca=PATH&cert=PATH&key=PATH&lock_delay=0s&prefix=P&session_name=N&max_connections=96
//! consul+https://host:port…       (TLS; also when CONSUL_HTTP_SSL=true or ca= is given)
//! consul://                        (address from CONSUL_HTTP_ADDR, else 127.0.0.1:8500)
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::backends::duration::parse_go_duration;
use crate::error::{Error, Result};
use crate::options::Secret;

/// Default for [`ConsulConfig::max_connections`]: well under Consul's
/// `http_max_conns_per_client` (200 per client address by default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 96;

/// Longest lock-delay Consul accepts.
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

/// How to reach and use a Consul agent.
#[derive(Clone)]
pub struct ConsulConfig {
    /// `http://host:port` or `https://host:port`.
    pub address: Url,
    /// ACL token sent as `X-Consul-Token`.
    pub token: Option<Secret>,
    /// PEM file of the CA that signs the agent's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for agents that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Session lock-delay: how long Consul keeps a key from being re-acquired
    /// after the session holding it is invalidated (not after a clean
    /// release). Default 0s: a lost holder's keys are free at once.
    pub lock_delay: Duration,
    /// Prepended to every lock name to form the KV key (default empty, so a
    /// name is the key and interoperates with `api.LockKey(name)`).
    pub prefix: String,
    /// Name given to the client's sessions.
    pub session_name: String,
    /// Most HTTP requests in flight at once (plus up to 16 idle
    /// connections): a third for calls that answer at once, two thirds for
    /// blocking queries (half for waits, half for loss watches; event
    /// streams draw from either). Past it, calls queue in the client.
    pub max_connections: usize,
}

impl ConsulConfig {
    /// The cap on calls that answer at once.
    pub(crate) fn max_calls(&self) -> usize {
        (self.max_connections / 3).max(1)
    }

    /// The cap on blocking queries.
    pub(crate) fn max_long_polls(&self) -> usize {
        (self.max_connections - self.max_calls()).max(2)
    }
}

impl fmt::Debug for ConsulConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulConfig")
            .field("address", &self.address.as_str())
            .field("token", &self.token)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("lock_delay", &self.lock_delay)
            .field("prefix", &self.prefix)
            .field("session_name", &self.session_name)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl ConsulConfig {
    /// Reads the URL, then the environment for anything the URL leaves out.
    pub fn from_url(url: &Url, token: Option<Secret>) -> Result<Self> {
        Self::from_url_and_env(url, token, |name| std::env::var(name).ok())
    }

    pub(crate) fn from_url_and_env(
        url: &Url,
        token: Option<Secret>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut https = url.scheme() == "consul+https"
            || env("CONSUL_HTTP_SSL").is_some_and(|v| v == "true" || v == "1");
        let mut query_token = None;
        let mut ca_file = env("CONSUL_CACERT").map(PathBuf::from);
        let mut cert = env("CONSUL_CLIENT_CERT").map(PathBuf::from);
        let mut key = env("CONSUL_CLIENT_KEY").map(PathBuf::from);
        let mut lock_delay = Duration::ZERO;
        let mut prefix = String::new();
        let mut session_name = "polylock".to_string();
        let mut max_connections = DEFAULT_MAX_CONNECTIONS;
        for (name, value) in url.query_pairs() {
            let value = value.into_owned();
            match name.as_ref() {
                "token" => query_token = Some(Secret::new(value)),
                "ca" => {
                    https = true;
                    ca_file = Some(value.into());
                }
                "cert" => cert = Some(value.into()),
                "key" => key = Some(value.into()),
                "lock_delay" => lock_delay = parse_go_duration(&value)?,
                "prefix" => prefix = value,
                "session_name" => session_name = value,
                "max_connections" => {
                    max_connections = value
                        .parse()
                        .ok()
                        .filter(|n| (3..=10_000).contains(n))
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "max_connections must be a whole number from 3 to 10000, got {value:?}"
                            ))
                        })?
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown consul URL parameter {other:?}; known: token, ca, cert, key, lock_delay, prefix, session_name, max_connections"
                    )))
                }
            }
        }
        if lock_delay > MAX_LOCK_DELAY {
            return Err(Error::invalid(format!(
                "lock_delay is at most {MAX_LOCK_DELAY:?}, got {lock_delay:?}"
            )));
        }
        if !prefix.is_empty() {
            let trimmed = prefix.trim_end_matches('/');
            crate::options::validate_name(trimmed).map_err(|_| {
                Error::invalid(format!("prefix {prefix:?} is not a valid key prefix"))
            })?;
        }
        let client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(Error::invalid(
                    "a client certificate needs both cert and key (CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY)",
                ))
            }
        };
        let host_port = match url.host_str() {
            Some(host) if !host.is_empty() => {
                let port = url.port().unwrap_or(8500);
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
            _ => env("CONSUL_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8500".into()),
        };
        let address = if host_port.starts_with("http://") || host_port.starts_with("https://") {
            host_port
        } else {
            format!("{}://{host_port}", if https { "https" } else { "http" })
        };
        let address = Url::parse(&address)
            .map_err(|e| Error::invalid(format!("bad Consul address {address:?}: {e}")))?;
        Ok(ConsulConfig {
            address,
            token: token
                .or(query_token)
                .or_else(|| env("CONSUL_HTTP_TOKEN").map(Secret::new)),
            ca_file,
            client_cert,
            lock_delay,
            prefix,
            session_name,
            max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, env: &[(&str, &str)]) -> Result<ConsulConfig> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConsulConfig::from_url_and_env(&Url::parse(url).unwrap(), None, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn url_and_environment() {
        let c = config("consul://10.0.0.1:8501?lock_delay=5s&prefix=locks/", &[]).unwrap();
        assert_eq!(c.address.as_str(), "http://10.0.0.1:8501/");
        assert_eq!(c.lock_delay, Duration::from_secs(5));
        assert_eq!(c.prefix, "locks/");
        let c = config(
            "consul://",
            &[
                ("CONSUL_HTTP_ADDR", "consul.internal:8500"),
                ("CONSUL_HTTP_SSL", "true"),
                ("CONSUL_HTTP_TOKEN", "s3cret"),
            ],
        )
        .unwrap();
        assert_eq!(c.address.as_str(), "https://consul.internal:8500/");
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = config(
            "consul+https://h:1?token=t",
            &[("CONSUL_HTTP_TOKEN", "env")],
        )
        .unwrap();
        assert_eq!(c.address.scheme(), "https");
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("t"));
    }

    #[test]
    fn bad_urls() {
        for url in [
            "consul://h:1?bogus=1",
            "consul://h:1?lock_delay=2m",
            "consul://h:1?lock_delay=soon",
            "consul://h:1?cert=/a.pem",
            "consul://h:1?prefix=/abs",
        ] {
            assert_eq!(
                config(url, &[]).unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument,
                "{url}"
            );
        }
    }
}
