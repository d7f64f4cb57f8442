//! Published versions: PublishVersion, ListVersionsByFunction, deleting one version, and what
//! calls of `$LATEST` run now (its serving generation; `crate::route` resolves calls with it).
//!
//! A version is a copy of `$LATEST`'s record under a number from the function's counter (the
//! store bumps it in the publishing transaction, so numbers are never reused). It is `Active`
//! when `$LATEST`'s code was already prepared; published while an update is being prepared
//! (`Publish=true` on an update), it is `Pending` until that preparation settles it.

use stoke_core::validate::Violations;
use stoke_core::{
    AccountId, Deployed, Function, FunctionRef, LambdaError, LastUpdateStatus, Reason, State,
};
use stoke_store::StoreError;

use super::{
    CAS_RETRIES, ControlPlane, busy, check_revision, check_unqualified, creating, decode_marker,
    encode_marker, new_revision, now,
};
use crate::ControlError;

/// A page of ListVersionsByFunction.
#[derive(Debug, Clone)]
pub struct VersionPage {
    pub versions: Vec<Function>,
    pub next_marker: Option<String>,
}

/// What calls of `$LATEST` run now: the serving generation. A record written before serving
/// generations existed serves its own code when it is settled.
pub(crate) fn serving_of(f: &Function) -> Option<Deployed> {
    f.serving.clone().or_else(|| {
        (f.state == State::Active
            && !matches!(
                f.last_update_status,
                Some(LastUpdateStatus::InProgress | LastUpdateStatus::Failed)
            ))
        .then(|| f.as_deployed())
    })
}

/// The config compared by "publishing unchanged code returns the existing version": everything
/// but the description, which PublishVersion sets per version.
fn same_code_and_config(a: &Function, b: &Function) -> bool {
    let mut ac = a.config.clone();
    ac.description.clear();
    let mut bc = b.config.clone();
    bc.description.clear();
    a.code.sha256_hex == b.code.sha256_hex && ac == bc
}

