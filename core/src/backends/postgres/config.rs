//! PostgreSQL client settings from a `postgres://` / `postgresql://` URL in
//! libpq's conventions, and the `PG*` environment variables for what the URL
//! leaves out ([`crate::ClientOptions::token`] wins over the URL's password,
//! which wins over `PGPASSWORD`).
//!
//! ```text
//! postgres://[user[:password]@][host][:port][/dbname][?sslmode=…&sslrootcert=PATH&sslcert=PATH&sslkey=PATH&connect_timeout=SECONDS&application_name=…&schema=…&table=…]
//! ```
//!
//! `sslmode` is libpq's: `disable`, `prefer` (the default: TLS when the
//! server offers it, certificate unchecked), `require` (TLS, certificate
//! unchecked unless `sslrootcert` is given, then as `verify-ca`),
//! `verify-ca` (chain checked against `sslrootcert`) and `verify-full`
//! (chain and host name). `schema` (default `polylock`) and `table`
//! (default `locks`) name where polylock keeps its leases: lower-case
//! letters, digits and `_`, so they never need quoting and cannot inject
//! SQL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::backends::url_text::percent_decode;
use crate::error::{Error, Result};
use crate::options::Secret;

/// The port PostgreSQL listens on by default.
pub const DEFAULT_PORT: u16 = 5432;
/// The schema polylock's objects live in by default.
pub const DEFAULT_SCHEMA: &str = "polylock";
/// The name (and prefix of the other objects' names) of the leases table
/// by default.
pub const DEFAULT_TABLE: &str = "locks";
/// The longest schema or table name accepted (PostgreSQL's limit is 63
/// bytes; the objects polylock derives from the table name add up to 9).
pub const MAX_IDENTIFIER_LEN: usize = 40;

/// How the connection uses TLS (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it; the certificate is not checked.
    Prefer,
    /// TLS; the certificate is not checked (checked as `VerifyCa` when a
    /// root certificate is given).
    Require,
    /// TLS; the certificate chain is checked against the root certificate.
    VerifyCa,
    /// TLS; the chain and the server's host name are checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::invalid(format!(
                    "sslmode is disable, allow, prefer, require, verify-ca or verify-full, got {other:?}"
                )))
            }
        })
    }
}

/// How to reach and use a PostgreSQL server.
#[derive(Clone)]
pub struct PostgresConfig {
    /// The server's host name or IP address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The role to connect as.
    pub user: String,
    /// Its password, when the server asks for one.
    pub password: Option<Secret>,
    /// The database.
    pub dbname: String,
    /// How the connection uses TLS.
    pub ssl_mode: SslMode,
    /// PEM file of the CA that signs the server's certificate.
    pub ssl_root_cert: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub ssl_client_cert: Option<(PathBuf, PathBuf)>,
    /// Time limit for opening a connection.
    pub connect_timeout: Duration,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
    /// The schema polylock's objects live in.
    pub schema: String,
    /// The leases table, and the prefix of the other objects' names.
    pub table: String,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("dbname", &self.dbname)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_client_cert", &self.ssl_client_cert)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .field("schema", &self.schema)
            .field("table", &self.table)
            .finish()
    }
}

impl PostgresConfig {
    /// Reads the URL, then the `PG*` environment variables for what it
    /// leaves out.
    pub fn from_url(url: &Url, password: Option<Secret>) -> Result<Self> {
        Self::from_url_and_env(url, password, |name| std::env::var(name).ok())
    }

