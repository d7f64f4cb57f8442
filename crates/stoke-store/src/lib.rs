//! Stoke's persistence.
//!
//! # Layout
//! - [`Store`]: the one trait the rest of Stoke uses for state (accounts, access keys,
//!   functions, settings). Writes that change a function compare its `RevisionId`, so two
//!   writers never silently overwrite each other.
//! - [`sqlite`]: the embedded default, one SQLite file in WAL mode with synchronous commits.
//!   (PostgreSQL, for several nodes, comes behind the same trait.)
//! - `versions` (private): the SQLite side of published versions and aliases.
//! - [`blobs`]: code zips stored once each, by SHA-256, in a folder; written to a temporary
//!   file, synced and renamed, so a crash never leaves a torn blob under a real address, and
//!   temporary files a crash left are swept when the folder is opened.
//! - `logs` (private): the SQLite side of log retention: what each function's lines take
//!   (kept by triggers), and trims in small batches by bytes, lines and age.
//! - [`queue`]: the durable queue of async events, their leases, the dead letters and the
//!   event-invoke configurations (the [`Queue`] trait).
//! - [`error`]: [`StoreError`], what can go wrong in the store.

pub mod blobs;
pub mod error;
mod logs;
pub mod queue;
pub mod sqlite;
mod versions;

use async_trait::async_trait;
use stoke_core::{AccountId, Alias, Function};

pub use blobs::Blobs;
pub use error::StoreError;
pub use queue::Queue;
pub use sqlite::SqliteStore;

/// An access key and the account it signs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret: String,
    pub account: AccountId,
}

/// One line of a function's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Assigned by the store, increasing; 0 before it is stored.
    pub id: i64,
    pub account: AccountId,
    pub function_name: String,
    pub log_stream: String,
    pub timestamp_ms: i64,
    pub request_id: String,
    pub message: String,
}

/// What one call did: the `REPORT` line as a record.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRecord {
    pub request_id: String,
    pub account: AccountId,
    pub function_name: String,
    pub version: String,
    pub started_ms: i64,
    pub cold: bool,
    pub init_ms: Option<f64>,
    pub duration_ms: f64,
    pub billed_ms: i64,
    pub memory_size_mb: u32,
    pub max_memory_mb: u32,
    /// `Success`, `Error`, `Timeout`.
    pub outcome: String,
    pub error_type: Option<String>,
}

/// What one function's stored log lines take. A line counts its message's UTF-8 bytes plus
/// 26, as CloudWatch Logs counts an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogUsage {
    pub account: AccountId,
    pub function_name: String,
    pub bytes: u64,
    pub lines: u64,
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Lines with an id above this one (for following a log).
    pub after_id: Option<i64>,
    /// Lines at or after this time.
    pub since_ms: Option<i64>,
    /// Lines before this time.
    pub until_ms: Option<i64>,
    /// Only lines that contain this text.
    pub contains: Option<String>,
    pub limit: u32,
}

/// What an account has stored: for GetAccountSettings' `AccountUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountUsage {
    pub function_count: u64,
    pub total_code_size: u64,
}

/// The state of a Stoke installation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The default account and its first access key, created on the first call.
    /// The flag says whether they were created now.
    async fn ensure_default_account(&self) -> Result<(AccessKey, bool), StoreError>;

    /// The access key with this id, if any.
    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError>;

    /// A server setting, created with `init` on the first call (for secrets the server makes
    /// once and keeps, such as the key of presigned code URLs).
    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String, StoreError>;

    /// Adds a function; [`StoreError::Conflict`] if one of that name exists in the account.
    async fn insert_function(&self, f: &Function) -> Result<(), StoreError>;

    /// Replaces a function if its stored `RevisionId` is still `expected_revision`;
    /// [`StoreError::Stale`] if it changed, [`StoreError::NotFound`] if it is gone.
    async fn replace_function(
        &self,
        f: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError>;

    async fn get_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError>;

    /// Removes a function and answers what it was.
    async fn delete_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError>;

    /// Functions of an account in name order, starting after `after`, at most `limit`.
    async fn list_functions(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError>;

    /// Every function of every account (for the start-up pass that resumes unfinished work).
    async fn all_functions(&self) -> Result<Vec<Function>, StoreError>;

    async fn account_usage(&self, account: &AccountId) -> Result<AccountUsage, StoreError>;

    /// Whether any function still uses the code blob with this SHA-256 (hex).
    async fn code_in_use(&self, sha256_hex: &str) -> Result<bool, StoreError>;

    // ----- versions and aliases (the functions' rows cascade to them on delete) -----

    /// Publishes `version` (a copy of `$LATEST`) under the next version number, if `$LATEST`'s
    /// `RevisionId` is still `expected_latest_revision`. Answers the version as stored (with
    /// its number). [`StoreError::Stale`] or [`StoreError::NotFound`] as for replaces.
    async fn publish_version(
        &self,
        version: &Function,
        expected_latest_revision: &str,
    ) -> Result<Function, StoreError>;

    async fn get_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError>;

    /// The highest-numbered version that exists.
    async fn last_version(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError>;

    /// Versions in number order, after `after`, at most `limit`.
    async fn list_versions(
        &self,
        account: &AccountId,
        name: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError>;

    /// Replaces a version's record (its state) if its `RevisionId` is `expected_revision`.
    async fn replace_version(
        &self,
        v: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError>;

    async fn delete_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError>;

    /// Adds an alias; [`StoreError::Conflict`] if the name is taken, [`StoreError::NotFound`]
    /// if the function is gone.
    async fn insert_alias(&self, a: &Alias) -> Result<(), StoreError>;

    async fn get_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError>;

    /// Replaces an alias if its `RevisionId` is still `expected_revision`.
    async fn replace_alias(&self, a: &Alias, expected_revision: &str) -> Result<(), StoreError>;

    async fn delete_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError>;

    /// Aliases in name order after `after`, at most `limit`; with `version`, only those that
    /// route calls to it.
    async fn list_aliases(
        &self,
        account: &AccountId,
        function: &str,
        version: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Alias>, StoreError>;

    /// Appends log lines and invocation records in one transaction.
    async fn append_calls(
        &self,
        logs: &[LogEvent],
        records: &[InvocationRecord],
    ) -> Result<(), StoreError>;

    /// A function's log lines, oldest first.
    async fn read_logs(
        &self,
        account: &AccountId,
        function_name: &str,
        query: &LogQuery,
    ) -> Result<Vec<LogEvent>, StoreError>;

    /// A function's most recent invocation records, newest first.
    async fn recent_invocations(
        &self,
        account: &AccountId,
        function_name: &str,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, StoreError>;

    /// What each function's stored log lines take (functions with lines only).
    async fn log_usage(&self) -> Result<Vec<LogUsage>, StoreError>;

    /// Removes the oldest log lines of one function (`function_name: Some`) or of a whole
    /// account (`None`) until they take at most `keep_bytes` (counted as [`LogUsage`] counts),
    /// at most `batch` lines per statement so that no write holds the store's lock for long.
    /// Answers how many lines went.
    async fn trim_log_bytes(
        &self,
        account: &AccountId,
        function_name: Option<&str>,
        keep_bytes: u64,
        batch: u32,
    ) -> Result<u64, StoreError>;

    /// Keeps at most `max_lines` log lines and `max_records` records per function, and none
    /// older than `older_than_ms`, removing the oldest first in small batches. Answers how
    /// many rows went.
    async fn trim_calls(
        &self,
        max_lines: u32,
        max_records: u32,
        older_than_ms: i64,
    ) -> Result<u64, StoreError>;
}
