//! Event source mappings: the [`MappingStore`] trait and the record it keeps ([`Mapping`]).
//! A mapping is known by its `UUID` (unique in the installation), listed per account by
//! function and by source in `UUID` order, and written with a compare-and-swap of its
//! `revision` (so the API and a poller never silently overwrite each other). The pollers run
//! each enabled mapping on one node at a time through a lease in the same row, renewed by its
//! holder and taken over once it has expired.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stoke_core::AccountId;

use crate::StoreError;

/// One of a mapping's `SourceAccessConfigurations` (`Type`, `URI`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessConfig {
    pub kind: String,
    pub uri: String,
}

/// An event source mapping as the control plane keeps it; `None` members take Lambda's
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub uuid: String,
    pub account: AccountId,
    /// The function's name, and the qualifier its ARN named (a version or an alias).
    pub function_name: String,
    pub qualifier: Option<String>,
    /// The broker kind (`REDIS_URL`, `NATS_URL`, `AMQP_URL`) and its endpoints.
    pub endpoint_kind: String,
    pub endpoints: Vec<String>,
    /// The stream, subject or queue (`Topics` or `Queues`: one).
    pub topic: String,
    /// What `ListEventSourceMappings --event-source-arn` compares: the source's own name
    /// (`<first endpoint>/<topic>`), also the records' `eventSourceARN`.
    pub source: String,
    /// The consumer group or durable consumer (the mapping's UUID unless the user named one).
    pub consumer_group: String,
    /// Where a new consumer group starts: `TRIM_HORIZON` (the stream's start) or `LATEST`.
    pub starting_position: String,
    pub access: Vec<AccessConfig>,
    pub batch_size: u32,
    pub batching_window_seconds: u32,
    pub maximum_concurrency: Option<u32>,
    pub report_batch_item_failures: bool,
    /// `FilterCriteria.Filters[].Pattern`, as given.
    pub filters: Vec<String>,
    pub on_failure: Option<String>,
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_record_age_seconds: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    /// Whether pollers should run it (the user's `Enabled`).
    pub enabled: bool,
    pub state: String,
    pub state_transition_reason: String,
    pub last_processing_result: String,
    /// Seconds since the epoch.
    pub last_modified: f64,
    /// Changes at every write; a write names the one it read.
    pub revision: String,
}

