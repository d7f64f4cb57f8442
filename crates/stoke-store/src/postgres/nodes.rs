//! The PostgreSQL side of the node registry ([`NodeStore`] for [`PgStore`]): the `nodes`
//! table of migration 0002, one row per node sharing the database.

use async_trait::async_trait;
use sqlx::Row;

use crate::nodes::{NodeRecord, NodeStore};
use crate::{PgStore, StoreError};

crate::backend::node_rows!(sqlx::postgres::PgRow);

#[async_trait]
impl NodeStore for PgStore {
    async fn register_node(&self, n: &NodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (node_id, address, started_ms, heartbeat_ms, warm, in_flight) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node_id) DO UPDATE SET \
             address = EXCLUDED.address, started_ms = EXCLUDED.started_ms, \
             heartbeat_ms = EXCLUDED.heartbeat_ms, warm = EXCLUDED.warm, \
             in_flight = EXCLUDED.in_flight",
        )
        .bind(&n.node_id)
        .bind(&n.address)
        .bind(n.started_ms)
        .bind(n.heartbeat_ms)
        .bind(i64::from(n.warm))
        .bind(i64::from(n.load))
        .execute(&self.pool)
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
            "UPDATE nodes SET heartbeat_ms = $1, warm = $2, in_flight = $3 WHERE node_id = $4",
        )
        .bind(heartbeat_ms)
        .bind(i64::from(warm))
        .bind(i64::from(load))
        .bind(node_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT node_id, address, started_ms, heartbeat_ms, warm, in_flight FROM nodes \
             ORDER BY node_id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(node).collect())
    }

    async fn remove_node(&self, node_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
