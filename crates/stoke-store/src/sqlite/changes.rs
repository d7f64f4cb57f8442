//! The SQLite side of the change feed ([`ChangeFeed`]): one node serves an SQLite file, so the
//! feed is a broadcast inside this process; a listener that falls behind hears
//! [`Change::Everything`].

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::changes::{Change, ChangeFeed, ChangeListener};
use crate::{SqliteStore, StoreError};

/// Changes a listener may fall behind by before it is told to forget everything.
pub(super) const BACKLOG: usize = 1024;

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn publish(&self, change: &Change) -> Result<(), StoreError> {
        // No listener is not an error: nothing caches.
        let _ = self.changes.send(change.clone());
        Ok(())
    }

    async fn listen(&self) -> Result<Box<dyn ChangeListener>, StoreError> {
        Ok(Box::new(Listener(self.changes.subscribe())))
    }
}

struct Listener(broadcast::Receiver<Change>);

#[async_trait]
impl ChangeListener for Listener {
    async fn next(&mut self) -> Result<Change, StoreError> {
        match self.0.recv().await {
            Ok(c) => Ok(c),
            Err(broadcast::error::RecvError::Lagged(_)) => Ok(Change::Everything),
            Err(broadcast::error::RecvError::Closed) => Err(StoreError::Backend {
                message: "the change feed closed".into(),
                source: "the store was dropped".into(),
            }),
        }
    }
}