impl ControlPlane {
    /// PublishVersion.
    pub async fn publish_version(
        &self,
        account: &AccountId,
        name: &str,
        code_sha256: Option<&str>,
        description: Option<&str>,
        revision_id: Option<&str>,
    ) -> Result<Function, ControlError> {
        let (fref, owner) = self
            .resolve_ref(account, name, None, "lambda:PublishVersion")
            .await?;
        let account = &owner;
        check_unqualified(&fref)?;
        let mut v = Violations::new();
        if let Some(d) = description {
            v.length("description", d, 0, 256);
        }
        v.into_result()?;
        let _guard = self.code.lock().await;
        let f = self.load(account, &fref).await?;
        check_revision(&f, revision_id)?;
        if let Some(sha) = code_sha256
            && sha != f.code.sha256_base64()
        {
            return Err(LambdaError::InvalidParameterValue(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). \
                 Please try again with the CodeSHA256 in $LATEST.",
                f.code.sha256_base64()
            ))
            .into());
        }
        self.publish_locked(&f, description).await
    }

    /// Publishes `$LATEST` as it is in `f` (or answers the last version if nothing changed
    /// since it). Hold the code lock.
    pub(super) async fn publish_locked(
        &self,
        f: &Function,
        description: Option<&str>,
    ) -> Result<Function, ControlError> {
        let mut latest = f.clone();
        for _ in 0..CAS_RETRIES {
            if latest.state == State::Failed
                || latest.last_update_status == Some(LastUpdateStatus::Failed)
            {
                let reason = latest
                    .last_update_reason
                    .as_ref()
                    .or(latest.state_reason.as_ref())
                    .map_or("", |r| r.message.as_str());
                return Err(LambdaError::ResourceConflict(format!(
                    "The function {} cannot be published: its code failed to prepare: {reason}",
                    latest.arn(&self.region)
                ))
                .into());
            }
            if let Some(last) = self
                .store
                .last_version(&latest.account, latest.name.as_str())
                .await?
                && same_code_and_config(&last, &latest)
            {
                self.remember_version(&last);
                return Ok(last);
            }
            let ready = serving_of(&latest).is_some_and(|s| s.generation == latest.generation);
            let mut v = latest.clone();
            v.version = String::new(); // the store numbers it
            v.serving = None;
            v.tags.clear();
            v.revision_id = new_revision();
            v.last_modified = now();
            if let Some(d) = description {
                v.config.description = d.to_owned();
            }
            if ready {
                v.state = State::Active;
                v.state_reason = None;
                v.last_update_status = Some(LastUpdateStatus::Successful);
                v.last_update_reason = None;
            } else {
                v.state = State::Pending;
                v.state_reason = Some(creating());
                v.last_update_status = None;
                v.last_update_reason = None;
            }
            match self.store.publish_version(&v, &latest.revision_id).await {
                Ok(v) => {
                    self.remember_version(&v);
                    return Ok(v);
                }
                // The background preparation wrote $LATEST meanwhile: publish what it is now.
                Err(StoreError::Stale { .. }) => {
                    self.forget_function(&latest.account, latest.name.as_str());
                    latest = self
                        .latest(&latest.account, latest.name.as_str())
                        .await?
                        .ok_or_else(|| LambdaError::function_not_found(&f.arn(&self.region)))?;
                    if latest.generation != f.generation {
                        return Err(busy());
                    }
                }
                Err(StoreError::NotFound) => {
                    return Err(LambdaError::function_not_found(&f.arn(&self.region)).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// After `$LATEST`'s preparation of `f.generation` settled: a version published from that
    /// generation while it was being prepared takes the same outcome.
    pub(super) async fn settle_published(
        &self,
        f: &Function,
        outcome: &Result<(), Reason>,
    ) -> Result<(), ControlError> {
        let Some(last) = self.store.last_version(&f.account, f.name.as_str()).await? else {
            return Ok(());
        };
        if last.state != State::Pending || last.generation != f.generation {
            return Ok(());
        }
        let mut v = last.clone();
        match outcome {
            Ok(()) => {
                v.state = State::Active;
                v.state_reason = None;
                v.last_update_status = Some(LastUpdateStatus::Successful);
            }
            Err(reason) => {
                v.state = State::Failed;
                v.state_reason = Some(reason.clone());
            }
        }
        v.revision_id = new_revision();
        match self.store.replace_version(&v, &last.revision_id).await {
            Ok(()) => {
                self.remember_version(&v);
                Ok(())
            }
            Err(StoreError::NotFound | StoreError::Stale { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// ListVersionsByFunction: `$LATEST` first, then the versions by number.
    pub async fn list_versions(
        &self,
        account: &AccountId,
        name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<VersionPage, ControlError> {
        let mut v = Violations::new();
        if let Some(m) = max_items {
            v.range("maxItems", m, 1, 10_000);
        }
        v.into_result()?;
        let (fref, owner) = self
            .resolve_ref(account, name, None, "lambda:ListVersionsByFunction")
            .await?;
        let account = &owner;
        check_unqualified(&fref)?;
        let latest = self.load(account, &fref).await?;
        let limit = super::page_limit(max_items) as usize;
        let after: Option<u64> =
            match marker {
                None | Some("") => None,
                Some(m) => Some(decode_marker(m)?.parse().map_err(|_| {
                    LambdaError::InvalidParameterValue(format!("Invalid marker: {m}"))
                })?),
            };
        let mut versions = Vec::with_capacity(limit + 1);
        if after.is_none() {
            versions.push(latest);
        }
        let want = limit + 1 - versions.len();
        versions.extend(
            self.store
                .list_versions(
                    account,
                    fref.name.as_str(),
                    after.unwrap_or(0),
                    u32::try_from(want).unwrap_or(u32::MAX),
                )
                .await?,
        );
        let next_marker = if versions.len() > limit {
            versions.truncate(limit);
            versions
                .last()
                .map(|v| encode_marker(&v.version_number().unwrap_or(0).to_string()))
        } else {
            None
        };
        Ok(VersionPage {
            versions,
            next_marker,
        })
    }

    /// DeleteFunction with a version number (or an alias name, which names no version).
    pub(super) async fn delete_version(
        &self,
        account: &AccountId,
        fref: &FunctionRef,
        qualifier: &str,
    ) -> Result<(), ControlError> {
        let name = fref.name.as_str();
        let Ok(number) = qualifier.parse::<u64>() else {
            return Err(LambdaError::InvalidParameterValue(
                "Deletion of aliases is not currently supported.".into(),
            )
            .into());
        };
        let _guard = self.code.lock().await;
        if self.latest(account, name).await?.is_none() {
            return Err(self.not_found(account, fref).into());
        }
        let users = self
            .store
            .list_aliases(account, name, Some(qualifier), None, 100)
            .await?;
        if !users.is_empty() {
            let names: Vec<&str> = users.iter().map(|a| a.name.as_str()).collect();
            return Err(LambdaError::ResourceConflict(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                names.join(", ")
            ))
            .into());
        }
        self.forget_version(account, name, number);
        match self.store.delete_version(account, name, number).await? {
            Some(v) => {
                self.drop_policy(account, name, qualifier).await?;
                self.code.collect(&v.code.sha256_hex).await;
                Ok(())
            }
            None => Err(self.not_found(account, fref).into()),
        }
    }
}

/// Why a function (or version) with nothing ready to run cannot be called.
pub(crate) fn not_runnable(f: &Function, region: &str) -> LambdaError {
    match f.state {
        State::Failed | State::Inactive => {
            let reason = f.state_reason.as_ref().map_or("", |r| r.message.as_str());
            LambdaError::ResourceConflict(format!(
                "The function {} could not be invoked because it is in the Failed state: {reason}",
                f.version_arn(region)
            ))
        }
        _ => LambdaError::ResourceConflict(
            "The operation cannot be performed at this time. The function is currently in the \
             following state: Pending"
                .into(),
        ),
    }
}
