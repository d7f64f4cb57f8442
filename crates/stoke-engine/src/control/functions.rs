//! Functions: CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration,
//! DeleteFunction, GetFunction, ListFunctions and the account's usage.
//!
//! A create or an update stores the function (code staged and committed first, so a refused
//! zip leaves nothing behind) and answers at once; [`super::deploy`] finishes it in the
//! background.

use std::collections::BTreeMap;
use std::sync::Arc;

use stoke_core::function::limits;
use stoke_core::validate::Violations;
use stoke_core::{
    AccountId, ConfigInput, Function, FunctionRef, LambdaError, LastUpdateStatus, State,
};
use stoke_store::{AccountUsage, StoreError};

use super::tags::check_tags;
use super::{
    ControlPlane, check_revision, check_unqualified, creating, decode_marker, encode_marker,
    new_revision, now, page_limit, versions,
};
use crate::ControlError;

/// A CreateFunction request, decoded.
#[derive(Debug, Clone, Default)]
pub struct CreateFunction {
    /// `FunctionName` as sent (a name or an ARN).
    pub function_name: String,
    pub config: ConfigInput,
    /// `Code.ZipFile`, decoded from base64.
    pub zip: Vec<u8>,
    pub tags: BTreeMap<String, String>,
    /// `Publish`: publish version 1 as well (answered instead of `$LATEST`).
    pub publish: bool,
}

/// A page of functions and the marker of the next page.
#[derive(Debug, Clone)]
pub struct FunctionPage {
    pub functions: Vec<Function>,
    pub next_marker: Option<String>,
}

fn already_exists(name: &str) -> LambdaError {
    LambdaError::ResourceConflict(format!("Function already exist: {name}"))
}

fn check_zip_size(zip: &[u8]) -> Result<(), LambdaError> {
    if zip.len() as u64 > limits::MAX_ZIP_BYTES {
        return Err(LambdaError::RequestEntityTooLarge(format!(
            "Zipped size must be smaller than {} bytes",
            limits::MAX_ZIP_BYTES
        )));
    }
    if zip.is_empty() {
        return Err(LambdaError::InvalidParameterValue(
            crate::error::UNUSABLE_ZIP.into(),
        ));
    }
    Ok(())
}

