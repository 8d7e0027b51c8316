//! Backend URLs: parse `memory://…`, `consul://…`, `mongodb://…`, `ldlm://…`, `postgres://…` and connect the backend
//! they name, from one table of schemes (`TABLE`): the parse errors,
//! [`SCHEMES`] and connecting all read it. Every backend but `memory://`
//! is behind the cargo feature of its row (`consul`, `mongodb`, `ldlm`, `postgres`, all
//! on by default); a URL whose backend this build left out is an invalid
//! argument naming the feature. URLs may carry secrets, so they are shown
//! only through [`redact`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use url::Url;

use crate::backend::Backend;
use crate::backends::memory;
use crate::error::{Error, Result};
use crate::options::ClientOptions;

/// A backend being connected.
type Connecting<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>>> + Send + 'a>>;

/// Connects the backend a URL of its schemes names.
type Connect = for<'a> fn(&'a Url, &'a ClientOptions) -> Connecting<'a>;

/// One backend's row in the table of schemes.
struct Row {
    /// The URL schemes it serves.
    schemes: &'static [&'static str],
    /// The cargo feature that builds it; `None`: always built.
    feature: Option<&'static str>,
    /// Connects it; `None` when this build left it out (its feature off).
    connect: Option<Connect>,
}

/// Every backend polylock knows, built or not.
const TABLE: &[Row] = &[
    Row {
        schemes: &["memory"],
        feature: None,
        connect: Some(connect_memory),
    },
    Row {
        schemes: &["consul", "consul+https"],
        feature: Some("consul"),
        #[cfg(feature = "consul")]
        connect: Some(connect_consul),
        #[cfg(not(feature = "consul"))]
        connect: None,
    },
    Row {
        schemes: &["mongodb", "mongodb+srv"],
        feature: Some("mongodb"),
        #[cfg(feature = "mongodb")]
        connect: Some(connect_mongo),
        #[cfg(not(feature = "mongodb"))]
        connect: None,
    },
    Row {
        schemes: &["ldlm", "ldlms"],
        feature: Some("ldlm"),
        #[cfg(feature = "ldlm")]
        connect: Some(connect_ldlm),
        #[cfg(not(feature = "ldlm"))]
        connect: None,
    },
    Row {
        schemes: &["postgres", "postgresql"],
        feature: Some("postgres"),
        #[cfg(feature = "postgres")]
        connect: Some(connect_postgres),
        #[cfg(not(feature = "postgres"))]
        connect: None,
    },
];

fn connect_memory<'a>(url: &'a Url, _: &'a ClientOptions) -> Connecting<'a> {
    Box::pin(async move {
        let backend: Arc<dyn Backend> = Arc::new(memory::MemoryBackend::from_url(url)?);
        Ok(backend)
    })
}

#[cfg(feature = "consul")]
fn connect_consul<'a>(url: &'a Url, options: &'a ClientOptions) -> Connecting<'a> {
    use crate::backends::consul::{ConsulBackend, ConsulConfig};
    Box::pin(async move {
        let config = ConsulConfig::from_url(url, options.token.clone())?;
        let backend: Arc<dyn Backend> = Arc::new(ConsulBackend::connect(config).await?);
        Ok(backend)
    })
}

#[cfg(feature = "mongodb")]
fn connect_mongo<'a>(url: &'a Url, options: &'a ClientOptions) -> Connecting<'a> {
    use crate::backends::mongo::{MongoBackend, MongoConfig};
    Box::pin(async move {
        let config = MongoConfig::from_url(url, options.token.clone())?;
        let backend: Arc<dyn Backend> = Arc::new(MongoBackend::connect(config).await?);
        Ok(backend)
    })
}

#[cfg(feature = "ldlm")]
fn connect_ldlm<'a>(url: &'a Url, options: &'a ClientOptions) -> Connecting<'a> {
    use crate::backends::ldlm::{LdlmBackend, LdlmConfig};
    Box::pin(async move {
        let config = LdlmConfig::from_url(url, options.token.clone())?;
        let backend: Arc<dyn Backend> = Arc::new(LdlmBackend::connect(config).await?);
        Ok(backend)
    })
}

