//! The PostgreSQL store against a real PostgreSQL started for the test (`chathook-testkit`).

use chathook_store::postgres::LATEST_VERSION;
use chathook_store::PgStore;
use chathook_testkit::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_the_schema_once() {
    let pg = Postgres::start().unwrap();
    let url = pg.database("together").unwrap();
    // four nodes start at once against an empty database
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url, 2).await })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.unwrap().unwrap());
    }
    for store in &stores {
        assert_eq!(store.schema_version().await.unwrap(), LATEST_VERSION);
    }
    // each step recorded once, and a later start changes nothing
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        count(&client).await,
        (LATEST_VERSION as i64, LATEST_VERSION as i64)
    );
    PgStore::connect(&url, 1).await.unwrap();
    assert_eq!(
        count(&client).await,
        (LATEST_VERSION as i64, LATEST_VERSION as i64)
    );
    // the steps' tables are there
    for table in ["tokens", "profiles", "system_uids"] {
        let row = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(table));
    }
}

/// (steps recorded, distinct versions recorded).
async fn count(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT version) FROM chathook_migrations",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_bad_url_or_an_absent_server_is_a_clear_error() {
    let e = PgStore::connect("postgres://[not a url", 1)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("bad PostgreSQL URL"), "{e}");
    // nothing listens on port 9 of loopback
    let e = PgStore::connect("host=127.0.0.1 port=9 user=postgres", 1)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("PostgreSQL connection"), "{e}");
}
