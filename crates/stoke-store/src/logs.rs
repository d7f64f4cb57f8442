//! Log lines and invocation records, and their retention: the [`LogStore`] trait.

use async_trait::async_trait;
use stoke_core::AccountId;

use crate::StoreError;

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
    /// The function's owner, whose records and logs these are.
    pub account: AccountId,
    /// The account whose key signed the call: the owner's own, or another account's that the
    /// owner's policy let in.
    pub caller_account: AccountId,
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
    /// At most this many bytes of lines in all, each counted as [`LogUsage`] counts it; the
    /// first line comes whatever its size. `None`: no cap.
    pub max_bytes: Option<u64>,
}

/// The lines a [`LogQuery`] found, oldest first.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub events: Vec<LogEvent>,
    /// Whether more lines of the query follow the last one (cut by its limit or its bytes).
    pub more: bool,
}

/// Log lines and invocation records. Retention removes the oldest first, in small batches:
/// no trim holds the store (its write lock) for more than a few milliseconds at a time.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Appends log lines and invocation records in one transaction.
    async fn append_calls(
        &self,
        logs: &[LogEvent],
        records: &[InvocationRecord],
    ) -> Result<(), StoreError>;

    /// A function's log lines, oldest first: at most `query.limit` of them and
    /// `query.max_bytes` of bytes.
    async fn read_logs(
        &self,
        account: &AccountId,
        function_name: &str,
        query: &LogQuery,
    ) -> Result<LogPage, StoreError>;

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
