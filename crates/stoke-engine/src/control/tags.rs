//! Tags (ListTags, TagResource, UntagResource) and reserved concurrency
//! (Put/DeleteFunctionConcurrency, which leaves the account at least
//! [`crate::accounts::AccountLimits::min_unreserved`] of its concurrency unreserved, as Lambda does): small changes of
//! `$LATEST`'s record, each one compare-and-swap ([`ControlPlane::cas`]).

use std::collections::BTreeMap;

use stoke_core::validate::{Violations, patterns};
use stoke_core::{AccountId, Function, FunctionRef, LambdaError};

use super::ControlPlane;
use crate::ControlError;

/// Lambda's limits on tags: 50 per resource, keys of 1–128 characters, values up to 256, and
/// no `aws:` prefix.
pub(super) fn check_tags(
    tags: &BTreeMap<String, String>,
    already: usize,
) -> Result<(), LambdaError> {
    let mut v = Violations::new();
    for (k, val) in tags {
        v.length("tags.key", k, 1, 128);
        v.length("tags.value", val, 0, 256);
    }
    v.into_result()?;
    if tags
        .keys()
        .any(|k| k.to_ascii_lowercase().starts_with("aws:"))
    {
        return Err(LambdaError::InvalidParameterValue(
            "Tag keys starting with 'aws:' are reserved for AWS use.".into(),
        ));
    }
    if tags.len() + already > 50 {
        return Err(LambdaError::InvalidParameterValue(
            "Number of tags exceeds resource tag limit.".into(),
        ));
    }
    Ok(())
}

impl ControlPlane {
    /// The function a taggable ARN names (tags are on functions, not on qualified ARNs).
    async fn tagged_ref(
        &self,
        account: &AccountId,
        arn: &str,
        action: &str,
    ) -> Result<(FunctionRef, AccountId), ControlError> {
        let mut v = Violations::new();
        if v.length("resource", arn, 1, 256) {
            v.pattern("resource", arn, patterns::TAGGABLE_ARN);
        }
        v.into_result()?;
        let fref = FunctionRef::parse("resource", arn, patterns::NAMESPACED_FUNCTION_NAME, 256)?;
        if fref.qualifier.is_some() {
            return Err(LambdaError::InvalidParameterValue(
                "Tags on function aliases and versions are not supported. Please specify a function \
                 ARN."
                    .into(),
            )
            .into());
        }
        let owner = self.authorize(account, &fref, action).await?;
        Ok((fref, owner))
    }

