//! MongoDB locks in collections of their own, emptied afterwards: a test or
//! bench row that leaves thousands of names behind then does not slow the
//! ones after it (FerretDB v1 scans a whole collection for every lookup,
//! even by `_id`).

/// `url` with its locks (and their events and sessions) in collection
/// `collection`.
pub fn own_collection(url: &str, collection: &str) -> String {
    let mut url = url::Url::parse(url).expect("a mongodb:// URL");
    url.query_pairs_mut().append_pair("collection", collection);
    url.into()
}

/// Deletes every lock document of `collection` in the database `url`
/// names (a failure is only reported: the data is a test's). Its events
/// and sessions collections stay: they are small, and a task of a client
/// just dropped may still write there (into a dropped events collection
/// that would make a plain one, which no cursor can tail).
pub async fn empty_own_collection(url: &str, collection: &str) {
    let mut parsed = url::Url::parse(url).expect("a mongodb:// URL");
    let database = match parsed.path().trim_matches('/') {
        "" => "polylock".to_string(),
        name => name.to_string(),
    };
    // The driver refuses polylock's own options.
    let driver_options: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(name, _)| name != "collection" && name != "events_collection")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    parsed.set_query(None);
    if !driver_options.is_empty() {
        parsed.query_pairs_mut().extend_pairs(driver_options);
    }
    let client = match mongodb::Client::with_uri_str(parsed.as_str()).await {
        Ok(client) => client,
        Err(error) => return eprintln!("emptying {collection}: {error}"),
    };
    let coll = client
        .database(&database)
        .collection::<mongodb::bson::Document>(collection);
    if let Err(error) = coll.delete_many(mongodb::bson::doc! {}).await {
        eprintln!("emptying {collection}: {error}");
    }
}
