//! LDLM client settings from an `ldlm://` or `ldlms://` URL and the
//! `LDLM_PASSWORD` environment variable ([`crate::ClientOptions::token`]
//! wins over the URL's userinfo, which wins over the environment).
//!
//! ```text
//! ldlm://[:PASSWORD@]host[:port][?max_retries=N&keepalive=30s&connect_timeout=5s&call_timeout=10s]
//! ldlms://[:PASSWORD@]host[:port][?ca=PATH&cert=PATH&key=PATH&skip_verify=true&…]
//! ```
//!
//! The port defaults to 3144, the LDLM server's own default.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::backends::duration::parse_go_duration;
use crate::backends::url_text::percent_decode;
use crate::error::{Error, Result};
use crate::options::Secret;

/// The LDLM server's default port.
pub const DEFAULT_PORT: u16 = 3144;
/// The shortest HTTP/2 keepalive interval allowed: the server sends GOAWAY
/// (and frees every lock of the connection) to a client that pings more
/// often than every 10 s.
pub const MIN_KEEPALIVE: Duration = Duration::from_secs(10);
/// The default HTTP/2 keepalive interval.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// The default for [`LdlmConfig::max_retries`].
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// How to reach and use an LDLM server.
#[derive(Clone)]
pub struct LdlmConfig {
    /// The server's host name or IP address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// TLS (`ldlms://`).
    pub tls: bool,
    /// Sent as the `authorization` metadata of every call.
    pub password: Option<Secret>,
    /// PEM file of the CA that signs the server's certificate (default: the
    /// public web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Accept any server certificate. For tests only: it gives up the
    /// server's identity, so anyone on the path can pose as the server.
    pub skip_verify: bool,
    /// How often a call is retried when the server is unavailable (connect
    /// failure, dropped connection) before the error is returned.
    pub max_retries: u32,
    /// HTTP/2 keepalive ping interval (at least [`MIN_KEEPALIVE`]).
    pub keepalive: Duration,
    /// Time limit for opening the connection (TCP, TLS, HTTP/2).
    pub connect_timeout: Duration,
    /// Time limit for a call the server answers at once (all but a
    /// waiting `Lock`): `TryLock`, `Renew`, `Unlock`.
    pub call_timeout: Duration,
}

impl fmt::Debug for LdlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdlmConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("password", &self.password)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("skip_verify", &self.skip_verify)
            .field("max_retries", &self.max_retries)
            .field("keepalive", &self.keepalive)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

impl LdlmConfig {
    /// Reads the URL, then `LDLM_PASSWORD` when neither `password` nor the
    /// URL gives one.
    pub fn from_url(url: &Url, password: Option<Secret>) -> Result<Self> {
        Self::from_url_and_env(url, password, |name| std::env::var(name).ok())
    }

