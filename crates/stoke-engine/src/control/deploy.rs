//! Deploys: the background half of a create or an update.
//!
//! ```text
//! prepare (the Preparer: check the code; for wasm, compile it) ─► warm (an update only: the
//! Warmer starts a sandbox of the new generation beside the old ones) ─► decide (a failed
//! Init is logged; it fails the update only under the opt-in check: see `deploy_check`) ─►
//! settle (one compare-and-swap: Active/Successful, and calls move to the new generation; or
//! Failed with the reason) ─► collect the code the old generation served, once nothing can
//! run on it
//! ```
//!
//! Code that cannot be prepared (a module that does not compile, a runtime this server does
//! not have) fails the create or update with its `StateReasonCode`, as Lambda fails an update
//! it cannot prepare. Code whose Init fails does not, as on Lambda: calls move to it, find no
//! warm sandbox, and answer the Init's error.
//!
//! Each step is skipped once the function has moved past the generation being deployed (a
//! newer update, or a delete). At start-up [`ControlPlane::resume`] deploys again what a
//! previous run left `Pending` or `InProgress`.

use std::sync::Arc;

use stoke_core::{AccountId, Function, LastUpdateStatus, Reason, State};

use super::ControlPlane;
use super::deploy_check::{self, DeployCheck};
use crate::ControlError;
use crate::target::{FailedInit, Runnable, WarmUp};

impl ControlPlane {
    /// Restarts the deploy of every function a previous run left `Pending` or `InProgress`
    /// (a crash between answering and finishing), after removing the code no function uses
    /// any more.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, ControlError> {
        self.code.sweep().await;
        let mut n = 0;
        for f in self.store.all_functions().await? {
            if f.state == State::Pending
                || f.last_update_status == Some(LastUpdateStatus::InProgress)
            {
                self.spawn_deploy(f.account.clone(), f.name.as_str().to_owned(), f.generation);
                n += 1;
            }
        }
        Ok(n)
    }

    pub(super) fn spawn_deploy(
        self: &Arc<Self>,
        account: AccountId,
        name: String,
        generation: u64,
    ) {
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            if let Err(e) = this.deploy(&account, &name, generation).await {
                tracing::error!(function = %name, error = %e, "preparing code failed");
            }
        });
    }

    /// Prepares and warms `generation` of a function, then records the outcome if the
    /// function is still at that generation.
    async fn deploy(
        &self,
        account: &AccountId,
        name: &str,
        generation: u64,
    ) -> Result<(), ControlError> {
        let Some(f) = self.latest(account, name).await? else {
            return Ok(());
        };
        if f.generation != generation {
            return Ok(());
        }
        let mut outcome = self.prepare(&f).await?;
        if outcome.is_ok() && f.serving.is_some() {
            // An update: the new generation starts a sandbox beside the old ones before it
            // takes calls, so no call waits for its Init. (A new function has no traffic to
            // move: its first call is cold.)
            let check = DeployCheck::of(&f.tags);
            let warm = self.warmer.warm(&Runnable::latest_of(&f)).await;
            if let Ok(WarmUp::InitFailed(failed)) = &warm {
                self.log_failed_init(&f, failed, check).await;
            }
            outcome = deploy_check::decide(check, &warm);
        }
        self.settle(account, name, generation, &outcome).await
    }

    /// Writes a failed warm-up's lines to the function's logs, before the update settles
    /// (so that whoever sees it settled finds them). A write that fails loses the lines, not
    /// the deploy.
    async fn log_failed_init(&self, f: &Function, failed: &FailedInit, check: DeployCheck) {
        tracing::info!(
            function = %f.name,
            error_type = %failed.error.error_type,
            ?check,
            "an update's warm-up failed its Init"
        );
        let lines = deploy_check::failed_init_lines(f, failed, check);
        if let Err(e) = self.store.append_calls(&lines, &[]).await {
            tracing::warn!(function = %f.name, error = %e, "the warm-up's log was not stored");
        }
    }

    /// Runs the [`crate::prepare::Preparer`] on a blocking thread; `Err` inside is why the
    /// code cannot run.
    async fn prepare(&self, f: &Function) -> Result<Result<(), Reason>, ControlError> {
        if !self.code.restore(&f.code.sha256_hex).await? {
            return Ok(Err(Reason {
                message: "The function's code is missing from the store.".into(),
                code: "InternalError".into(),
            }));
        }
        let dir = self.code.dir(&f.code.sha256_hex);
        let preparer = Arc::clone(&self.preparer);
        let function = f.clone();
        Ok(tokio::task::spawn_blocking(move || preparer.prepare(&function, &dir)).await?)
    }

    /// Records a deploy's outcome on `$LATEST` (and on a version published from the same
    /// generation meanwhile), if the function is still at `generation`.
    async fn settle(
        &self,
        account: &AccountId,
        name: &str,
        generation: u64,
        outcome: &Result<(), Reason>,
    ) -> Result<(), ControlError> {
        // Under the code lock, so that a PublishVersion sees the versions settled and
        // `$LATEST` moved together, never one without the other.
        let _guard = self.code.lock().await;
        let Some(current) = self.latest(account, name).await? else {
            return Ok(());
        };
        if current.generation != generation {
            return Ok(());
        }
        // A version published from this generation takes its outcome first: once `$LATEST`
        // says Successful, the version can be invoked too.
        self.settle_published(&current, outcome).await?;
        let mut previous_serving = None;
        let written = self
            .cas(account, name, |old| {
                let Some(old) = old.filter(|o| o.generation == generation) else {
                    return Ok(None);
                };
                previous_serving = old
                    .serving
                    .as_ref()
                    .map(|s| (s.code.sha256_hex.clone(), s.config.timeout));
                Ok(Some(settled(old, outcome)))
            })
            .await?;
        if let (Some(f), Some((prev, timeout))) = (written, previous_serving)
            && outcome.is_ok()
            && prev != f.code.sha256_hex
        {
            self.code.collect_later(prev, timeout);
        }
        Ok(())
    }
}

/// `old` with a deploy's outcome recorded.
fn settled(old: &Function, outcome: &Result<(), Reason>) -> Function {
    let mut f = old.clone();
    match outcome {
        Ok(()) => {
            // Good code brings a failed function back too.
            if matches!(f.state, State::Pending | State::Failed) {
                f.state = State::Active;
                f.state_reason = None;
            }
            f.last_update_status = Some(LastUpdateStatus::Successful);
            f.last_update_reason = None;
            // Calls move to the new generation with this write.
            f.serving = Some(f.as_deployed());
        }
        Err(reason) => {
            if matches!(f.state, State::Pending | State::Failed) {
                f.state = State::Failed;
                f.state_reason = Some(reason.clone());
            }
            f.last_update_status = Some(LastUpdateStatus::Failed);
            f.last_update_reason = Some(reason.clone());
        }
    }
    f
}
