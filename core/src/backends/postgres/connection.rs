//! Opening connections to PostgreSQL: the driver's settings from a
//! [`PostgresConfig`], TLS as its `sslmode` says (rustls, shared with LDLM
//! in [`crate::backends::tls`]), and the driver's errors as polylock's.

use std::sync::Arc;

use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::{self, crypto::ring};

use super::config::{PostgresConfig, SslMode};
use super::verify_ca::ChainOnly;
use crate::backends::tls::{certificates, classify, private_key, roots, AnyServerCertificate};
use crate::error::{Error, Result};

/// What opens connections to one server.
#[derive(Clone)]
pub struct Connector {
    settings: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    address: String,
}

impl Connector {
    /// The settings and TLS of `config`.
    pub fn new(config: &PostgresConfig) -> Result<Self> {
        let mut settings = tokio_postgres::Config::new();
        settings
            .host(&config.host)
            .port(config.port)
            .user(&config.user)
            .dbname(&config.dbname)
            .application_name(&config.application_name)
            .connect_timeout(config.connect_timeout)
            .keepalives(true)
            .ssl_mode(match config.ssl_mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(password) = &config.password {
            settings.password(password.expose());
        }
        Ok(Connector {
            settings,
            tls: MakeRustlsConnect::new(tls_config(config)?),
            address: config.address(),
        })
    }

    /// `user@host:port/dbname`, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Opens a connection for queries; its driver runs on polylock's runtime.
    pub async fn query_connection(&self) -> Result<Client> {
        let (client, connection) = self
            .settings
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.error(&e))?;
        crate::runtime::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Opens a connection whose notifications (and notices) go to `sink`;
    /// the driver stops, and `sink` is dropped, when the connection ends.
    pub async fn notifying_connection(
        &self,
        sink: tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>,
    ) -> Result<Client> {
        let (client, mut connection) = self
            .settings
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.error(&e))?;
        crate::runtime::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(note)) => {
                        if sink.send(note).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        Ok(client)
    }

    /// The driver's `error` as polylock's, naming the server (never the password).
    pub fn error(&self, error: &tokio_postgres::Error) -> Error {
        error_of(error, &self.address)
    }
}

/// The driver's `error` as polylock's: refused credentials or privileges
/// are [`Error::Auth`], a lost or refused connection [`Error::Connection`]
/// (transient), the rest [`Error::Backend`].
pub fn error_of(error: &tokio_postgres::Error, address: &str) -> Error {
    if let Some(tls) = classify(error, "PostgreSQL server", "sslrootcert", "sslcert, sslkey") {
        return tls;
    }
    match error.as_db_error() {
        Some(db) => {
            let code = db.code();
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                Error::Auth(format!(
                    "PostgreSQL at {address} refused the credentials: {}",
                    db.message()
                ))
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                Error::Auth(format!("PostgreSQL at {address}: {}", db.message()))
            } else if code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
            {
                Error::Connection(format!("PostgreSQL at {address}: {}", db.message()))
            } else {
                Error::Backend(format!(
                    "PostgreSQL at {address}: {} ({})",
                    db.message(),
                    code.code()
                ))
            }
        }
        None => Error::Connection(format!("PostgreSQL at {address}: {error}")),
    }
}

/// Whether `error` is a race PostgreSQL resolved by aborting us (deadlock,
/// serialization failure): try again.
pub fn is_race(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// rustls' client configuration for `config`'s `sslmode`, CA and client
/// certificate (used only when the connection is TLS).
fn tls_config(config: &PostgresConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Backend(format!("TLS setup failed: {e}")))?;
    let builder = match config.ssl_mode {
        SslMode::VerifyFull => {
            builder.with_root_certificates(roots(config.ssl_root_cert.as_deref())?)
        }
        SslMode::VerifyCa => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly::new(
                roots(config.ssl_root_cert.as_deref())?,
                provider,
            )?)),
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider))),
    };
    match &config.ssl_client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| Error::invalid(format!("client certificate and key do not fit: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}
