//! MongoDB locks in collections of their own, dropped afterwards: a test or
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

/// Drops `collection` and its events and sessions collections from the
/// database `url` names (a failure is only reported: the data is a test's).
pub async fn drop_own_collection(url: &str, collection: &str) {
    let parsed = url::Url::parse(url).expect("a mongodb:// URL");
    let database = match parsed.path().trim_matches('/') {
        "" => "polylock".to_string(),
        name => name.to_string(),
    };
    let client = match mongodb::Client::with_uri_str(url).await {
        Ok(client) => client,
        Err(error) => return eprintln!("dropping {collection}: {error}"),
    };
    let db = client.database(&database);
    for name in [
        collection.to_string(),
        format!("{collection}_events"),
        format!("{collection}_sessions"),
    ] {
        let coll = db.collection::<mongodb::bson::Document>(&name);
        if let Err(error) = coll.drop().await {
            eprintln!("dropping {name}: {error}");
        }
    }
}
