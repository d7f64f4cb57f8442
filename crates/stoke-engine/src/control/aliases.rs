//! Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases, and the rollback
//! of `stoke rollback`.
//!
//! The model's checks come first (`ValidationException`), then the function (404), then
//! Lambda's routing rules (`InvalidParameterValueException`), then the versions named (404).
//! Writes that make an alias point at a version hold the code lock, which deleting a version
//! holds too, so an alias never ends up pointing at a version deleted meanwhile.

use stoke_core::alias::check_routing;
use stoke_core::validate::Violations;
use stoke_core::{AccountId, Alias, AliasInput, AliasTarget, FunctionRef, LATEST, LambdaError};
use stoke_store::StoreError;

use super::{
    ControlPlane, check_unqualified, decode_marker, encode_marker, new_revision, page_limit,
    revision_mismatch,
};
use crate::ControlError;

/// A page of ListAliases.
#[derive(Debug, Clone)]
pub struct AliasPage {
    pub aliases: Vec<Alias>,
    pub next_marker: Option<String>,
}

fn alias_not_found(arn: &str) -> LambdaError {
    LambdaError::ResourceNotFound(format!("Alias not found: {arn}"))
}

impl ControlPlane {
    fn alias_arn(&self, account: &AccountId, fref: &FunctionRef, alias: &str) -> String {
        format!(
            "{}:{alias}",
            stoke_core::ids::function_arn(&self.region, account, fref.name.as_str())
        )
    }

    /// The function an alias operation names (unqualified), checked to exist, and its owner
    /// (the caller, or another account whose policy grants `action`).
    async fn alias_function(
        &self,
        account: &AccountId,
        name: &str,
        action: &str,
    ) -> Result<(FunctionRef, AccountId), ControlError> {
        let (fref, owner) = self.resolve_ref(account, name, None, action).await?;
        check_unqualified(&fref)?;
        self.load(&owner, &fref).await?;
        Ok((fref, owner))
    }

    /// Every version a target names must exist.
    async fn check_versions_exist(
        &self,
        account: &AccountId,
        fref: &FunctionRef,
        target: &AliasTarget,
    ) -> Result<(), ControlError> {
        let versions =
            std::iter::once(&target.function_version).chain(target.additional_weights.keys());
        for v in versions {
            if v == LATEST {
                continue;
            }
            let missing = match v.parse::<u64>() {
                Ok(n) => self
                    .version(account, fref.name.as_str(), n)
                    .await?
                    .is_none(),
                Err(_) => true,
            };
            if missing {
                return Err(LambdaError::function_not_found(&format!(
                    "{}:{v}",
                    stoke_core::ids::function_arn(&self.region, account, fref.name.as_str())
                ))
                .into());
            }
        }
        Ok(())
    }

