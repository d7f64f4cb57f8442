//! The conformance suite ([`crate::conformance`]) run on SQLite: each case on a database file
//! of its own (WAL, the pool of the real server) and a blob folder beside it.

use async_trait::async_trait;

use crate::conformance::Factory;
use crate::{FsBlobStore, MasterKey, SqliteStore};

/// A temporary folder for one test's database and blobs, and the master key it is sealed with.
struct Sqlite {
    dir: tempfile::TempDir,
    master: MasterKey,
}

impl Sqlite {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            master: MasterKey::generate(),
        }
    }
}

#[async_trait(?Send)]
impl Factory for Sqlite {
    type Store = SqliteStore;
    type Blobs = FsBlobStore;

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("stoke.db"), self.master.clone())
            .await
            .unwrap()
    }

    fn blobs(&self) -> FsBlobStore {
        FsBlobStore::open(self.dir.path().join("blobs")).unwrap()
    }
}

crate::conformance_tests!(Sqlite::new());

/// The in-memory store (what engine tests use) passes the suite too.
mod in_memory {
    use super::*;

    struct Memory(Sqlite);

    #[async_trait(?Send)]
    impl Factory for Memory {
        type Store = SqliteStore;
        type Blobs = FsBlobStore;

        async fn store(&self) -> SqliteStore {
            SqliteStore::in_memory().await.unwrap()
        }

        fn blobs(&self) -> FsBlobStore {
            self.0.blobs()
        }
    }

    crate::conformance_tests!(Memory(Sqlite::new()));
}
