//! What the PostgreSQL store does beyond the shared suite: nodes opening one database at once
//! migrate it once, a database a newer Stoke migrated is refused and left as it was, claims of
//! several nodes never take the same event, and blobs go in chunks through a cache that is
//! checked on every read.

use super::testing::shared;
use super::{MIGRATOR, PgBlobStore, PgStore};
use crate::conformance::function;
use crate::queue::{NewEvent, Queue};
use crate::{AccountStore, BlobStore, FunctionStore, MasterKey};

fn event(i: usize, account: &stoke_core::AccountId) -> NewEvent {
    NewEvent {
        request_id: format!("r-{i}"),
        account: account.clone(),
        function_name: "f".into(),
        qualifier: "$LATEST".into(),
        payload: b"{}".to_vec(),
        trace_id: None,
        enqueued_ms: 0,
        next_run_ms: 0,
        hops: 0,
        caller: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let cluster = shared();
    let url = cluster.create_database();
    let master = MasterKey::generate();
    let opens = (0..4).map(|i| {
        let (url, master) = (url.clone(), master.clone());
        tokio::spawn(async move { PgStore::open(&url, master, &format!("n{i}")).await })
    });
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().unwrap());
    }
    let s = &stores[0];
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(applied, i64::try_from(MIGRATOR.iter().count()).unwrap());
    let (k, _) = s.ensure_default_account().await.unwrap();
    // Every node sees the one admin the first made.
    for other in &stores[1..] {
        assert_eq!(
            other.ensure_default_account().await.unwrap(),
            (k.clone(), false)
        );
    }
    s.insert_function(&function(&k.account, "kept", "r"))
        .await
        .unwrap();

    // A newer Stoke applied a migration this one does not know.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer stoke', TRUE, '\\x00', 0)",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    let err = PgStore::open(&url, master.clone(), "n9").await.unwrap_err();
    let text = format!("{err}");
    assert!(text.contains("migrated by a newer Stoke"), "{text}");
    assert!(text.contains("99990101000000"), "{text}");
    assert!(s.get_function(&k.account, "kept").await.unwrap().is_some());
    let applied_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(applied_after, applied + 1, "nothing was migrated");

    // Another master key is refused too.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 99990101000000")
        .execute(&s.pool)
        .await
        .unwrap();
    let err = PgStore::open(&url, MasterKey::generate(), "n9")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another master key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_several_nodes_never_take_the_same_event() {
    let cluster = shared();
    let url = cluster.create_database();
    let s = PgStore::open(&url, MasterKey::generate(), "n0")
        .await
        .unwrap();
    let (k, _) = s.ensure_default_account().await.unwrap();
    let events: Vec<_> = (0..300).map(|i| (event(i, &k.account), false)).collect();
    s.enqueue(&events, "n0", 0).await.unwrap();
    let claims = (0..4).map(|n| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim(&format!("n{n}"), 1, 60_000, 7).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|e| e.id));
            }
        })
    });
    let mut all = Vec::new();
    for c in claims {
        all.extend(c.await.unwrap());
    }
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((total, all.len()), (300, 300), "each event claimed once");
}

#[test]
fn blobs_go_in_chunks_and_a_damaged_cache_is_read_again() {
    let cluster = shared();
    let url = cluster.create_database();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = PgBlobStore::open(&url, dir_a.path()).unwrap();
    let b = PgBlobStore::open(&url, dir_b.path()).unwrap();
    let zip: Vec<u8> = (0..(super::blobs::CHUNK * 5 / 2))
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let sha = a.put(&zip).unwrap();
    // Another node reads it from the database (three chunks) into its cache.
    assert_eq!(b.get(&sha).unwrap().unwrap(), zip);
    let cached = dir_b.path().join("sha256").join(&sha[..2]).join(&sha);
    assert_eq!(std::fs::read(&cached).unwrap(), zip);
    // A damaged cached copy is not served.
    std::fs::write(&cached, b"not the zip").unwrap();
    assert_eq!(b.get(&sha).unwrap().unwrap(), zip);
    assert_eq!(std::fs::read(&cached).unwrap(), zip);
    // Removed on one node, it is gone on the other, cache or not.
    a.remove(&sha).unwrap();
    assert!(b.get(&sha).unwrap().is_none());
    assert!(!cached.exists());
}