    /// [`PostgresConfig::from_url`] with the environment read through `env`.
    pub fn from_url_and_env(
        url: &Url,
        password: Option<Secret>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        if url.fragment().is_some() {
            return Err(Error::invalid("PostgreSQL URLs take no #fragment"));
        }
        let mut host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
        let mut port = url.port();
        let mut user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
        let mut url_password = url.password().map(percent_decode).filter(|p| !p.is_empty());
        let path = url.path().trim_start_matches('/');
        if path.contains('/') {
            return Err(Error::invalid(
                "a PostgreSQL URL's path is the database name: postgres://host/dbname",
            ));
        }
        let mut dbname = (!path.is_empty()).then(|| percent_decode(path));
        let (mut ssl_mode, mut root, mut cert, mut key) = (None, None, None, None);
        let (mut connect_timeout, mut application_name) = (None, None);
        let (mut schema, mut table) = (None, None);
        for (name, value) in url.query_pairs() {
            let value = value.into_owned();
            match name.as_ref() {
                "host" => host = Some(value),
                "port" => port = Some(parse_port(&value)?),
                "user" => user = Some(value),
                "password" => url_password = Some(value),
                "dbname" => dbname = Some(value),
                "sslmode" => ssl_mode = Some(SslMode::parse(&value)?),
                "sslrootcert" => root = Some(value),
                "sslcert" => cert = Some(value),
                "sslkey" => key = Some(value),
                "connect_timeout" => connect_timeout = Some(value),
                "application_name" => application_name = Some(value),
                "schema" => schema = Some(identifier("schema", &value)?),
                "table" => table = Some(identifier("table", &value)?),
                other => {
                    return Err(Error::invalid(format!(
                        "unknown PostgreSQL URL parameter {other:?}; known: host, port, user, password, dbname, sslmode, sslrootcert, sslcert, sslkey, connect_timeout, application_name, schema, table"
                    )))
                }
            }
        }
        let ssl_mode = match ssl_mode {
            Some(mode) => mode,
            None => env("PGSSLMODE")
                .map(|m| SslMode::parse(&m))
                .transpose()?
                .unwrap_or(SslMode::Prefer),
        };
        let root = root.or_else(|| env("PGSSLROOTCERT"));
        let cert = cert.or_else(|| env("PGSSLCERT"));
        let key = key.or_else(|| env("PGSSLKEY"));
        let ssl_client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(Error::invalid(
                    "a client certificate needs both sslcert and sslkey",
                ))
            }
        };
        let ssl_mode =
            match (ssl_mode, &root) {
                (SslMode::Require, Some(_)) => SslMode::VerifyCa,
                (SslMode::VerifyCa | SslMode::VerifyFull, None) => return Err(Error::invalid(
                    "sslmode verify-ca and verify-full need the CA's certificate: sslrootcert=PATH",
                )),
                (mode, _) => mode,
            };
        if ssl_mode == SslMode::Disable && (root.is_some() || ssl_client_cert.is_some()) {
            return Err(Error::invalid(
                "sslrootcert, sslcert and sslkey are TLS options; sslmode=disable turns TLS off",
            ));
        }
        let connect_timeout = match connect_timeout.or_else(|| env("PGCONNECT_TIMEOUT")) {
            Some(seconds) => match seconds.parse::<u64>() {
                Ok(0) | Err(_) => {
                    return Err(Error::invalid(format!(
                        "connect_timeout is a whole number of seconds above 0, got {seconds:?}"
                    )))
                }
                Ok(seconds) => Duration::from_secs(seconds),
            },
            None => Duration::from_secs(10),
        };
        let port = match port {
            Some(port) => port,
            None => env("PGPORT")
                .map(|p| parse_port(&p))
                .transpose()?
                .unwrap_or(DEFAULT_PORT),
        };
        let user = user
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        Ok(PostgresConfig {
            host: host
                .or_else(|| env("PGHOST"))
                .unwrap_or_else(|| "localhost".into()),
            port,
            dbname: dbname
                .or_else(|| env("PGDATABASE"))
                .unwrap_or_else(|| user.clone()),
            user,
            password: password
                .or_else(|| url_password.map(Secret::new))
                .or_else(|| env("PGPASSWORD").map(Secret::new)),
            ssl_mode,
            ssl_root_cert: root.map(PathBuf::from),
            ssl_client_cert,
            connect_timeout,
            application_name: application_name
                .or_else(|| env("PGAPPNAME"))
                .unwrap_or_else(|| "polylock".into()),
            schema: schema.unwrap_or_else(|| DEFAULT_SCHEMA.into()),
            table: table.unwrap_or_else(|| DEFAULT_TABLE.into()),
        })
    }

    /// `user@host:port/dbname` as shown in messages (never the password).
    pub fn address(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}@{host}:{}/{}", self.user, self.port, self.dbname)
    }
}