/// Event source mappings and their pollers' leases.
#[async_trait]
pub trait MappingStore: Send + Sync + 'static {
    /// Stores a new mapping; [`StoreError::Conflict`] if its UUID is taken.
    async fn insert_mapping(&self, m: &Mapping) -> Result<(), StoreError>;

    /// The mapping `uuid`, whatever its account.
    async fn get_mapping(&self, uuid: &str) -> Result<Option<Mapping>, StoreError>;

    /// Replaces the mapping if its revision is still `expected`: [`StoreError::Stale`] if
    /// another write came first, [`StoreError::NotFound`] if it is gone.
    async fn replace_mapping(&self, m: &Mapping, expected: &str) -> Result<(), StoreError>;

    /// Removes the mapping; what it was, if it was there.
    async fn delete_mapping(&self, uuid: &str) -> Result<Option<Mapping>, StoreError>;

    /// `account`'s mappings in UUID order after `after`, at most `limit`, of `function` (its
    /// name) and of `source` when they are given.
    async fn list_mappings(
        &self,
        account: &AccountId,
        function: Option<&str>,
        source: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Mapping>, StoreError>;

    /// Leases to `owner`, until `now_ms + lease_ms`, every enabled mapping whose lease is free,
    /// expired or already `owner`'s (renewing those), and answers them all.
    async fn claim_mappings(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<Mapping>, StoreError>;

    /// Gives up every lease `owner` holds (a node that stops).
    async fn release_mappings(&self, owner: &str) -> Result<(), StoreError>;
}

/// The statements both backends run, with SQLite's `?N` placeholders (PostgreSQL's are the
/// same text with `$N`: [`pg`]). `enabled` binds as a boolean in both.
pub(crate) mod sql {
    pub const INSERT: &str = "INSERT INTO event_source_mappings (uuid, account_id, \
        function_name, source, enabled, revision, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    pub const GET: &str = "SELECT record FROM event_source_mappings WHERE uuid = ?1";
    pub const REPLACE: &str = "UPDATE event_source_mappings SET function_name = ?2, source = ?3, \
        enabled = ?4, revision = ?5, record = ?6 WHERE uuid = ?1 AND revision = ?7";
    pub const DELETE: &str = "DELETE FROM event_source_mappings WHERE uuid = ?1 RETURNING record";
    pub const LIST: &str = "SELECT record FROM event_source_mappings WHERE account_id = ?1 \
        AND (?2 IS NULL OR function_name = ?2) AND (?3 IS NULL OR source = ?3) \
        AND uuid > ?4 ORDER BY uuid LIMIT ?5";
    pub const CLAIM: &str = "UPDATE event_source_mappings SET lease_owner = ?1, \
        lease_until_ms = ?3 WHERE enabled = ?4 AND (lease_owner IS NULL OR lease_owner = ?1 \
        OR lease_until_ms < ?2) RETURNING record";
    pub const RELEASE: &str = "UPDATE event_source_mappings SET lease_owner = NULL, \
        lease_until_ms = NULL WHERE lease_owner = ?1";

    /// `sql` with PostgreSQL's placeholders.
    pub fn pg(sql: &str) -> String {
        sql.replace('?', "$")
    }

    /// `sql` as SQLite takes it.
    pub fn sqlite(sql: &str) -> String {
        sql.to_owned()
    }
}

/// [`MappingStore`] for `$store`, whose rows are `$row`: `$sql` turns the statements of
/// [`sql`] into the backend's, `self.$write()` and `self.$read()` give a connection (a
/// `DerefMut` to the backend's connection) to write and to read with. Both backends expand it.
macro_rules! mapping_store {
    ($store:ty, $row:ty, $sql:path, $write:ident, $read:ident) => {
        fn records(rows: Vec<$row>) -> Result<Vec<Mapping>, StoreError> {
            rows.iter()
                .map(|r| decode::<Mapping>(r.get::<&str, _>(0)))
                .collect()
        }

        #[async_trait]
        impl MappingStore for $store {
            async fn insert_mapping(&self, m: &Mapping) -> Result<(), StoreError> {
                let done = sqlx::query(&$sql(sql::INSERT))
                    .bind(&m.uuid)
                    .bind(m.account.as_str())
                    .bind(&m.function_name)
                    .bind(&m.source)
                    .bind(m.enabled)
                    .bind(&m.revision)
                    .bind(encode(m)?)
                    .execute(&mut *self.$write().await?)
                    .await;
                match done {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err(StoreError::Conflict)
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_mapping(&self, uuid: &str) -> Result<Option<Mapping>, StoreError> {
                let rows = sqlx::query(&$sql(sql::GET))
                    .bind(uuid)
                    .fetch_all(&mut *self.$read().await?)
                    .await?;
                Ok(records(rows)?.pop())
            }

            async fn replace_mapping(&self, m: &Mapping, expected: &str) -> Result<(), StoreError> {
                let changed = sqlx::query(&$sql(sql::REPLACE))
                    .bind(&m.uuid)
                    .bind(&m.function_name)
                    .bind(&m.source)
                    .bind(m.enabled)
                    .bind(&m.revision)
                    .bind(encode(m)?)
                    .bind(expected)
                    .execute(&mut *self.$write().await?)
                    .await?
                    .rows_affected();
                cas_outcome(changed, expected, self.get_mapping(&m.uuid)).await
            }

            async fn delete_mapping(&self, uuid: &str) -> Result<Option<Mapping>, StoreError> {
                let rows = sqlx::query(&$sql(sql::DELETE))
                    .bind(uuid)
                    .fetch_all(&mut *self.$write().await?)
                    .await?;
                Ok(records(rows)?.pop())
            }

            async fn list_mappings(
                &self,
                account: &AccountId,
                function: Option<&str>,
                source: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<Mapping>, StoreError> {
                let rows = sqlx::query(&$sql(sql::LIST))
                    .bind(account.as_str())
                    .bind(function)
                    .bind(source)
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.$read().await?)
                    .await?;
                records(rows)
            }

            async fn claim_mappings(
                &self,
                owner: &str,
                now_ms: i64,
                lease_ms: i64,
            ) -> Result<Vec<Mapping>, StoreError> {
                let rows = sqlx::query(&$sql(sql::CLAIM))
                    .bind(owner)
                    .bind(now_ms)
                    .bind(now_ms.saturating_add(lease_ms))
                    .bind(true)
                    .fetch_all(&mut *self.$write().await?)
                    .await?;
                records(rows)
            }

            async fn release_mappings(&self, owner: &str) -> Result<(), StoreError> {
                sqlx::query(&$sql(sql::RELEASE))
                    .bind(owner)
                    .execute(&mut *self.$write().await?)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use mapping_store;