    pub(crate) fn from_url_and_env(
        url: &Url,
        password: Option<Secret>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let tls = url.scheme() == "ldlms";
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.trim_start_matches('[').trim_end_matches(']'),
            _ => {
                return Err(Error::invalid(
                    "an LDLM URL names the server: ldlm://host[:port]",
                ))
            }
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(Error::invalid(
                "LDLM URLs take no path: ldlm://host[:port][?options]",
            ));
        }
        let mut config = LdlmConfig {
            host: host.to_string(),
            port: url.port().unwrap_or(DEFAULT_PORT),
            tls,
            password: match (password, userinfo_password(url)?) {
                (Some(password), _) | (None, Some(password)) => Some(password),
                (None, None) => env("LDLM_PASSWORD").map(Secret::new),
            },
            ca_file: None,
            client_cert: None,
            skip_verify: false,
            max_retries: DEFAULT_MAX_RETRIES,
            keepalive: DEFAULT_KEEPALIVE,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
        };
        let (mut cert, mut key) = (None, None);
        for (name, value) in url.query_pairs() {
            let value = value.into_owned();
            match name.as_ref() {
                "ca" => config.ca_file = Some(value.into()),
                "cert" => cert = Some(PathBuf::from(value)),
                "key" => key = Some(PathBuf::from(value)),
                "skip_verify" => config.skip_verify = parse_bool("skip_verify", &value)?,
                "max_retries" => {
                    config.max_retries = value.parse().map_err(|_| {
                        Error::invalid(format!(
                            "max_retries is a whole number from 0, got {value:?}"
                        ))
                    })?
                }
                "keepalive" => config.keepalive = parse_go_duration(&value)?,
                "connect_timeout" => config.connect_timeout = parse_go_duration(&value)?,
                "call_timeout" => config.call_timeout = parse_go_duration(&value)?,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown LDLM URL parameter {other:?}; known: ca, cert, key, skip_verify, max_retries, keepalive, connect_timeout, call_timeout"
                    )))
                }
            }
        }
        config.client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(Error::invalid(
                    "a client certificate needs both cert= and key=",
                ))
            }
        };
        if !tls && (config.ca_file.is_some() || config.client_cert.is_some() || config.skip_verify)
        {
            return Err(Error::invalid(
                "ca=, cert=, key= and skip_verify= are TLS options: use ldlms://",
            ));
        }
        if config.keepalive < MIN_KEEPALIVE {
            return Err(Error::invalid(format!(
                "keepalive is at least {MIN_KEEPALIVE:?} (the LDLM server drops clients that ping more often), got {:?}",
                config.keepalive
            )));
        }
        if config.connect_timeout.is_zero() || config.call_timeout.is_zero() {
            return Err(Error::invalid(
                "connect_timeout and call_timeout must be above 0",
            ));
        }
        Ok(config)
    }

    /// `host:port` as shown in messages (never with the password).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The password of `ldlm://:PASSWORD@host`, percent-decoded. LDLM has no
/// user names; a URL with one is refused (URLs are shown with their
/// password redacted, never their user name).
fn userinfo_password(url: &Url) -> Result<Option<Secret>> {
    if !url.username().is_empty() {
        return Err(Error::invalid(
            "LDLM has no user names: give the password as ldlm://:PASSWORD@host",
        ));
    }
    let decoded = url.password().map(percent_decode).unwrap_or_default();
    Ok((!decoded.is_empty()).then(|| Secret::new(decoded)))
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::invalid(format!(
            "{name} is true or false, got {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn config(url: &str, env: &[(&str, &str)]) -> Result<LdlmConfig> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LdlmConfig::from_url_and_env(&Url::parse(url).unwrap(), None, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn urls_and_password_sources() {
        let c = config("ldlm://10.0.0.1", &[]).unwrap();
        assert_eq!((c.address().as_str(), c.tls), ("10.0.0.1:3144", false));
        assert_eq!(c.max_retries, DEFAULT_MAX_RETRIES);
        assert!(c.password.is_none());
        let c = config("ldlm://:p%40ss@h:1", &[("LDLM_PASSWORD", "env")]).unwrap();
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert!(!format!("{c:?}").contains("p@ss"));
        let c = config("ldlm://h:1", &[("LDLM_PASSWORD", "env")]).unwrap();
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("env"));
        let c = LdlmConfig::from_url_and_env(
            &Url::parse("ldlm://:url@h:1").unwrap(),
            Some(Secret::new("option")),
            |_| None,
        )
        .unwrap();
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("option"));
        let c = config(
            "ldlms://[::1]:9?ca=/ca.pem&cert=/c.pem&key=/k.pem&max_retries=0&keepalive=1m",
            &[],
        )
        .unwrap();
        assert_eq!(c.address(), "[::1]:9");
        assert!(c.tls && c.client_cert.is_some() && c.ca_file.is_some());
        assert_eq!((c.max_retries, c.keepalive), (0, Duration::from_secs(60)));
    }

    #[test]
    fn bad_urls() {
        for url in [
            "ldlm://h:1?bogus=1",
            "ldlm://h:1?ca=/ca.pem",
            "ldlm://h:1?skip_verify=true",
            "ldlms://h:1?cert=/c.pem",
            "ldlms://h:1?skip_verify=maybe",
            "ldlm://h:1?max_retries=-1",
            "ldlm://h:1?keepalive=1s",
            "ldlm://h:1?call_timeout=0",
            "ldlm://h:1/path",
            "ldlm://user@h:1",
            "ldlm://user:pw@h:1",
        ] {
            assert_eq!(
                config(url, &[]).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{url}"
            );
        }
    }
}
