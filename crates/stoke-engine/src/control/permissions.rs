//! Functions' resource-based policies: AddPermission, RemovePermission, GetPolicy, and the
//! one gate every operation on a function passes, [`ControlPlane::resolve_ref`]: a function
//! of the caller's own account is the caller's; another account's is reached only when that
//! account's policy (of the qualifier addressed) grants the caller the operation's action.
//! Otherwise the answer is `AccessDeniedException` naming the caller and the action, the same
//! whether the function exists or not, and the operation goes no further.
//!
//! A policy lives per qualifier, as Lambda's does: `""` (the function's own, which also
//! covers `$LATEST`), a version number or an alias name. Its `RevisionId` is the policy's own,
//! renewed by each change, and every write is a compare-and-swap on it.

use stoke_core::policy::{
    MAX_POLICY_BYTES, PermissionInput, Policy, Request, RequestPrincipal, access_denied,
    qualifier_key, resource_arn,
};
use stoke_core::validate::{Violations, patterns};
use stoke_core::{AccountId, FunctionRef, LATEST, LambdaError};
use stoke_store::StoreError;

use super::{CAS_RETRIES, ControlPlane, new_revision, revision_mismatch};
use crate::ControlError;

/// What GetPolicy answers: the document and its revision.
#[derive(Debug, Clone)]
pub struct PolicyAnswer {
    pub document: String,
    pub revision_id: String,
}

fn no_policy() -> LambdaError {
    LambdaError::ResourceNotFound("No policy is associated with the given resource.".into())
}

impl ControlPlane {
    /// Parses a reference to an existing function and says whose it is: the caller's own, or
    /// another account's whose policy grants `action` to the caller.
    pub(crate) async fn resolve_ref(
        &self,
        caller: &AccountId,
        name: &str,
        qualifier: Option<&str>,
        action: &str,
    ) -> Result<(FunctionRef, AccountId), ControlError> {
        let fref = self.parse_name(name, qualifier)?;
        let owner = self.authorize(caller, &fref, action).await?;
        Ok((fref, owner))
    }

    /// Parses a reference that must name a function of the caller's own account (operations
    /// whose state is kept per caller, such as event-invoke configurations): another
    /// account's is refused as Lambda refuses an action no policy grants.
    pub(crate) fn own_ref(
        &self,
        caller: &AccountId,
        name: &str,
        qualifier: Option<&str>,
        action: &str,
    ) -> Result<FunctionRef, LambdaError> {
        let fref = self.parse_name(name, qualifier)?;
        self.check_region(&fref)?;
        match &fref.account {
            Some(owner) if owner != caller => Err(access_denied(
                caller,
                action,
                &self.qualified_arn(owner, &fref),
            )),
            _ => Ok(fref),
        }
    }

    /// The owner of the function `fref` names, if `caller` may perform `action` on it.
    pub(crate) async fn authorize(
        &self,
        caller: &AccountId,
        fref: &FunctionRef,
        action: &str,
    ) -> Result<AccountId, ControlError> {
        self.check_region(fref)?;
        let owner = match &fref.account {
            Some(a) if a != caller => a.clone(),
            _ => return Ok(caller.clone()),
        };
        // What no policy can grant (creating functions, changing a policy) is refused whatever
        // a wildcard statement says.
        let grantable = stoke_core::policy::input::grantable(action);
        let name = fref.name.as_str();
        let key = qualifier_key(fref.qualifier.as_deref());
        let resource = resource_arn(
            &stoke_core::ids::function_arn(&self.region, &owner, name),
            key,
        );
        let allowed = grantable
            && self.policy(&owner, name, key).await?.is_some_and(|p| {
                p.allows(&Request {
                    principal: RequestPrincipal::Account(caller),
                    action,
                    resource: &resource,
                    function_url_auth_type: None,
                    source_account: None,
                    source_arn: None,
                })
            });
        if allowed {
            Ok(owner)
        } else {
            // Named as the caller addressed it; whether it exists is not said.
            let addressed = self.qualified_arn(&owner, fref);
            Err(access_denied(caller, action, &addressed).into())
        }
    }

    /// A qualifier's policy, through the cache.
    async fn policy(
        &self,
        owner: &AccountId,
        name: &str,
        key: &str,
    ) -> Result<Option<Policy>, StoreError> {
        self.policies
            .get_or_load(
                (owner.clone(), name.to_owned(), key.to_owned()),
                self.store.get_policy(owner, name, key),
            )
            .await
    }

    /// Removes a version's or alias's policy (it is being deleted).
    pub(super) async fn drop_policy(
        &self,
        owner: &AccountId,
        name: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.policies
            .forget(&(owner.clone(), name.to_owned(), key.to_owned()));
        self.store.delete_policy(owner, name, key).await?;
        // After a version's or an alias's deletion (their callers' last write).
        self.changed(owner, name);
        Ok(())
    }

    /// The qualifier a permission operation names must exist: the function, a version or an
    /// alias. Answers the policy's key and the ARN its statements name.
    async fn policy_target(
        &self,
        owner: &AccountId,
        fref: &FunctionRef,
    ) -> Result<(String, String), ControlError> {
        let name = fref.name.as_str();
        let not_found = || self.not_found(owner, fref);
        self.latest(owner, name).await?.ok_or_else(not_found)?;
        let key = qualifier_key(fref.qualifier.as_deref()).to_owned();
        if !key.is_empty() {
            let exists = match key.parse::<u64>() {
                Ok(n) => self.version(owner, name, n).await?.is_some(),
                Err(_) => self.alias(owner, name, &key).await?.is_some(),
            };
            if !exists {
                return Err(not_found().into());
            }
        }
        let arn = resource_arn(
            &stoke_core::ids::function_arn(&self.region, owner, name),
            &key,
        );
        Ok((key, arn))
    }