    /// `old`, or the function-not-found error of `fref`.
    fn existing<'f>(
        &self,
        account: &AccountId,
        fref: &FunctionRef,
        old: Option<&'f Function>,
    ) -> Result<&'f Function, ControlError> {
        old.ok_or_else(|| self.not_found(account, fref).into())
    }

    /// The tags of the function an ARN names.
    pub async fn list_tags(
        &self,
        account: &AccountId,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, ControlError> {
        let (fref, owner) = self.tagged_ref(account, arn, "lambda:ListTags").await?;
        let account = &owner;
        Ok(self.load(account, &fref).await?.tags)
    }

    /// TagResource: adds or replaces tags.
    pub async fn tag(
        &self,
        account: &AccountId,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), ControlError> {
        let (fref, owner) = self.tagged_ref(account, arn, "lambda:TagResource").await?;
        let account = &owner;
        if tags.is_empty() {
            // AWS's answer to `Tags: {}` (the model allows an empty map; the service does not).
            return Err(LambdaError::InvalidParameterValue(
                "An error occurred and the request cannot be processed.".into(),
            )
            .into());
        }
        self.cas(account, fref.name.as_str(), |old| {
            let old = self.existing(account, &fref, old)?;
            check_tags(
                &tags,
                old.tags.keys().filter(|k| !tags.contains_key(*k)).count(),
            )?;
            let mut f = old.clone();
            f.tags.extend(tags.clone());
            Ok(Some(f))
        })
        .await?;
        Ok(())
    }

    /// UntagResource: removes tags by key (absent keys are fine).
    pub async fn untag(
        &self,
        account: &AccountId,
        arn: &str,
        keys: &[String],
    ) -> Result<(), ControlError> {
        let (fref, owner) = self
            .tagged_ref(account, arn, "lambda:UntagResource")
            .await?;
        let account = &owner;
        self.cas(account, fref.name.as_str(), |old| {
            let mut f = self.existing(account, &fref, old)?.clone();
            for k in keys {
                f.tags.remove(k);
            }
            Ok(Some(f))
        })
        .await?;
        Ok(())
    }

    /// PutFunctionConcurrency (`Some`) and DeleteFunctionConcurrency (`None`).
    pub async fn set_reserved_concurrency(
        &self,
        account: &AccountId,
        name: &str,
        reserved: Option<u32>,
    ) -> Result<Function, ControlError> {
        let action = if reserved.is_some() {
            "lambda:PutFunctionConcurrency"
        } else {
            "lambda:DeleteFunctionConcurrency"
        };
        let (fref, owner) = self.resolve_ref(account, name, None, action).await?;
        let account = &owner;
        if fref.qualifier.is_some() {
            return Err(LambdaError::InvalidParameterValue(
                "This operation is permitted on Lambda functions only. Aliases and versions do not \
                 support this operation. Please specify either a function name or an unqualified \
                 function ARN."
                    .into(),
            )
            .into());
        }
        if let Some(n) = reserved {
            // A function that does not exist is not found, whatever it asks for (AWS names
            // `$LATEST` then, as below).
            if self.latest(account, fref.name.as_str()).await?.is_none() {
                let arn = self.qualified_arn(account, &fref);
                return Err(LambdaError::function_not_found(&format!("{arn}:$LATEST")).into());
            }
            let others = self
                .reserved_concurrency_total(account, Some(fref.name.as_str()))
                .await?;
            let account_limit = self.account_concurrency(account);
            let minimum = self.limits.min_unreserved(account_limit);
            let unreserved = i64::from(account_limit) - others - i64::from(n);
            if unreserved < i64::from(minimum) {
                return Err(LambdaError::InvalidParameterValue(format!(
                    "Specified ReservedConcurrentExecutions for function decreases account's \
                     UnreservedConcurrentExecution below its minimum value of [{minimum}]."
                ))
                .into());
            }
        }
        let written = self
            .cas(account, fref.name.as_str(), |old| {
                // AWS names `$LATEST` when PutFunctionConcurrency finds no function.
                let Some(old) = old else {
                    let arn = self.qualified_arn(account, &fref);
                    return Err(match reserved {
                        Some(_) => LambdaError::function_not_found(&format!("{arn}:$LATEST")),
                        None => LambdaError::function_not_found(&arn),
                    }
                    .into());
                };
                let mut f = old.clone();
                f.reserved_concurrency = reserved;
                Ok(Some(f))
            })
            .await;
        // The next call admits within the new reservations (whatever the write came to).
        self.limits.forget_reserved(account.as_str());
        written?.ok_or_else(|| super::update_in_progress(&self.qualified_arn(account, &fref)))
    }

    /// The reserved concurrency of the account's functions, but `except`'s (the function whose
    /// reservation is being replaced). The sum of all of them is kept in memory (the invoker
    /// asks it on every call of an unreserved function) until a reservation changes.
    pub async fn reserved_concurrency_total(
        &self,
        account: &AccountId,
        except: Option<&str>,
    ) -> Result<i64, ControlError> {
        if except.is_some() {
            return self.read_reserved_total(account, except).await;
        }
        match self.limits.reserved(account.as_str()) {
            Ok(total) => Ok(total),
            Err(epoch) => {
                let total = self.read_reserved_total(account, None).await?;
                self.limits.keep_reserved(account.as_str(), total, epoch);
                Ok(total)
            }
        }
    }

    /// [`Self::reserved_concurrency_total`] read from the store.
    async fn read_reserved_total(
        &self,
        account: &AccountId,
        except: Option<&str>,
    ) -> Result<i64, ControlError> {
        let mut total = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_functions(account, after.as_deref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.as_str().to_owned());
            total += page
                .iter()
                .filter(|f| Some(f.name.as_str()) != except)
                .filter_map(|f| f.reserved_concurrency)
                .map(i64::from)
                .sum::<i64>();
        }
        Ok(total)
    }
}
