//! Backend URLs: parse `memory://…`, `consul://…`, `mongodb://…`, `ldlm://…` and connect the backend
//! they name. URLs may carry secrets, so they are shown only through [`redact`].

use std::sync::Arc;

use url::Url;

use crate::backend::Backend;
use crate::backends::{consul, ldlm, memory, mongo};
use crate::error::{Error, Result};
use crate::options::ClientOptions;

/// The URL schemes this build understands.
pub const SCHEMES: &[&str] = &[
    "memory",
    "consul",
    "consul+https",
    "mongodb",
    "mongodb+srv",
    "ldlm",
    "ldlms",
];

/// Query parameters whose values are secrets.
const SECRET_PARAMS: &[&str] = &["token", "password"];

/// Parses `text` as a backend URL, with errors that never echo secrets.
pub(crate) fn parse(text: &str) -> Result<Url> {
    Url::parse(text).map_err(|e| {
        Error::invalid(format!(
            "not a backend URL ({e}): {}; expected one of {}",
            redact(text),
            SCHEMES
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Connects the backend `options.url` names, every call traced
/// ([`crate::traced`]).
pub(crate) async fn connect(options: &ClientOptions) -> Result<Arc<dyn Backend>> {
    let backend = connect_untraced(options).await?;
    Ok(Arc::new(crate::traced::TracedBackend(backend)))
}

async fn connect_untraced(options: &ClientOptions) -> Result<Arc<dyn Backend>> {
    let url = parse(&options.url)?;
    match url.scheme() {
        "memory" => Ok(Arc::new(memory::MemoryBackend::from_url(&url)?)),
        "consul" | "consul+https" => {
            let config = consul::ConsulConfig::from_url(&url, options.token.clone())?;
            Ok(Arc::new(consul::ConsulBackend::connect(config).await?))
        }
        "mongodb" | "mongodb+srv" => {
            let config = mongo::MongoConfig::from_url(&url, options.token.clone())?;
            Ok(Arc::new(mongo::MongoBackend::connect(config).await?))
        }
        "ldlm" | "ldlms" => {
            let config = ldlm::LdlmConfig::from_url(&url, options.token.clone())?;
            Ok(Arc::new(ldlm::LdlmBackend::connect(config).await?))
        }
        other => Err(Error::invalid(format!(
            "unknown backend scheme {other:?}; expected one of {}",
            SCHEMES.join(", ")
        ))),
    }
}

/// `text` with any password and secret query values replaced by `***`.
pub fn redact(text: &str) -> String {
    let Ok(mut url) = Url::parse(text) else {
        return "<unparseable URL>".into();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if SECRET_PARAMS.contains(&k.as_ref()) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_tokens() {
        let shown = redact("consul://user:hunter2@127.0.0.1:8500/?token=s3cret&prefix=a");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("prefix=a"), "{shown}");
        let shown = redact("ldlms://:hunter2@127.0.0.1:3144/?ca=/ca.pem");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn parse_errors_do_not_echo_secrets() {
        let error = parse("consul://user:hunter2@[::1").unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