#[cfg(feature = "postgres")]
fn connect_postgres<'a>(url: &'a Url, options: &'a ClientOptions) -> Connecting<'a> {
    use crate::backends::postgres::{PostgresBackend, PostgresConfig};
    Box::pin(async move {
        let config = PostgresConfig::from_url(url, options.token.clone())?;
        let backend: Arc<dyn Backend> = Arc::new(PostgresBackend::connect(config).await?);
        Ok(backend)
    })
}

/// How many schemes the built rows of [`TABLE`] serve.
const fn built_schemes() -> usize {
    let (mut count, mut row) = (0, 0);
    while row < TABLE.len() {
        if TABLE[row].connect.is_some() {
            count += TABLE[row].schemes.len();
        }
        row += 1;
    }
    count
}

/// The URL schemes this build understands, in the order of the table of
/// schemes (the backends built with this build's features).
pub const SCHEMES: &[&str] = &{
    let mut schemes = [""; built_schemes()];
    let (mut at, mut row) = (0, 0);
    while row < TABLE.len() {
        if TABLE[row].connect.is_some() {
            let mut scheme = 0;
            while scheme < TABLE[row].schemes.len() {
                schemes[at] = TABLE[row].schemes[scheme];
                at += 1;
                scheme += 1;
            }
        }
        row += 1;
    }
    schemes
};

/// Query parameters whose values are secrets.
const SECRET_PARAMS: &[&str] = &["token", "password"];

/// `SCHEMES` as `memory://, consul://, …`.
fn expected() -> String {
    SCHEMES
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `text` as a backend URL, with errors that never echo secrets.
pub(crate) fn parse(text: &str) -> Result<Url> {
    Url::parse(text).map_err(|e| {
        Error::invalid(format!(
            "not a backend URL ({e}): {}; expected one of {}",
            redact(text),
            expected()
        ))
    })
}

/// The connect function of `scheme`'s row, or why there is none.
pub(crate) fn connector(scheme: &str) -> Result<Connect> {
    let Some(row) = TABLE.iter().find(|row| row.schemes.contains(&scheme)) else {
        return Err(Error::invalid(format!(
            "unknown backend scheme {scheme:?}; expected one of {}",
            expected()
        )));
    };
    row.connect.ok_or_else(|| {
        Error::invalid(format!(
            "polylock was built without the `{}` feature, which {scheme}:// URLs need; \
             this build understands {}",
            row.feature.unwrap_or("?"),
            expected()
        ))
    })
}

/// Connects the backend `options.url` names, every call traced
/// ([`crate::traced`]).
pub(crate) async fn connect(options: &ClientOptions) -> Result<Arc<dyn Backend>> {
    let url = parse(&options.url)?;
    let backend = connector(url.scheme())?(&url, options).await?;
    Ok(Arc::new(crate::traced::TracedBackend(backend)))
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
    fn schemes_are_the_built_rows_of_the_table() {
        let built: Vec<&str> = TABLE
            .iter()
            .filter(|row| row.connect.is_some())
            .flat_map(|row| row.schemes.iter().copied())
            .collect();
        assert_eq!(SCHEMES, built.as_slice());
        assert_eq!(SCHEMES.first(), Some(&"memory"));
        for (scheme, feature) in [
            ("consul", "consul"),
            ("mongodb", "mongodb"),
            ("ldlm", "ldlm"),
            ("postgres", "postgres"),
        ] {
            let built = TABLE
                .iter()
                .any(|row| row.feature == Some(feature) && row.connect.is_some());
            assert_eq!(SCHEMES.contains(&scheme), built, "{scheme}");
        }
    }

    #[test]
    fn unknown_and_left_out_schemes_are_invalid_arguments() {
        let error = connector("etcd").expect_err("no etcd backend");
        assert_eq!(error.kind(), crate::ErrorKind::InvalidArgument);
        assert!(
            error
                .to_string()
                .contains("unknown backend scheme \"etcd\""),
            "{error}"
        );
        for row in TABLE.iter().filter(|row| row.connect.is_none()) {
            let error = connector(row.schemes[0]).expect_err("left out");
            assert_eq!(error.kind(), crate::ErrorKind::InvalidArgument);
            let feature = format!("built without the `{}` feature", row.feature.unwrap());
            assert!(error.to_string().contains(&feature), "{error}");
        }
    }

    #[test]
    fn parse_errors_do_not_echo_secrets() {
        let error = parse("consul://user:hunter2@[::1").unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