impl ControlPlane {
    /// Resolves a function as a caller named it (GetFunction's access).
    pub async fn get_function(
        &self,
        account: &AccountId,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Function, ControlError> {
        self.get_function_as(account, name, qualifier, "lambda:GetFunction")
            .await
    }

    /// Resolves a function as a caller named it, for `action`: in the caller's account, or
    /// in another whose policy grants the caller that action.
    pub async fn get_function_as(
        &self,
        account: &AccountId,
        name: &str,
        qualifier: Option<&str>,
        action: &str,
    ) -> Result<Function, ControlError> {
        let (fref, owner) = self.resolve_ref(account, name, qualifier, action).await?;
        self.load(&owner, &fref).await
    }

    /// ListFunctions: `$LATEST` of each function by name; with `FunctionVersion=ALL`, each
    /// function's `$LATEST` followed by its versions by number (the marker then names a
    /// function and a version).
    pub async fn list_functions(
        &self,
        account: &AccountId,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<FunctionPage, ControlError> {
        let mut v = Violations::new();
        if let Some(fv) = function_version {
            v.one_of("functionVersion", fv, &["ALL"]);
        }
        if let Some(m) = max_items {
            v.range("maxItems", m, 1, 10_000);
        }
        v.into_result()?;
        let limit = page_limit(max_items) as usize;
        let after = match marker {
            None | Some("") => None,
            Some(m) => Some(decode_marker(m)?),
        };
        let mut functions = if function_version.is_some() {
            self.list_all_versions(account, after.as_deref(), limit + 1)
                .await?
        } else {
            self.store
                .list_functions(account, after.as_deref(), limit as u32 + 1)
                .await?
        };
        let next_marker = if functions.len() > limit {
            functions.truncate(limit);
            functions.last().map(|f| {
                if function_version.is_some() {
                    encode_marker(&format!("{}:{}", f.name, f.version))
                } else {
                    encode_marker(f.name.as_str())
                }
            })
        } else {
            None
        };
        Ok(FunctionPage {
            functions,
            next_marker,
        })
    }

    /// Up to `want` records of every version of every function, after `after`
    /// (`NAME:VERSION`, the last one of the previous page).
    async fn list_all_versions(
        &self,
        account: &AccountId,
        after: Option<&str>,
        want: usize,
    ) -> Result<Vec<Function>, ControlError> {
        let mut out = Vec::with_capacity(want);
        let mut after_name = None;
        if let Some(m) = after {
            let invalid = || LambdaError::InvalidParameterValue(format!("Invalid marker: {m}"));
            let (name, version) = m.rsplit_once(':').ok_or_else(invalid)?;
            let after_version = match version {
                stoke_core::LATEST => 0,
                n => n.parse().map_err(|_| invalid())?,
            };
            self.push_versions(account, name, after_version, want, &mut out)
                .await?;
            after_name = Some(name.to_owned());
        }
        while out.len() < want {
            let page = self
                .store
                .list_functions(account, after_name.as_deref(), 100)
                .await?;
            let Some(last) = page.last() else { break };
            after_name = Some(last.name.as_str().to_owned());
            for f in page {
                if out.len() >= want {
                    break;
                }
                let name = f.name.as_str().to_owned();
                out.push(f);
                self.push_versions(account, &name, 0, want, &mut out)
                    .await?;
            }
        }
        Ok(out)
    }

    /// Appends `name`'s versions numbered above `after` to `out`, until it holds `want`.
    async fn push_versions(
        &self,
        account: &AccountId,
        name: &str,
        mut after: u64,
        want: usize,
        out: &mut Vec<Function>,
    ) -> Result<(), ControlError> {
        while out.len() < want {
            let n = u32::try_from(want - out.len()).unwrap_or(u32::MAX);
            let page = self.store.list_versions(account, name, after, n).await?;
            let Some(last) = page.last() else { break };
            after = last.version_number().unwrap_or(u64::MAX);
            let short = page.len() < n as usize;
            out.extend(page);
            if short {
                break;
            }
        }
        Ok(())
    }

    pub async fn account_usage(&self, account: &AccountId) -> Result<AccountUsage, ControlError> {
        Ok(self.store.account_usage(account).await?)
    }

    pub async fn create_function(
        self: &Arc<Self>,
        account: &AccountId,
        req: CreateFunction,
    ) -> Result<Function, ControlError> {
        let fref = FunctionRef::parse_new("functionName", &req.function_name)?;
        self.authorize(account, &fref, "lambda:CreateFunction")
            .await?;
        if fref.qualifier.is_some() {
            return Err(LambdaError::InvalidParameterValue(
                "A function's name cannot carry a qualifier when it is created.".into(),
            )
            .into());
        }
        let config = req.config.into_new_config()?;
        let config_runtime = config.runtime.clone();
        check_tags(&req.tags, 0)?;
        check_zip_size(&req.zip)?;
        let name = fref.name.as_str().to_owned();
        if self.latest(account, &name).await?.is_some() {
            return Err(already_exists(&name).into());
        }

        let staged = self.code.stage(req.zip.clone()).await?;
        let now = now();
        let _guard = self.code.lock().await;
        let code = self.code.commit(req.zip, staged).await?;
        let f = Function {
            account: account.clone(),
            name: fref.name,
            config,
            code,
            state: State::Pending,
            state_reason: Some(creating()),
            last_update_status: None,
            last_update_reason: None,
            revision_id: new_revision(),
            last_modified: now,
            tags: req.tags,
            generation: 1,
            version: stoke_core::LATEST.to_owned(),
            serving: None,
            reserved_concurrency: None,
            runtime_version_arn: self.runtime_version_arn(&config_runtime),
        };
        if let Err(e) = self.insert_function(&f).await {
            self.code.collect(&f.code.sha256_hex).await;
            return Err(match e {
                StoreError::Conflict => already_exists(&name).into(),
                e => e.into(),
            });
        }
        let answer = if req.publish {
            self.publish_locked(&f, None).await?
        } else {
            f.clone()
        };
        drop(_guard);
        self.spawn_deploy(f.account.clone(), name, f.generation);
        Ok(answer)
    }

    /// UpdateFunctionCode.
    pub async fn update_code(
        self: &Arc<Self>,
        account: &AccountId,
        name: &str,
        zip: Vec<u8>,
        revision_id: Option<&str>,
        publish: bool,
    ) -> Result<Function, ControlError> {
        let (fref, owner) = self
            .resolve_ref(account, name, None, "lambda:UpdateFunctionCode")
            .await?;
        let account = &owner;
        check_unqualified(&fref)?;
        check_zip_size(&zip)?;
        let old = self.load(account, &fref).await?;
        check_revision(&old, revision_id)?;
        old.check_not_updating(&self.region)?;

        let staged = self.code.stage(zip.clone()).await?;
        let _guard = self.code.lock().await;
        let code = self.code.commit(zip, staged).await?;
        let mut f = old.clone();
        f.code = code;
        begin_update(&mut f, &old);
        f.runtime_version_arn = self.runtime_version_arn(&f.config.runtime);
        if let Err(e) = self.replace_function(&f, &old.revision_id).await {
            self.code.collect(&f.code.sha256_hex).await;
            return Err(e.into());
        }
        if old.code.sha256_hex != f.code.sha256_hex {
            // Kept while it still serves calls or a version uses it (`code_in_use`).
            self.code.collect(&old.code.sha256_hex).await;
        }
        let answer = if publish {
            self.publish_locked(&f, None).await?
        } else {
            f.clone()
        };
        drop(_guard);
        self.spawn_deploy(f.account.clone(), f.name.as_str().to_owned(), f.generation);
        Ok(answer)
    }

    /// UpdateFunctionConfiguration.
    pub async fn update_configuration(
        self: &Arc<Self>,
        account: &AccountId,
        name: &str,
        input: ConfigInput,
        revision_id: Option<&str>,
    ) -> Result<Function, ControlError> {
        let (fref, owner) = self
            .resolve_ref(account, name, None, "lambda:UpdateFunctionConfiguration")
            .await?;
        let account = &owner;
        check_unqualified(&fref)?;
        // The model's checks come before anything is looked up, as on AWS.
        let mut v = Violations::new();
        input.check(&mut v);
        v.into_result()?;
        let old = self.load(account, &fref).await?;
        check_revision(&old, revision_id)?;
        old.check_not_updating(&self.region)?;
        let mut f = old.clone();
        f.config = input.apply_to(&old.config)?;
        begin_update(&mut f, &old);
        f.runtime_version_arn = self.runtime_version_arn(&f.config.runtime);
        self.replace_function(&f, &old.revision_id).await?;
        self.spawn_deploy(f.account.clone(), f.name.as_str().to_owned(), f.generation);
        Ok(f)
    }

    /// DeleteFunction: the whole function with its versions and aliases, or one version.
    pub async fn delete_function(
        &self,
        account: &AccountId,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let (fref, owner) = self
            .resolve_ref(account, name, qualifier, "lambda:DeleteFunction")
            .await?;
        let account = &owner;
        match fref.qualifier.as_deref() {
            None => {}
            Some("$LATEST") => {
                return Err(LambdaError::InvalidParameterValue(
                    "$LATEST version cannot be deleted without deleting the function.".into(),
                )
                .into());
            }
            Some(q) => return self.delete_version(account, &fref, q).await,
        }
        let name = fref.name.as_str();
        let _guard = self.code.lock().await;
        let mut shas = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.list_versions(account, name, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.version_number().unwrap_or(u64::MAX);
            shas.extend(page.into_iter().map(|v| v.code.sha256_hex));
        }
        self.forget_function(account, name);
        let deleted = self.store.delete_function(account, name).await;
        self.forget_all_of(account, name);
        self.changed(account, name);
        // Its reservation, if it had one, is the account's unreserved again.
        self.limits.forget_reserved(account.as_str());
        let Some(f) = deleted? else {
            return Err(self.not_found(account, &fref).into());
        };
        shas.push(f.code.sha256_hex);
        shas.extend(f.serving.map(|s| s.code.sha256_hex));
        self.code.collect_all(shas).await;
        Ok(())
    }
}

/// Marks `f` (a changed copy of `old`) as an update in progress.
fn begin_update(f: &mut Function, old: &Function) {
    // What runs now keeps running until the update is ready (a record from before serving
    // generations were kept gets its own code as its serving generation here).
    f.serving = versions::serving_of(old);
    f.last_update_status = Some(LastUpdateStatus::InProgress);
    f.last_update_reason = Some(creating());
    f.generation += 1;
    f.revision_id = new_revision();
    f.last_modified = now();
}
