//! EventBridge Scheduler's schedules and schedule groups: the [`ScheduleStore`] trait and its
//! types. The SQL is the same on both backends (numbered `$N` parameters, which SQLite reads
//! too), written once in [`sql`] and expanded by `sqlite::schedules` and
//! `postgres::schedules`.
//!
//! A schedule row keeps its API record as JSON (`spec`, the engine's, opaque here) beside what
//! the scheduler queries: its state, `next_ms` (its next tick, `NULL` when it has none) and
//! `last_tick_ms` (the last tick fired). [`ScheduleStore::fire`] moves a schedule to its next
//! tick with a compare-and-swap on `next_ms` and enqueues the tick's async event in the same
//! transaction: of several nodes (or a node and an update) racing on one tick, exactly one
//! moves it, so a tick is enqueued once and never lost (the event is durable once the
//! commit is). A tick that cannot be delivered may go to the dead letters in the same way.
//!
//! The `default` group is not a row: it exists in every account and cannot be deleted (the
//! engine answers it); a schedule in any other group needs the group's row.

pub(crate) mod sql;

use async_trait::async_trait;
use stoke_core::AccountId;

use crate::StoreError;
use crate::queue::{NewDeadLetter, NewEvent};

/// The group every account has.
pub const DEFAULT_GROUP: &str = "default";

/// A schedule group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleGroup {
    pub account: AccountId,
    pub name: String,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// A schedule, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub account: AccountId,
    pub group: String,
    pub name: String,
    /// `ENABLED` or `DISABLED`.
    pub state: String,
    /// The engine's record of the schedule (JSON).
    pub spec: String,
    /// The next tick to fire; `None` when there is none left.
    pub next_ms: Option<i64>,
    /// The last tick fired.
    pub last_tick_ms: Option<i64>,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// Which schedules a list wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleFilter {
    pub group: Option<String>,
    pub name_prefix: Option<String>,
    pub state: Option<String>,
    /// Continue after this (group, name).
    pub after: Option<(String, String)>,
    pub limit: u32,
}

/// One tick's outcome, written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    pub account: AccountId,
    pub group: String,
    pub name: String,
    /// The `next_ms` the firer read: the swap happens only if it is still the row's.
    pub expected_next_ms: i64,
    /// The tick this fires (kept as `last_tick_ms`).
    pub tick_ms: i64,
    /// The tick after it, `None` if none.
    pub next_ms: Option<i64>,
    /// The tick's event; `None` for a tick skipped (missed past its window) or undelivered.
    pub event: Option<NewEvent>,
    /// A tick that could not be delivered (past its window, or its function gone), kept in
    /// the dead letters because the schedule has a `DeadLetterConfig`.
    pub dead_letter: Option<NewDeadLetter>,
    /// Delete the schedule (ActionAfterCompletion `DELETE`, no tick left).
    pub delete: bool,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// [`StoreError::Conflict`] if the group exists.
    async fn create_schedule_group(&self, g: &ScheduleGroup) -> Result<(), StoreError>;

    async fn get_schedule_group(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<ScheduleGroup>, StoreError>;

    /// Groups in name order, after `after`, at most `limit`.
    async fn list_schedule_groups(
        &self,
        account: &AccountId,
        name_prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ScheduleGroup>, StoreError>;

    /// Deletes a group and every schedule in it; `false` if there was none.
    async fn delete_schedule_group(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<bool, StoreError>;

    /// [`StoreError::Conflict`] if a schedule of that name is in the group;
    /// [`StoreError::NotFound`] if the group (not `default`) does not exist.
    async fn create_schedule(&self, s: &Schedule) -> Result<(), StoreError>;

    async fn get_schedule(
        &self,
        account: &AccountId,
        group: &str,
        name: &str,
    ) -> Result<Option<Schedule>, StoreError>;

    /// Replaces state, spec, `next_ms` and `modified_ms` (the rest stays);
    /// [`StoreError::NotFound`] if it is gone.
    async fn update_schedule(&self, s: &Schedule) -> Result<(), StoreError>;

    /// `false` if there was none.
    async fn delete_schedule(
        &self,
        account: &AccountId,
        group: &str,
        name: &str,
    ) -> Result<bool, StoreError>;

    /// An account's schedules in (group, name) order.
    async fn list_schedules(
        &self,
        account: &AccountId,
        filter: &ScheduleFilter,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// Enabled schedules of every account whose next tick is at or before `now_ms`, earliest
    /// first, at most `limit`.
    async fn due_schedules(&self, now_ms: i64, limit: u32) -> Result<Vec<Schedule>, StoreError>;

    /// The earliest next tick of an enabled schedule.
    async fn next_schedule_ms(&self) -> Result<Option<i64>, StoreError>;

    /// Moves a schedule past a tick (see [`Fire`]) and enqueues its event, in one
    /// transaction; `false` (nothing written) if `next_ms` is no longer `expected_next_ms`
    /// or the schedule is gone.
    async fn fire(&self, f: &Fire) -> Result<bool, StoreError>;
}
