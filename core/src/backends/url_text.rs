//! Text inside backend URLs.

/// `text` (a URL's user name, password or path) percent-decoded; a `+`
/// stays a `+` (it means a space only in query strings).
pub(crate) fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
