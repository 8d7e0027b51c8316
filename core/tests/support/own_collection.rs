//! MongoDB locks in collections of their own, emptied afterwards: a test or
//! bench row that leaves thousands of names behind then does not slow the
//! ones after it (FerretDB v1 scans a whole collection for every lookup,
//! even by `_id`).

use polylock::backends::mongo::MongoConfig;

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
    // polylock's own reading of the URL: the database, and a driver URL
    // without polylock's options (the driver refuses them).
    let parsed = url::Url::parse(url).expect("a mongodb:// URL");
    let config = MongoConfig::from_url(&parsed, None).expect("a valid mongodb:// URL");
    let client = match mongodb::Client::with_uri_str(config.driver_url().expose()).await {
        Ok(client) => client,
        Err(error) => return eprintln!("emptying {collection}: {error}"),
    };
    let coll = client
        .database(&config.database)
        .collection::<mongodb::bson::Document>(collection);
    if let Err(error) = coll.delete_many(mongodb::bson::doc! {}).await {
        eprintln!("emptying {collection}: {error}");
    }
}