    /// AddPermission: adds a statement to the policy of the function, version or alias named;
    /// answers the statement as Lambda shows it.
    pub async fn add_permission(
        &self,
        caller: &AccountId,
        name: &str,
        qualifier: Option<&str>,
        input: PermissionInput,
    ) -> Result<String, ControlError> {
        let fref = self.parse_name(name, qualifier)?;
        let statement = input.check()?;
        if fref.qualifier.as_deref() == Some(LATEST) {
            return Err(LambdaError::InvalidParameterValue(
                "We currently do not support adding policies for $LATEST.".into(),
            )
            .into());
        }
        let owner = self
            .authorize(caller, &fref, "lambda:AddPermission")
            .await?;
        let (key, arn) = self.policy_target(&owner, &fref).await?;
        let statement = statement.on(arn);
        let fname = fref.name.as_str();
        for _ in 0..CAS_RETRIES {
            let current = self.store.get_policy(&owner, fname, &key).await?;
            check_policy_revision(current.as_ref(), input.revision_id.as_deref())?;
            if current
                .as_ref()
                .is_some_and(|p| p.statement(&statement.sid).is_some())
            {
                return Err(LambdaError::ResourceConflict(format!(
                    "The statement id ({}) provided already exists. Please provide a new \
                     statement id, or remove the existing statement.",
                    statement.sid
                ))
                .into());
            }
            let mut next = current
                .clone()
                .unwrap_or_else(|| Policy::empty(String::new()));
            next.revision_id = new_revision();
            next.statements.push(statement.clone());
            let size = next.document().len();
            if size > MAX_POLICY_BYTES {
                return Err(LambdaError::PolicyLengthExceeded(format!(
                    "The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES})."
                ))
                .into());
            }
            let expected = current.as_ref().map(|p| p.revision_id.as_str());
            if self
                .write_policy(&owner, fname, &key, Some(&next), expected)
                .await?
            {
                return Ok(statement.to_json());
            }
        }
        Err(super::busy())
    }

    /// RemovePermission: removes one statement (and the policy with its last one).
    pub async fn remove_permission(
        &self,
        caller: &AccountId,
        name: &str,
        qualifier: Option<&str>,
        sid: &str,
        revision_id: Option<&str>,
    ) -> Result<(), ControlError> {
        let fref = self.parse_name(name, qualifier)?;
        let mut v = Violations::new();
        v.pattern("statementId", sid, patterns::NAMESPACED_STATEMENT_ID);
        v.length("statementId", sid, 1, 100);
        v.into_result()?;
        let owner = self
            .authorize(caller, &fref, "lambda:RemovePermission")
            .await?;
        let (key, _) = self.policy_target(&owner, &fref).await?;
        let fname = fref.name.as_str();
        for _ in 0..CAS_RETRIES {
            let current = self
                .store
                .get_policy(&owner, fname, &key)
                .await?
                .ok_or_else(no_policy)?;
            if current.statement(sid).is_none() {
                return Err(LambdaError::ResourceNotFound(format!(
                    "Statement {sid} is not found in resource policy."
                ))
                .into());
            }
            check_policy_revision(Some(&current), revision_id)?;
            let mut next = current.clone();
            next.statements.retain(|s| s.sid != sid);
            next.revision_id = new_revision();
            let next = (!next.statements.is_empty()).then_some(next);
            if self
                .write_policy(
                    &owner,
                    fname,
                    &key,
                    next.as_ref(),
                    Some(&current.revision_id),
                )
                .await?
            {
                return Ok(());
            }
        }
        Err(super::busy())
    }

    /// GetPolicy: the document of the function's, version's or alias's policy.
    pub async fn get_policy(
        &self,
        caller: &AccountId,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<PolicyAnswer, ControlError> {
        let (fref, owner) = self
            .resolve_ref(caller, name, qualifier, "lambda:GetPolicy")
            .await?;
        let (key, _) = self.policy_target(&owner, &fref).await?;
        let p = self
            .policy(&owner, fref.name.as_str(), &key)
            .await?
            .ok_or_else(|| {
                LambdaError::ResourceNotFound("The resource you requested does not exist.".into())
            })?;
        Ok(PolicyAnswer {
            document: p.document(),
            revision_id: p.revision_id,
        })
    }

    /// Writes a policy with a compare-and-swap: `false` if another writer came first.
    async fn write_policy(
        &self,
        owner: &AccountId,
        name: &str,
        key: &str,
        next: Option<&Policy>,
        expected: Option<&str>,
    ) -> Result<bool, ControlError> {
        let cache_key = (owner.clone(), name.to_owned(), key.to_owned());
        match self
            .store
            .put_policy(owner, name, key, next, expected)
            .await
        {
            Ok(()) => {
                match next {
                    Some(p) => self.policies.put(cache_key, p.clone()),
                    None => self.policies.forget(&cache_key),
                }
                self.changed(owner, name);
                Ok(true)
            }
            Err(StoreError::Stale { .. }) => {
                self.policies.forget(&cache_key);
                Ok(false)
            }
            Err(StoreError::NotFound) => Err(LambdaError::function_not_found(
                &stoke_core::ids::function_arn(&self.region, owner, name),
            )
            .into()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A `RevisionId` the caller gave must be the policy's (a policy that does not exist has
/// none to match).
fn check_policy_revision(
    current: Option<&Policy>,
    expected: Option<&str>,
) -> Result<(), LambdaError> {
    match expected {
        Some(r) if current.map(|p| p.revision_id.as_str()) != Some(r) => Err(revision_mismatch()),
        _ => Ok(()),
    }
}