fn parse_port(value: &str) -> Result<u16> {
    value
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::invalid(format!("port is 1 to 65535, got {value:?}")))
}

/// A schema or table name: lower-case ASCII letters, digits and `_`,
/// starting with a letter or `_`, at most [`MAX_IDENTIFIER_LEN`] bytes.
fn identifier(what: &str, value: &str) -> Result<String> {
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || value.len() > MAX_IDENTIFIER_LEN
        || !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::invalid(format!(
            "{what} is 1 to {MAX_IDENTIFIER_LEN} lower-case ASCII letters, digits or _, starting with a letter or _, got {value:?}"
        )));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, env: &[(&str, &str)]) -> Result<PostgresConfig> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PostgresConfig::from_url_and_env(&Url::parse(url).unwrap(), None, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn url_then_environment_then_defaults() {
        let c = parse("postgres://alice:s%40cret@db.example:6543/app", &[]).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.dbname.as_str()),
            ("db.example", 6543, "alice", "app")
        );
        assert_eq!(c.password.as_ref().unwrap().expose(), "s@cret");
        assert_eq!(c.ssl_mode, SslMode::Prefer);
        let c = parse(
            "postgresql://",
            &[
                ("PGHOST", "h"),
                ("PGPORT", "7"),
                ("PGUSER", "u"),
                ("PGPASSWORD", "pw"),
                ("PGDATABASE", "d"),
                ("PGSSLMODE", "disable"),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.dbname.as_str()),
            ("h", 7, "u", "d")
        );
        assert_eq!(c.password.unwrap().expose(), "pw");
        assert_eq!(c.ssl_mode, SslMode::Disable);
        let c = parse("postgres://h?user=bob", &[("USER", "x")]).unwrap();
        assert_eq!((c.user.as_str(), c.dbname.as_str()), ("bob", "bob"));
        assert_eq!((c.schema.as_str(), c.table.as_str()), ("polylock", "locks"));
    }

    #[test]
    fn the_password_never_shows() {
        let c = parse("postgres://u:hunter2@h/d", &[]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.address().contains("hunter2"));
    }

    #[test]
    fn tls_options_follow_libpq() {
        let c = parse("postgres://h/d?sslmode=require&sslrootcert=/ca.pem", &[]).unwrap();
        assert_eq!(c.ssl_mode, SslMode::VerifyCa);
        assert!(parse("postgres://h/d?sslmode=verify-full", &[]).is_err());
        assert!(parse("postgres://h/d?sslmode=bogus", &[]).is_err());
        assert!(parse("postgres://h/d?sslcert=/c.pem", &[]).is_err());
        assert!(parse("postgres://h/d?sslmode=disable&sslrootcert=/ca.pem", &[]).is_err());
    }

    #[test]
    fn schema_and_table_are_plain_identifiers() {
        let c = parse("postgres://h/d?schema=tenant_7&table=mutexes", &[]).unwrap();
        assert_eq!(
            (c.schema.as_str(), c.table.as_str()),
            ("tenant_7", "mutexes")
        );
        for bad in [
            "x%22%3B%20drop%20table%20t%3B--",
            "Upper",
            "1st",
            "a-b",
            "",
            &"a".repeat(41),
        ] {
            let error = parse(&format!("postgres://h/d?schema={bad}"), &[]).unwrap_err();
            assert!(matches!(error, Error::InvalidArgument(_)), "{bad}: {error}");
            assert!(parse(&format!("postgres://h/d?table={bad}"), &[]).is_err());
        }
        assert!(parse("postgres://h/d?nope=1", &[]).is_err());
    }
}
