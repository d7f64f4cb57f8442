//! Event source mappings: the [`MappingStore`] trait and the record it keeps ([`Mapping`]).
//! A mapping is known by its `UUID` (unique in the installation), listed per account by
//! function and by source in `UUID` order, and written with a compare-and-swap of its
//! `revision` (so the API and a poller never silently overwrite each other). The pollers run
//! each enabled mapping on one node at a time through a lease in the same row, renewed by its
//! holder and taken over once it has expired. A mapping's `BASIC_AUTH` credentials
//! ([`BasicAuth`]) are kept only sealed with the master key ([`crate::seal`], the mapping's
//! UUID bound in as associated data), beside the record, and opened when it is read.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stoke_core::AccountId;
use zeroize::Zeroizing;

use crate::StoreError;
use crate::seal::MasterKey;
use crate::sqlite::{decode, encode};

/// The user name and password a mapping's `BASIC_AUTH` gives its broker. In clear only in
/// memory: its `Debug` hides the password, and the store keeps it sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// Empty for a password alone (Redis' `AUTH password`).
    pub username: String,
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What the sealed bytes hold.
#[derive(Serialize, Deserialize)]
struct AuthPlain {
    u: String,
    p: String,
}

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
    /// The credentials its `BASIC_AUTH` names (never serialized: the store seals them).
    #[serde(skip)]
    pub basic_auth: Option<BasicAuth>,
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

/// The associated data a mapping's credentials are sealed with.
fn aad(uuid: &str) -> String {
    format!("event-source-mapping:{uuid}")
}

/// A mapping as a row keeps it: the record, and its credentials sealed (hex).
#[derive(Serialize)]
struct Sealed<'a> {
    #[serde(flatten)]
    mapping: &'a Mapping,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_auth: Option<String>,
}

#[derive(Deserialize)]
struct Unsealed {
    #[serde(flatten)]
    mapping: Mapping,
    #[serde(default)]
    sealed_auth: Option<String>,
}

/// The record of `m` as stored, its credentials sealed under `master`.
pub(crate) fn seal_record(master: &MasterKey, m: &Mapping) -> Result<String, StoreError> {
    let sealed_auth = match &m.basic_auth {
        Some(a) => {
            let plain = Zeroizing::new(
                serde_json::to_vec(&AuthPlain {
                    u: a.username.clone(),
                    p: a.password.to_string(),
                })
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
            Some(hex::encode(master.seal(&plain, &aad(&m.uuid))))
        }
        None => None,
    };
    encode(&Sealed {
        mapping: m,
        sealed_auth,
    })
}

/// The mapping a stored record holds, its credentials opened with `master`.
pub(crate) fn open_record(master: &MasterKey, record: &str) -> Result<Mapping, StoreError> {
    let u: Unsealed = decode(record)?;
    let mut m = u.mapping;
    if let Some(sealed) = u.sealed_auth {
        let bytes = hex::decode(sealed).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let plain = master
            .open(&bytes, &aad(&m.uuid))
            .map_err(|e| StoreError::MasterKey(e.to_string()))?;
        let a: AuthPlain =
            serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        m.basic_auth = Some(BasicAuth {
            username: a.u,
            password: Zeroizing::new(a.p),
        });
    }
    Ok(m)
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
        fn records(master: &MasterKey, rows: Vec<$row>) -> Result<Vec<Mapping>, StoreError> {
            rows.iter()
                .map(|r| open_record(master, r.get::<&str, _>(0)))
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
                    .bind(seal_record(&self.master, m)?)
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
                Ok(records(&self.master, rows)?.pop())
            }

            async fn replace_mapping(&self, m: &Mapping, expected: &str) -> Result<(), StoreError> {
                let changed = sqlx::query(&$sql(sql::REPLACE))
                    .bind(&m.uuid)
                    .bind(&m.function_name)
                    .bind(&m.source)
                    .bind(m.enabled)
                    .bind(&m.revision)
                    .bind(seal_record(&self.master, m)?)
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
                Ok(records(&self.master, rows)?.pop())
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
                records(&self.master, rows)
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
                records(&self.master, rows)
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
