//! The conformance suite ([`crate::conformance`]) run on PostgreSQL: each case on a database of
//! its own in the process's throw-away cluster ([`super::testing`]), and a blob cache folder of
//! its own.

use std::sync::Arc;

use async_trait::async_trait;

use super::testing::{Cluster, shared};
use crate::conformance::Factory;
use crate::{MasterKey, PgBlobStore, PgStore};

/// One test's database (in the shared cluster, which it keeps running), blob cache and master
/// key.
struct Postgres {
    _cluster: Arc<Cluster>,
    url: String,
    cache: tempfile::TempDir,
    master: MasterKey,
    owner: String,
}

impl Postgres {
    fn new() -> Self {
        let cluster = shared();
        let url = cluster.create_database();
        Self {
            _cluster: cluster,
            url,
            cache: tempfile::tempdir().unwrap(),
            master: MasterKey::generate(),
            owner: uuid::Uuid::new_v4().to_string(),
        }
    }
}

#[async_trait(?Send)]
impl Factory for Postgres {
    type Store = PgStore;
    type Blobs = PgBlobStore;

    async fn store(&self) -> PgStore {
        PgStore::open(&self.url, self.master.clone(), &self.owner)
            .await
            .unwrap()
    }

    fn blobs(&self) -> PgBlobStore {
        PgBlobStore::open(&self.url, self.cache.path()).unwrap()
    }
}

crate::conformance_tests!(Postgres::new());
