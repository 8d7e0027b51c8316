//! TLS for `ldlms://`: the rustls client configuration (CA, client
//! certificate for mutual TLS, ALPN `h2`) from the shared pieces in
//! [`crate::backends::tls`].

use std::sync::Arc;

use tokio_rustls::rustls::{self, crypto::ring, pki_types::ServerName};
use tokio_rustls::TlsConnector;

use super::config::LdlmConfig;
use crate::backends::tls::{certificates, private_key, roots, AnyServerCertificate};
use crate::error::{Error, Result};

/// The connector for `config`'s TLS settings, and the name the server's
/// certificate must carry.
pub(crate) fn connector(config: &LdlmConfig) -> Result<(TlsConnector, ServerName<'static>)> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Backend(format!("TLS setup failed: {e}")))?;
    let builder = if config.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(config.ca_file.as_deref())?)
    };
    let mut tls = match &config.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| Error::invalid(format!("client certificate and key do not fit: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(config.host.clone()).map_err(|_| {
        Error::invalid(format!(
            "{:?} is not a host name a certificate can carry",
            config.host
        ))
    })?;
    Ok((TlsConnector::from(Arc::new(tls)), name))
}

/// The kind of error a TLS failure found in `error`'s source chain is
/// ([`crate::backends::tls::classify`], told of the LDLM server's options).
pub(crate) fn classify(error: &(dyn std::error::Error + 'static)) -> Option<Error> {
    crate::backends::tls::classify(error, "LDLM server", "ca=", "cert=, key=")
}
