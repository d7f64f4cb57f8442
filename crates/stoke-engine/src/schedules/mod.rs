//! EventBridge Scheduler's schedules: the operations the API calls ([`Schedules`]) and the
//! loop that fires their ticks ([`ticker`]).
//!
//! - [`spec`]: a schedule's record in Scheduler's JSON names, and the timing it makes.
//! - [`Schedules`]: create, read, update, delete and list schedules and groups (the API has
//!   checked the members against the model; here are the rules that need the store or the
//!   clock: conflicts, missing groups, the next tick).
//! - [`ticker`]: one loop per node sleeping until the earliest due tick (or a wake from an
//!   API write); each tick is fired by [`stoke_store::ScheduleStore::fire`], which moves the
//!   schedule and enqueues the target's async event in one transaction, so whichever node
//!   fires a tick, it is enqueued once (see the store's doc).
//!
//! Times here are on the schedules' [`Clock`]: the wall clock, shifted by a test offset.

pub mod spec;
pub mod ticker;

use std::sync::Arc;

use stoke_core::AccountId;
pub use stoke_store::schedules::{DEFAULT_GROUP, Schedule, ScheduleFilter, ScheduleGroup};
use stoke_store::{Store, StoreError};
use tokio::sync::Notify;

use crate::record::now_ms;
pub use spec::ScheduleSpec;

/// The schedules' clock: the wall clock plus `offset_ms` (0 but in tests, which move it
/// forward to cross ticks without waiting for them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    pub offset_ms: i64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        now_ms().saturating_add(self.offset_ms)
    }
}

/// How the scheduler behaves.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub clock: Clock,
    /// How late a tick of a schedule without a flexible window may still fire (after a
    /// restart, say); a later one is skipped. A flexible window is its own grace.
    pub grace_ms: i64,
    /// The longest the loop sleeps without looking (schedules other nodes created).
    pub max_sleep_ms: i64,
    /// Whether a flexible window's tick runs at a random moment of what is left of its window
    /// (EventBridge's behaviour; tests turn it off to see the run at once).
    pub jitter: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            clock: Clock::default(),
            grace_ms: 5 * 60_000,
            max_sleep_ms: 10_000,
            jitter: true,
        }
    }
}

/// What went wrong, in Scheduler's error kinds.
#[derive(Debug, thiserror::Error)]
pub enum SchedulesError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A schedule as the API answers it.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    pub arn: String,
    pub row: Schedule,
    pub spec: ScheduleSpec,
}