    /// CreateAlias.
    pub async fn create_alias(
        &self,
        account: &AccountId,
        function: &str,
        input: AliasInput,
    ) -> Result<Alias, ControlError> {
        let mut v = Violations::new();
        v.not_null("functionVersion", input.function_version.as_ref());
        input.check(&mut v);
        v.into_result()?;
        let (fref, owner) = self
            .alias_function(account, function, "lambda:CreateAlias")
            .await?;
        let account = &owner;
        let target = AliasTarget {
            function_version: input.function_version.clone().unwrap_or_default(),
            additional_weights: input.additional_weights.clone().unwrap_or_default(),
        };
        check_routing(&target)?;
        let _guard = self.code.lock().await;
        self.check_versions_exist(account, &fref, &target).await?;
        let alias = Alias {
            account: account.clone(),
            function_name: fref.name.as_str().to_owned(),
            name: input.name.clone(),
            target,
            description: input.description.unwrap_or_default(),
            revision_id: new_revision(),
            previous: None,
        };
        match self.store.insert_alias(&alias).await {
            Ok(()) => {
                self.aliases.put(Self::alias_key(&alias), alias.clone());
                self.changed(account, fref.name.as_str());
                Ok(alias)
            }
            Err(StoreError::Conflict) => Err(LambdaError::ResourceConflict(format!(
                "Alias already exists: {}",
                self.alias_arn(account, &fref, &input.name)
            ))
            .into()),
            Err(StoreError::NotFound) => Err(self.not_found(account, &fref).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// GetAlias.
    pub async fn get_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Alias, ControlError> {
        let mut v = Violations::new();
        if v.length("name", name, 1, 128) {
            v.pattern("name", name, stoke_core::validate::patterns::ALIAS);
        }
        v.into_result()?;
        let (fref, owner) = self
            .alias_function(account, function, "lambda:GetAlias")
            .await?;
        let account = &owner;
        self.alias(account, fref.name.as_str(), name)
            .await?
            .ok_or_else(|| alias_not_found(&self.alias_arn(account, &fref, name)).into())
    }

    /// UpdateAlias: changes what it names; routing is replaced when `RoutingConfig` is sent.
    pub async fn update_alias(
        &self,
        account: &AccountId,
        function: &str,
        input: AliasInput,
        revision_id: Option<&str>,
    ) -> Result<Alias, ControlError> {
        let mut v = Violations::new();
        input.check(&mut v);
        v.into_result()?;
        let (fref, owner) = self
            .alias_function(account, function, "lambda:UpdateAlias")
            .await?;
        let account = &owner;
        let _guard = self.code.lock().await;
        let old = self
            .store
            .get_alias(account, fref.name.as_str(), &input.name)
            .await?
            .ok_or_else(|| alias_not_found(&self.alias_arn(account, &fref, &input.name)))?;
        if revision_id.is_some_and(|r| r != old.revision_id) {
            return Err(revision_mismatch().into());
        }
        let target = AliasTarget {
            function_version: input
                .function_version
                .clone()
                .unwrap_or_else(|| old.target.function_version.clone()),
            additional_weights: input
                .additional_weights
                .clone()
                .unwrap_or_else(|| old.target.additional_weights.clone()),
        };
        check_routing(&target)?;
        self.check_versions_exist(account, &fref, &target).await?;
        let mut alias = old.clone();
        if target != old.target {
            alias.previous = Some(old.target.clone());
        }
        alias.target = target;
        if let Some(d) = input.description {
            alias.description = d;
        }
        alias.revision_id = new_revision();
        self.replace_alias(&alias, &old.revision_id).await?;
        Ok(alias)
    }

    /// Moves an alias back to the target it had before its last change (`stoke rollback`).
    pub async fn rollback_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Alias, ControlError> {
        let (fref, owner) = self
            .alias_function(account, function, "lambda:UpdateAlias")
            .await?;
        let account = &owner;
        let _guard = self.code.lock().await;
        let old = self
            .store
            .get_alias(account, fref.name.as_str(), name)
            .await?
            .ok_or_else(|| alias_not_found(&self.alias_arn(account, &fref, name)))?;
        let Some(previous) = old.previous.clone() else {
            return Err(LambdaError::ResourceConflict(format!(
                "The alias {} has no previous version to roll back to.",
                self.alias_arn(account, &fref, name)
            ))
            .into());
        };
        self.check_versions_exist(account, &fref, &previous).await?;
        let mut alias = old.clone();
        alias.previous = Some(old.target.clone());
        alias.target = previous;
        alias.revision_id = new_revision();
        self.replace_alias(&alias, &old.revision_id).await?;
        Ok(alias)
    }

    async fn replace_alias(&self, alias: &Alias, expected: &str) -> Result<(), ControlError> {
        Ok(self
            .aliases
            .write_through(
                Self::alias_key(alias),
                alias,
                self.store.replace_alias(alias, expected),
            )
            .await
            .map(|()| self.changed(&alias.account, &alias.function_name))?)
    }

    /// DeleteAlias.
    pub async fn delete_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<(), ControlError> {
        let mut v = Violations::new();
        if v.length("name", name, 1, 128) {
            v.pattern("name", name, stoke_core::validate::patterns::ALIAS);
        }
        v.into_result()?;
        let (fref, owner) = self
            .alias_function(account, function, "lambda:DeleteAlias")
            .await?;
        let account = &owner;
        let _guard = self.code.lock().await;
        self.forget_alias(account, fref.name.as_str(), name);
        // An alias that does not exist is deleted already: 204, as AWS answers it.
        self.store
            .delete_alias(account, fref.name.as_str(), name)
            .await?;
        // Its policy goes with it: a new alias of the name starts with none.
        self.drop_policy(account, fref.name.as_str(), name).await?;
        Ok(())
    }

    /// ListAliases, optionally only those that route calls to `function_version`.
    pub async fn list_aliases(
        &self,
        account: &AccountId,
        function: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<AliasPage, ControlError> {
        let mut v = Violations::new();
        if let Some(m) = max_items {
            v.range("maxItems", m, 1, 10_000);
        }
        if let Some(fv) = function_version
            && v.length("functionVersion", fv, 1, 1024)
        {
            v.pattern(
                "functionVersion",
                fv,
                stoke_core::validate::patterns::VERSION,
            );
        }
        v.into_result()?;
        let (fref, owner) = self
            .alias_function(account, function, "lambda:ListAliases")
            .await?;
        let account = &owner;
        let limit = page_limit(max_items);
        let after = match marker {
            None | Some("") => None,
            Some(m) => Some(decode_marker(m)?),
        };
        let mut aliases = self
            .store
            .list_aliases(
                account,
                fref.name.as_str(),
                function_version,
                after.as_deref(),
                limit + 1,
            )
            .await?;
        let next_marker = if aliases.len() > limit as usize {
            aliases.truncate(limit as usize);
            aliases.last().map(|a| encode_marker(&a.name))
        } else {
            None
        };
        Ok(AliasPage {
            aliases,
            next_marker,
        })
    }
}
