//! The PostgreSQL side of the change feed ([`ChangeFeed`]): `NOTIFY` on one channel
//! ([`CHANNEL`]), heard by every node's `LISTEN` (one connection of the pool each). A
//! listener whose connection is lost reconnects on its next read, and answers
//! [`Change::Everything`] first: what was sent meanwhile is lost.

use async_trait::async_trait;
use sqlx::postgres::PgListener;

use crate::changes::{CHANNEL, Change, ChangeFeed, ChangeListener};
use crate::{PgStore, StoreError};

#[async_trait]
impl ChangeFeed for PgStore {
    async fn publish(&self, change: &Change) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(change.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen(&self) -> Result<Box<dyn ChangeListener>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Box::new(Listener(listener)))
    }
}

struct Listener(PgListener);

#[async_trait]
impl ChangeListener for Listener {
    async fn next(&mut self) -> Result<Change, StoreError> {
        match self.0.try_recv().await? {
            Some(n) => Ok(Change::parse(n.payload())),
            // The connection was lost; the next read reconnects (and listens again).
            None => Ok(Change::Everything),
        }
    }
}