/// The schedules' operations.
pub struct Schedules {
    store: Arc<dyn Store>,
    region: String,
    config: ScheduleConfig,
    /// Wakes the ticker after a write that may move the earliest tick.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Schedules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedules")
            .field("region", &self.region)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn missing_schedule(name: &str) -> SchedulesError {
    SchedulesError::NotFound(format!("Schedule {name} does not exist."))
}

fn missing_group(name: &str) -> SchedulesError {
    SchedulesError::NotFound(format!("Schedule group {name} does not exist."))
}

impl Schedules {
    pub fn new(store: Arc<dyn Store>, region: String, config: ScheduleConfig) -> Self {
        Self {
            store,
            region,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn schedule_arn(&self, account: &AccountId, group: &str, name: &str) -> String {
        format!(
            "arn:aws:scheduler:{}:{}:schedule/{group}/{name}",
            self.region,
            account.as_str()
        )
    }

    pub fn group_arn(&self, account: &AccountId, name: &str) -> String {
        format!(
            "arn:aws:scheduler:{}:{}:schedule-group/{name}",
            self.region,
            account.as_str()
        )
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The next tick of `spec` at or after `from_ms`, for a schedule created at `created_ms`.
    fn next_tick(
        spec: &ScheduleSpec,
        created_ms: i64,
        from_ms: i64,
    ) -> Result<Option<i64>, SchedulesError> {
        let timing = spec
            .timing(created_ms)
            .map_err(|e| SchedulesError::Validation(e.to_string()))?;
        Ok(timing.first_at_or_after(from_ms))
    }

    /// The record kept in the store: what the caller gave, less what has columns of its own
    /// (the `ClientToken` stays, so that a create sent again with it is answered as the first).
    fn stored(spec: &ScheduleSpec) -> Result<String, SchedulesError> {
        let mut kept = spec.clone();
        kept.group_name = None;
        kept.state = None;
        serde_json::to_string(&kept)
            .map_err(|e| SchedulesError::Store(StoreError::Corrupt(e.to_string())))
    }

    fn view(&self, row: Schedule) -> Result<ScheduleView, SchedulesError> {
        let spec: ScheduleSpec = serde_json::from_str(&row.spec)
            .map_err(|e| SchedulesError::Store(StoreError::Corrupt(e.to_string())))?;
        Ok(ScheduleView {
            arn: self.schedule_arn(&row.account, &row.group, &row.name),
            row,
            spec,
        })
    }

    /// CreateSchedule; answers the schedule's ARN. A create sent again with the `ClientToken`
    /// that made the schedule (an SDK's retry) answers the same ARN and changes nothing.
    pub async fn create(
        &self,
        account: &AccountId,
        name: &str,
        spec: &ScheduleSpec,
    ) -> Result<String, SchedulesError> {
        let group = spec.group_name.as_deref().unwrap_or(DEFAULT_GROUP);
        let now = self.config.clock.now_ms();
        let row = Schedule {
            account: account.clone(),
            group: group.to_owned(),
            name: name.to_owned(),
            state: spec.state.clone().unwrap_or_else(|| "ENABLED".into()),
            spec: Self::stored(spec)?,
            next_ms: Self::next_tick(spec, now, now)?,
            last_tick_ms: None,
            created_ms: now,
            modified_ms: now,
        };
        match self.store.create_schedule(&row).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                if self.made_with_token(account, group, name, spec).await? {
                    return Ok(self.schedule_arn(account, group, name));
                }
                return Err(SchedulesError::Conflict(format!(
                    "Schedule {name} already exists."
                )));
            }
            Err(StoreError::NotFound) => return Err(missing_group(group)),
            Err(e) => return Err(e.into()),
        }
        self.wake.notify_one();
        Ok(self.schedule_arn(account, group, name))
    }

    /// Whether the schedule `group/name` was made by a create with `spec`'s `ClientToken`.
    async fn made_with_token(
        &self,
        account: &AccountId,
        group: &str,
        name: &str,
        spec: &ScheduleSpec,
    ) -> Result<bool, SchedulesError> {
        let Some(token) = spec.client_token.as_deref() else {
            return Ok(false);
        };
        let Some(row) = self.store.get_schedule(account, group, name).await? else {
            return Ok(false);
        };
        Ok(self.view(row)?.spec.client_token.as_deref() == Some(token))
    }

    /// GetSchedule.
    pub async fn get(
        &self,
        account: &AccountId,
        group: Option<&str>,
        name: &str,
    ) -> Result<ScheduleView, SchedulesError> {
        let group = group.unwrap_or(DEFAULT_GROUP);
        let row = self
            .store
            .get_schedule(account, group, name)
            .await?
            .ok_or_else(|| missing_schedule(name))?;
        self.view(row)
    }

    /// UpdateSchedule: every member is replaced (what the caller leaves out goes back to its
    /// default, as Scheduler's); the next tick is counted again from now (never a tick already
    /// fired). Answers the ARN.
    pub async fn update(
        &self,
        account: &AccountId,
        name: &str,
        spec: &ScheduleSpec,
    ) -> Result<String, SchedulesError> {
        let group = spec.group_name.as_deref().unwrap_or(DEFAULT_GROUP);
        let old = self
            .store
            .get_schedule(account, group, name)
            .await?
            .ok_or_else(|| missing_schedule(name))?;
        let now = self.config.clock.now_ms();
        let from = now.max(old.last_tick_ms.map_or(i64::MIN, |t| t + 1));
        let row = Schedule {
            state: spec.state.clone().unwrap_or_else(|| "ENABLED".into()),
            spec: Self::stored(spec)?,
            next_ms: Self::next_tick(spec, old.created_ms, from)?,
            modified_ms: now,
            ..old
        };
        match self.store.update_schedule(&row).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(missing_schedule(name)),
            Err(e) => return Err(e.into()),
        }
        self.wake.notify_one();
        Ok(self.schedule_arn(account, group, name))
    }

