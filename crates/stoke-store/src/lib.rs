//! Stoke's persistence.
//!
//! # Layout
//! The traits and the domain types are apart from any database, one module per concern, so a
//! second implementation (PostgreSQL, for several nodes) implements the same traits and passes
//! the same `conformance` suite:
//! - `accounts` ([`AccountStore`]): accounts, access keys and server settings.
//! - [`seal`]: the [`MasterKey`] and the sealed form of secrets at rest (AES-256-GCM).
//! - `functions` ([`FunctionStore`]): functions (`$LATEST`). Writes that change a function
//!   compare its `RevisionId`, so two writers never silently overwrite each other.
//! - `versions` ([`VersionStore`]) and `aliases` ([`AliasStore`]): published versions and
//!   aliases, with the same compare-and-swap.
//! - `policies` ([`PolicyStore`]): functions' resource-based policies, one per qualifier,
//!   with the same compare-and-swap on their `RevisionId`.
//! - `logs` ([`LogStore`]): log lines, invocation records and their retention (trims by bytes,
//!   lines and age, in small batches so that no statement holds the store for long).
//! - [`mappings`] ([`MappingStore`]): event source mappings, with a compare-and-swap of their
//!   revision and their pollers' leases (one node at a time per mapping).
//! - [`queue`] ([`Queue`]): the durable queue of async events, their leases (per owner), the
//!   dead letters and the event-invoke configurations.
//! - [`schedules`] ([`ScheduleStore`]): EventBridge Scheduler's schedules and groups; a tick
//!   moves its schedule and enqueues its async event in one transaction.
//! - [`nodes`] ([`NodeStore`]): the node registry, one row per node refreshed by its
//!   heartbeat (issue 14).
//! - [`Store`]: every concern above in one trait (a blanket impl), what the engine holds as
//!   `Arc<dyn Store>`.
//! - [`changes`] ([`ChangeFeed`]): the change feed, how every node hears of another's writes
//!   (PostgreSQL `LISTEN`/`NOTIFY`; on SQLite, one node, a broadcast in the process).
//! - [`slots`] ([`SlotStore`]): concurrency slots held with an expiry, so that a limit holds
//!   across nodes.
//! - [`blobs`] ([`BlobStore`]): code zips stored once each, by SHA-256; [`FsBlobStore`] keeps
//!   them in a folder (written to a temporary file, synced and renamed, so a crash never leaves
//!   a torn blob under a real address; temporary files a crash left are swept at open).
//! - [`error`]: [`StoreError`], what can go wrong in any store (no database's own error
//!   types: a backend's failures are [`StoreError::Backend`]).
//! - [`sqlite`]: the embedded default, one SQLite file in WAL mode with synchronous commits,
//!   one submodule per concern; its migrations are in `migrations/sqlite/`.
//! - [`postgres`]: the shared store, [`PgStore`] (one PostgreSQL database for several nodes,
//!   migrated under an advisory lock), and [`PgBlobStore`] (code blobs in the database, in
//!   chunks, with a verified local cache); its migrations are in `migrations/postgres/`.
//! - `conformance` (tests, or the `conformance` feature): the behaviour every
//!   implementation must show, as async test cases over a store factory.

mod accounts;
mod aliases;
mod backend;
pub mod blobs;
pub mod changes;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod error;
mod functions;
mod logs;
pub mod mappings;
pub mod nodes;
mod policies;
pub mod postgres;
pub mod queue;
pub mod schedules;
pub mod seal;
pub mod slots;
pub mod sqlite;
mod trim;
mod versions;

pub use accounts::{
    AccessKey, Account, AccountStore, DeleteRefused, KeyInfo, MAX_KEYS_PER_ACCOUNT,
};
pub use aliases::AliasStore;
pub use blobs::{BlobStore, Blobs, FsBlobStore};
pub use changes::{Change, ChangeFeed, ChangeListener};
pub use error::StoreError;
pub use functions::{AccountUsage, FunctionStore};
pub use logs::{InvocationRecord, LogEvent, LogPage, LogQuery, LogStore, LogUsage};
pub use mappings::{Mapping, MappingStore};
pub use nodes::{NodeRecord, NodeStore};
pub use policies::PolicyStore;
pub use postgres::{PgBlobStore, PgStore};
pub use queue::Queue;
pub use schedules::ScheduleStore;
pub use seal::{MasterKey, SealError};
pub use slots::SlotStore;
pub use sqlite::SqliteStore;
pub use versions::VersionStore;

/// The state of a Stoke installation: every concern's trait in one, so that consumers hold
/// one `Arc<dyn Store>`. Implemented for whatever implements them all.
pub trait Store:
    AccountStore
    + FunctionStore
    + VersionStore
    + AliasStore
    + PolicyStore
    + LogStore
    + ScheduleStore
    + MappingStore
    + NodeStore
    + ChangeFeed
    + SlotStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AccountStore
        + FunctionStore
        + VersionStore
        + AliasStore
        + PolicyStore
        + LogStore
        + ScheduleStore
        + MappingStore
        + NodeStore
        + ChangeFeed
        + SlotStore
        + ?Sized
{
}
