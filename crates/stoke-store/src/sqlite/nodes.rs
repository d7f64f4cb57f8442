//! The SQLite side of the node registry ([`NodeStore`] for [`SqliteStore`]): the `nodes`
//! table of migration 0010, which holds the one node of the file.

use async_trait::async_trait;
use sqlx::Row;

use crate::nodes::{NodeRecord, NodeStore};
use crate::{SqliteStore, StoreError};

crate::backend::node_rows!(sqlx::sqlite::SqliteRow);

#[async_trait]
impl NodeStore for SqliteStore {
    async fn register_node(&self, n: &NodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (node_id, address, started_ms, heartbeat_ms, warm, in_flight) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET \
             address = excluded.address, started_ms = excluded.started_ms, \
             heartbeat_ms = excluded.heartbeat_ms, warm = excluded.warm, \
             in_flight = excluded.in_flight",
        )
        .bind(&n.node_id)
        .bind(&n.address)
        .bind(n.started_ms)
        .bind(n.heartbeat_ms)
        .bind(i64::from(n.warm))
        .bind(i64::from(n.load))
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn heartbeat_node(
        &self,
        node_id: &str,
        heartbeat_ms: i64,
        warm: u32,
        load: u32,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE nodes SET heartbeat_ms = ?, warm = ?, in_flight = ? WHERE node_id = ?",
        )
        .bind(heartbeat_ms)
        .bind(i64::from(warm))
        .bind(i64::from(load))
        .bind(node_id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT node_id, address, started_ms, heartbeat_ms, warm, in_flight FROM nodes \
             ORDER BY node_id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(node).collect())
    }

    async fn remove_node(&self, node_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM nodes WHERE node_id = ?")
            .bind(node_id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