    /// DeleteSchedule.
    pub async fn delete(
        &self,
        account: &AccountId,
        group: Option<&str>,
        name: &str,
    ) -> Result<(), SchedulesError> {
        let group = group.unwrap_or(DEFAULT_GROUP);
        if self.store.delete_schedule(account, group, name).await? {
            Ok(())
        } else {
            Err(missing_schedule(name))
        }
    }

    /// ListSchedules: a page and whether more follow. A named group must exist.
    pub async fn list(
        &self,
        account: &AccountId,
        mut filter: ScheduleFilter,
    ) -> Result<(Vec<ScheduleView>, bool), SchedulesError> {
        if let Some(g) = filter.group.as_deref()
            && g != DEFAULT_GROUP
            && self.store.get_schedule_group(account, g).await?.is_none()
        {
            return Err(missing_group(g));
        }
        let limit = filter.limit as usize;
        filter.limit = filter.limit.saturating_add(1);
        let mut rows = self.store.list_schedules(account, &filter).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let views = rows
            .into_iter()
            .map(|r| self.view(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((views, more))
    }

    /// The `default` group, as every account has it.
    fn default_group(account: &AccountId) -> ScheduleGroup {
        ScheduleGroup {
            account: account.clone(),
            name: DEFAULT_GROUP.into(),
            created_ms: 0,
            modified_ms: 0,
        }
    }

    /// CreateScheduleGroup; answers its ARN.
    pub async fn create_group(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<String, SchedulesError> {
        let now = now_ms();
        let g = ScheduleGroup {
            account: account.clone(),
            name: name.to_owned(),
            created_ms: now,
            modified_ms: now,
        };
        if name == DEFAULT_GROUP {
            return Err(SchedulesError::Conflict(format!(
                "Schedule group {name} already exists."
            )));
        }
        match self.store.create_schedule_group(&g).await {
            Ok(()) => Ok(self.group_arn(account, name)),
            Err(StoreError::Conflict) => Err(SchedulesError::Conflict(format!(
                "Schedule group {name} already exists."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// GetScheduleGroup.
    pub async fn get_group(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<ScheduleGroup, SchedulesError> {
        if name == DEFAULT_GROUP {
            return Ok(Self::default_group(account));
        }
        self.store
            .get_schedule_group(account, name)
            .await?
            .ok_or_else(|| missing_group(name))
    }

    /// DeleteScheduleGroup (its schedules go with it); `default` cannot go.
    pub async fn delete_group(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<(), SchedulesError> {
        if name == DEFAULT_GROUP {
            return Err(SchedulesError::Validation(
                "The default schedule group cannot be deleted.".into(),
            ));
        }
        if self.store.delete_schedule_group(account, name).await? {
            Ok(())
        } else {
            Err(missing_group(name))
        }
    }

    /// ListScheduleGroups: `default` first (when the prefix and the page allow), then the
    /// account's own in name order; a page and whether more follow.
    pub async fn list_groups(
        &self,
        account: &AccountId,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<ScheduleGroup>, bool), SchedulesError> {
        let mut out = Vec::new();
        let default_fits = prefix.is_none_or(|p| DEFAULT_GROUP.starts_with(p));
        // The token is the last name answered; `default` sorts among the others by name.
        let mut rows = self
            .store
            .list_schedule_groups(account, prefix, after, limit.saturating_add(1))
            .await?;
        if default_fits && after.is_none_or(|a| a < DEFAULT_GROUP) {
            rows.push(Self::default_group(account));
            rows.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        out.extend(rows);
        Ok((out, more))
    }

    /// The next `n` ticks of a schedule from now (what `stoke schedules show` prints).
    pub fn upcoming(&self, view: &ScheduleView, n: usize) -> Vec<i64> {
        let Some(next) = view.row.next_ms else {
            return Vec::new();
        };
        match view.spec.timing(view.row.created_ms) {
            Ok(t) => t.upcoming(next, n),
            Err(_) => Vec::new(),
        }
    }
}
