//! TLS shared by the backends that open their own connections (`ldlms://`,
//! PostgreSQL): CA roots, PEM certificates and keys, a verifier that
//! accepts any certificate, and the classification of TLS failures into
//! error kinds.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{Error, Result};

/// The roots `ca_file` holds, or the public web PKI roots without one.
pub(crate) fn roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| Error::invalid(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// The PEM certificates in `path` (at least one).
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::invalid(format!("certificate file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "certificate file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The PEM private key in `path`.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::invalid(format!("key file {}: {e}", path.display())))
}

/// The kind of error a TLS failure found in `error`'s source chain is:
/// the server refusing our certificate is [`Error::Auth`], its certificate
/// not verifying is [`Error::Connection`] with a message saying so.
/// `server` names the server in messages ("LDLM server"); `ca_option` and
/// `cert_options` the URL options that would fix it.
pub(crate) fn classify(
    error: &(dyn std::error::Error + 'static),
    server: &str,
    ca_option: &str,
    cert_options: &str,
) -> Option<Error> {
    let mut source = Some(error);
    while let Some(current) = source {
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return Some(match tls {
                rustls::Error::AlertReceived(alert) => Error::Auth(format!(
                    "the {server} refused the TLS handshake ({alert:?}); does it need a client certificate ({cert_options})?"
                )),
                rustls::Error::InvalidCertificate(why) => Error::Connection(format!(
                    "the {server}'s certificate did not verify ({why:?}); is {ca_option} right?"
                )),
                other => Error::Connection(format!("TLS with the {server} failed: {other}")),
            });
        }
        source = current.source();
    }
    None
}

/// Accepts any certificate (LDLM's `skip_verify=true`, PostgreSQL's
/// `sslmode=require` without a CA): the handshake's signatures are still
/// checked, the certificate chain and name are not.
#[derive(Debug)]
pub(crate) struct AnyServerCertificate(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
