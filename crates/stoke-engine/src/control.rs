//! The control plane of functions.
//!
//! Each operation checks the request as the Lambda API model does, then changes the store
//! with a compare-and-swap on the function's `RevisionId`, so a concurrent writer is never
//! silently overwritten. Code is unpacked (and so checked for zip-slip and bombs) *before*
//! anything is stored: a refused zip leaves nothing behind. Once stored, the answer goes back
//! with `State: Pending` (create) or `LastUpdateStatus: InProgress` (update), and a background
//! task runs the [`Preparer`] and moves the function to `Active`/`Successful` or `Failed`.
//!
//! On disk (see [`Layout`]): the zip in the blob store by SHA-256, the unpacked tree in
//! `code/<sha256>/`, shared by every function with the same zip. Blobs and trees no function
//! uses any more are removed; `code_lock` orders "write blob, then reference it" against
//! "unreference, then remove", so removal never races a new reference.

mod aliases;
mod versions;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use async_trait::async_trait;

use base64::Engine as _;
use stoke_core::function::limits;
use stoke_core::validate::{Violations, patterns};
use stoke_core::{
    AccountId, Alias, CodeInfo, ConfigInput, Deployed, Function, FunctionName, FunctionRef,
    LambdaError, LastUpdateStatus, Reason, State,
};
use stoke_store::{AccountUsage, Blobs, Store, StoreError};

use crate::ControlError;
use crate::code::{self, UnpackLimits};
use crate::prepare::Preparer;

/// Where the control plane keeps files, under the data dir.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `code/<sha256>/`: unpacked code, shared by functions with the same zip.
    pub code_root: PathBuf,
    /// Where zips are unpacked before they move into `code_root`; emptied at start-up.
    pub staging_root: PathBuf,
}

impl Layout {
    pub fn under(data_dir: &Path) -> Self {
        Self {
            code_root: data_dir.join("code"),
            staging_root: data_dir.join("staging"),
        }
    }
}

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

pub use aliases::AliasPage;
pub use versions::VersionPage;

/// What one call runs: a function version as it is ready to run now.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub account: AccountId,
    pub name: FunctionName,
    /// `$LATEST` or a version number: `X-Amz-Executed-Version`.
    pub version: String,
    pub deployed: Deployed,
    /// The qualifier the caller named (a version, an alias or `$LATEST`), if any: the
    /// function sees it in its invoked ARN.
    pub qualifier: Option<String>,
    /// The function's reserved concurrency (PutFunctionConcurrency), for every version.
    pub reserved_concurrency: Option<u32>,
}

/// Starts a sandbox of a new generation before calls move to it (the invoker implements it),
/// so that an update never makes a call wait for a compile or an init, and code that fails to
/// initialise never takes traffic.
#[async_trait]
pub trait Warmer: Send + Sync {
    /// Starts one sandbox of `target` and keeps it warm; `Err` is why it could not start, as
    /// the update's `LastUpdateStatusReason` and its code.
    async fn warm(&self, target: &Runnable) -> Result<(), Reason>;
}

type VersionKey = (AccountId, String, u64);
type AliasKey = (AccountId, String, String);

/// The control plane; cheap to share behind an `Arc`.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    blobs: Blobs,
    layout: Layout,
    /// The region ARNs name.
    region: String,
    preparer: Arc<dyn Preparer>,
    unpack_limits: UnpackLimits,
    /// Orders blob writes and references against blob removal (see the module doc).
    code_lock: tokio::sync::Mutex<()>,
    /// Background preparations, so shutdown can wait for them.
    tasks: tokio_util_tasks::Tasks,
    /// Functions as last read or written by this process, so that a call does not read the
    /// store. Every write of a function goes through this control plane, which keeps the
    /// cache in step; several nodes sharing one store will need invalidation here.
    cache: RwLock<HashMap<(AccountId, String), Function>>,
    /// Published versions and aliases, as read or written by this process (same rules).
    version_cache: RwLock<HashMap<VersionKey, Function>>,
    alias_cache: RwLock<HashMap<AliasKey, Alias>>,
    /// Warms a new generation before it takes calls; set once by the invoker.
    warmer: OnceLock<Weak<dyn Warmer>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// How many times a background step retries a compare-and-swap that lost to another writer.
const CAS_RETRIES: usize = 20;

impl ControlPlane {
    /// A control plane over `store` and `blobs`, keeping unpacked code under `layout`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Blobs,
        layout: Layout,
        region: impl Into<String>,
        preparer: Arc<dyn Preparer>,
    ) -> Result<Arc<Self>, ControlError> {
        for dir in [&layout.code_root, &layout.staging_root] {
            std::fs::create_dir_all(dir).map_err(|e| ControlError::Code(code::CodeError::Io(e)))?;
        }
        // Leftovers of unpacks that a crash interrupted.
        if let Ok(entries) = std::fs::read_dir(&layout.staging_root) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(Arc::new(Self {
            store,
            blobs,
            layout,
            region: region.into(),
            preparer,
            unpack_limits: UnpackLimits::default(),
            code_lock: tokio::sync::Mutex::new(()),
            tasks: tokio_util_tasks::Tasks::default(),
            cache: RwLock::new(HashMap::new()),
            version_cache: RwLock::new(HashMap::new()),
            alias_cache: RwLock::new(HashMap::new()),
            warmer: OnceLock::new(),
        }))
    }

    /// Sets what warms new generations (the invoker, once it exists).
    pub fn set_warmer(&self, warmer: Weak<dyn Warmer>) {
        let _ = self.warmer.set(warmer);
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The folder of a code blob's unpacked tree.
    pub fn code_dir(&self, sha256_hex: &str) -> PathBuf {
        self.layout.code_root.join(sha256_hex)
    }

    /// Restarts the preparation of every function a previous run left `Pending` or
    /// `InProgress` (a crash between answering and finishing), after removing the code no
    /// function uses any more.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, ControlError> {
        // Code folders whose collection a previous run had put off (see `collect_later`).
        if let Ok(entries) = std::fs::read_dir(&self.layout.code_root) {
            let _guard = self.code_lock.lock().await;
            for e in entries.flatten() {
                if let Some(sha) = e.file_name().to_str() {
                    self.collect_code(sha).await;
                }
            }
        }
        let mut n = 0;
        for f in self.store.all_functions().await? {
            if f.state == State::Pending
                || f.last_update_status == Some(LastUpdateStatus::InProgress)
            {
                self.spawn_prepare(f.account.clone(), f.name.as_str().to_owned(), f.generation);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Waits for the background preparations under way.
    pub async fn drain(&self) {
        self.tasks.wait().await;
    }

    // ----- reads -------------------------------------------------------------------------

    /// Resolves a function as a caller named it, in the caller's account.
    pub async fn get_function(
        &self,
        account: &AccountId,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Function, ControlError> {
        let fref = self.parse_ref(account, name, qualifier)?;
        self.load(account, &fref).await
    }

    pub async fn list_functions(
        &self,
        account: &AccountId,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<FunctionPage, ControlError> {
        let mut v = Violations::new();
        if let Some(m) = max_items {
            v.range("maxItems", m, 1, 10_000);
        }
        v.into_result()?;
        let limit = max_items.map_or(50, |m| u32::try_from(m).unwrap_or(50));
        let after = match marker {
            None | Some("") => None,
            Some(m) => Some(decode_marker(m)?),
        };
        let mut functions = self
            .store
            .list_functions(account, after.as_deref(), limit + 1)
            .await?;
        let next_marker = if functions.len() > limit as usize {
            functions.truncate(limit as usize);
            functions.last().map(|f| encode_marker(f.name.as_str()))
        } else {
            None
        };
        Ok(FunctionPage {
            functions,
            next_marker,
        })
    }

    pub async fn account_usage(&self, account: &AccountId) -> Result<AccountUsage, ControlError> {
        Ok(self.store.account_usage(account).await?)
    }

    /// The zip of a code blob, for the presigned code URL.
    pub async fn code_zip(&self, sha256_hex: &str) -> Result<Option<Vec<u8>>, ControlError> {
        let blobs = self.blobs.clone();
        let sha = sha256_hex.to_owned();
        Ok(tokio::task::spawn_blocking(move || blobs.get(&sha)).await??)
    }

    // ----- writes ------------------------------------------------------------------------

    pub async fn create_function(
        self: &Arc<Self>,
        account: &AccountId,
        req: CreateFunction,
    ) -> Result<Function, ControlError> {
        let fref = FunctionRef::parse(
            "functionName",
            &req.function_name,
            patterns::FUNCTION_NAME,
            140,
        )?;
        self.check_ref_account(account, &fref)?;
        if fref.qualifier.is_some() {
            return Err(LambdaError::InvalidParameterValue(
                "A function's name cannot carry a qualifier when it is created.".into(),
            )
            .into());
        }
        let config = req.config.into_new_config()?;
        check_tags(&req.tags, 0)?;
        check_zip_size(&req.zip)?;
        let name = fref.name.as_str().to_owned();
        if self.cached_get(account, &name).await?.is_some() {
            return Err(already_exists(&name).into());
        }

        let staged = self.stage(req.zip.clone()).await?;
        let now = now();
        let _guard = self.code_lock.lock().await;
        let code = self.commit_code(req.zip, staged).await?;
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
        };
        match self.cached_insert(&f).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                self.collect_code(&f.code.sha256_hex).await;
                return Err(already_exists(&name).into());
            }
            Err(e) => {
                self.collect_code(&f.code.sha256_hex).await;
                return Err(e.into());
            }
        }
        let answer = if req.publish {
            self.publish_locked(&f, None).await?
        } else {
            f.clone()
        };
        drop(_guard);
        self.spawn_prepare(f.account.clone(), name, f.generation);
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
        let fref = self.parse_ref(account, name, None)?;
        check_unqualified(&fref)?;
        check_zip_size(&zip)?;
        let old = self.load(account, &fref).await?;
        check_revision(&old, revision_id)?;
        old.check_not_updating(&self.region)?;

        let staged = self.stage(zip.clone()).await?;
        let _guard = self.code_lock.lock().await;
        let code = self.commit_code(zip, staged).await?;
        let mut f = old.clone();
        f.code = code;
        self.begin_update(&mut f, &old);
        if let Err(e) = self.cached_replace(&f, &old.revision_id).await {
            self.collect_code(&f.code.sha256_hex).await;
            return Err(e.into());
        }
        if old.code.sha256_hex != f.code.sha256_hex {
            // Kept while it still serves calls or a version uses it (`code_in_use`).
            self.collect_code(&old.code.sha256_hex).await;
        }
        let answer = if publish {
            self.publish_locked(&f, None).await?
        } else {
            f.clone()
        };
        drop(_guard);
        self.spawn_prepare(f.account.clone(), f.name.as_str().to_owned(), f.generation);
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
        let fref = self.parse_ref(account, name, None)?;
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
        self.begin_update(&mut f, &old);
        self.cached_replace(&f, &old.revision_id).await?;
        self.spawn_prepare(f.account.clone(), f.name.as_str().to_owned(), f.generation);
        Ok(f)
    }

    /// DeleteFunction: the whole function with its versions and aliases, or one version.
    pub async fn delete_function(
        &self,
        account: &AccountId,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let fref = self.parse_ref(account, name, qualifier)?;
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
        let _guard = self.code_lock.lock().await;
        let mut shas = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .list_versions(account, fref.name.as_str(), after, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.version_number().unwrap_or(u64::MAX);
            shas.extend(page.into_iter().map(|v| v.code.sha256_hex));
        }
        let deleted = self.cached_delete(account, fref.name.as_str()).await?;
        self.forget_versions_and_aliases(account, fref.name.as_str());
        match deleted {
            Some(f) => {
                shas.push(f.code.sha256_hex);
                shas.extend(f.serving.map(|s| s.code.sha256_hex));
                shas.sort();
                shas.dedup();
                for sha in shas {
                    self.collect_code(&sha).await;
                }
                Ok(())
            }
            None => {
                Err(LambdaError::function_not_found(&self.qualified_arn(account, &fref)).into())
            }
        }
    }

    /// The tags of the function an ARN names.
    pub async fn list_tags(
        &self,
        account: &AccountId,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, ControlError> {
        Ok(self.load_by_arn(account, arn).await?.tags)
    }

    /// TagResource: adds or replaces tags.
    pub async fn tag(
        &self,
        account: &AccountId,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), ControlError> {
        for _ in 0..CAS_RETRIES {
            let old = self.load_by_arn(account, arn).await?;
            check_tags(
                &tags,
                old.tags.keys().filter(|k| !tags.contains_key(*k)).count(),
            )?;
            let mut f = old.clone();
            f.tags.extend(tags.clone());
            f.revision_id = new_revision();
            match self.cached_replace(&f, &old.revision_id).await {
                Err(StoreError::Stale { .. }) => continue,
                other => return Ok(other?),
            }
        }
        Err(busy())
    }

    /// PutFunctionConcurrency (`Some`) and DeleteFunctionConcurrency (`None`).
    pub async fn set_reserved_concurrency(
        &self,
        account: &AccountId,
        name: &str,
        reserved: Option<u32>,
    ) -> Result<Function, ControlError> {
        let fref = self.parse_ref(account, name, None)?;
        if fref.qualifier.is_some() {
            return Err(LambdaError::InvalidParameterValue(
                "Reserved concurrency is set on a function, not on a qualified ARN.".into(),
            )
            .into());
        }
        for _ in 0..CAS_RETRIES {
            let old = self.load(account, &fref).await?;
            let mut f = old.clone();
            f.reserved_concurrency = reserved;
            f.revision_id = new_revision();
            match self.cached_replace(&f, &old.revision_id).await {
                Err(StoreError::Stale { .. }) => continue,
                other => {
                    other?;
                    return Ok(f);
                }
            }
        }
        Err(busy())
    }

    /// UntagResource: removes tags by key (absent keys are fine).
    pub async fn untag(
        &self,
        account: &AccountId,
        arn: &str,
        keys: &[String],
    ) -> Result<(), ControlError> {
        for _ in 0..CAS_RETRIES {
            let old = self.load_by_arn(account, arn).await?;
            let mut f = old.clone();
            for k in keys {
                f.tags.remove(k);
            }
            f.revision_id = new_revision();
            match self.cached_replace(&f, &old.revision_id).await {
                Err(StoreError::Stale { .. }) => continue,
                other => return Ok(other?),
            }
        }
        Err(busy())
    }

    // ----- the store, through the cache ---------------------------------------------------

    async fn cached_get(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let key = (account.clone(), name.to_owned());
        if let Some(f) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(Some(f));
        }
        let f = self.store.get_function(account, name).await?;
        if let (Some(f), Ok(mut c)) = (&f, self.cache.write()) {
            c.insert(key, f.clone());
        }
        Ok(f)
    }

    fn remember(&self, f: &Function) {
        if let Ok(mut c) = self.cache.write() {
            c.insert((f.account.clone(), f.name.as_str().to_owned()), f.clone());
        }
    }

    fn forget(&self, account: &AccountId, name: &str) {
        if let Ok(mut c) = self.cache.write() {
            c.remove(&(account.clone(), name.to_owned()));
        }
    }

    async fn cached_insert(&self, f: &Function) -> Result<(), StoreError> {
        let r = self.store.insert_function(f).await;
        match &r {
            Ok(()) => self.remember(f),
            Err(_) => self.forget(&f.account, f.name.as_str()),
        }
        r
    }

    async fn cached_replace(&self, f: &Function, expected: &str) -> Result<(), StoreError> {
        let r = self.store.replace_function(f, expected).await;
        match &r {
            Ok(()) => self.remember(f),
            // Someone else wrote it: read it afresh next time.
            Err(_) => self.forget(&f.account, f.name.as_str()),
        }
        r
    }

    async fn cached_delete(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        self.forget(account, name);
        let r = self.store.delete_function(account, name).await;
        self.forget(account, name);
        r
    }

    async fn cached_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError> {
        let key = (account.clone(), name.to_owned(), version);
        if let Some(v) = self
            .version_cache
            .read()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(Some(v));
        }
        let v = self.store.get_version(account, name, version).await?;
        if let (Some(v), Ok(mut c)) = (&v, self.version_cache.write()) {
            c.insert(key, v.clone());
        }
        Ok(v)
    }

    fn remember_version(&self, v: &Function) {
        if let (Some(n), Ok(mut c)) = (v.version_number(), self.version_cache.write()) {
            c.insert(
                (v.account.clone(), v.name.as_str().to_owned(), n),
                v.clone(),
            );
        }
    }

    fn forget_version(&self, account: &AccountId, name: &str, version: u64) {
        if let Ok(mut c) = self.version_cache.write() {
            c.remove(&(account.clone(), name.to_owned(), version));
        }
    }

    async fn cached_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        let key = (account.clone(), function.to_owned(), name.to_owned());
        if let Some(a) = self
            .alias_cache
            .read()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(Some(a));
        }
        let a = self.store.get_alias(account, function, name).await?;
        if let (Some(a), Ok(mut c)) = (&a, self.alias_cache.write()) {
            c.insert(key, a.clone());
        }
        Ok(a)
    }

    fn remember_alias(&self, a: &Alias) {
        if let Ok(mut c) = self.alias_cache.write() {
            c.insert(
                (a.account.clone(), a.function_name.clone(), a.name.clone()),
                a.clone(),
            );
        }
    }

    fn forget_alias(&self, account: &AccountId, function: &str, name: &str) {
        if let Ok(mut c) = self.alias_cache.write() {
            c.remove(&(account.clone(), function.to_owned(), name.to_owned()));
        }
    }

    /// Drops every cached version and alias of a function (it was deleted).
    fn forget_versions_and_aliases(&self, account: &AccountId, name: &str) {
        if let Ok(mut c) = self.version_cache.write() {
            c.retain(|(a, n, _), _| !(a == account && n == name));
        }
        if let Ok(mut c) = self.alias_cache.write() {
            c.retain(|(a, n, _), _| !(a == account && n == name));
        }
    }

    // ----- internals ---------------------------------------------------------------------

    fn parse_ref(
        &self,
        account: &AccountId,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionRef, ControlError> {
        let fref = FunctionRef::parse(
            "functionName",
            name,
            patterns::NAMESPACED_FUNCTION_NAME,
            170,
        )?
        .with_qualifier(qualifier)?;
        self.check_ref_account(account, &fref)?;
        Ok(fref)
    }

    fn check_ref_account(
        &self,
        account: &AccountId,
        fref: &FunctionRef,
    ) -> Result<(), LambdaError> {
        // Until cross-account policies exist, another account's function is as good as absent;
        // another region's is not served here.
        if fref.account.as_ref().is_some_and(|a| a != account)
            || fref.region.as_deref().is_some_and(|r| r != self.region)
        {
            let arn = format!(
                "arn:aws:lambda:{}:{}:function:{}",
                fref.region.as_deref().unwrap_or(&self.region),
                fref.account.as_ref().unwrap_or(account),
                fref.name
            );
            return Err(LambdaError::function_not_found(&arn));
        }
        Ok(())
    }

    fn qualified_arn(&self, account: &AccountId, fref: &FunctionRef) -> String {
        let base = stoke_core::ids::function_arn(&self.region, account, fref.name.as_str());
        match &fref.qualifier {
            Some(q) => format!("{base}:{q}"),
            None => base,
        }
    }

    async fn load(
        &self,
        account: &AccountId,
        fref: &FunctionRef,
    ) -> Result<Function, ControlError> {
        let not_found = || LambdaError::function_not_found(&self.qualified_arn(account, fref));
        let f = self
            .cached_get(account, fref.name.as_str())
            .await?
            .ok_or_else(not_found)?;
        match fref.qualifier.as_deref() {
            None | Some("$LATEST") => Ok(f),
            Some(q) => match q.parse::<u64>() {
                Ok(n) => Ok(self
                    .cached_version(account, fref.name.as_str(), n)
                    .await?
                    .ok_or_else(not_found)?),
                // An alias: the version it points to (the primary one).
                Err(_) => {
                    let alias = self
                        .cached_alias(account, fref.name.as_str(), q)
                        .await?
                        .ok_or_else(not_found)?;
                    let target = &alias.target.function_version;
                    match target.parse::<u64>() {
                        Ok(n) => Ok(self
                            .cached_version(account, fref.name.as_str(), n)
                            .await?
                            .ok_or_else(not_found)?),
                        Err(_) => Ok(f),
                    }
                }
            },
        }
    }

    async fn load_by_arn(&self, account: &AccountId, arn: &str) -> Result<Function, ControlError> {
        let mut v = Violations::new();
        if v.length("resource", arn, 1, 256) {
            v.pattern("resource", arn, patterns::TAGGABLE_ARN);
        }
        v.into_result()?;
        let fref = FunctionRef::parse("resource", arn, patterns::NAMESPACED_FUNCTION_NAME, 256)?;
        if fref.qualifier.is_some() {
            return Err(LambdaError::InvalidParameterValue(
                "Tags are not supported on a qualified function ARN.".into(),
            )
            .into());
        }
        self.check_ref_account(account, &fref)?;
        self.load(account, &fref).await
    }

    /// Unpacks a zip into a fresh staging folder (checking it on the way).
    async fn stage(&self, zip: Vec<u8>) -> Result<(PathBuf, code::Unpacked), ControlError> {
        let dir = self
            .layout
            .staging_root
            .join(uuid::Uuid::new_v4().to_string());
        let limits = self.unpack_limits;
        let d = dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&d)?;
            code::unpack(&zip, &d, limits)
        })
        .await?;
        match result {
            Ok(u) => Ok((dir, u)),
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                Err(e.into())
            }
        }
    }

    /// Stores the zip and moves its staged tree to `code/<sha>`. Hold `code_lock`.
    async fn commit_code(
        &self,
        zip: Vec<u8>,
        (staged, unpacked): (PathBuf, code::Unpacked),
    ) -> Result<CodeInfo, ControlError> {
        let blobs = self.blobs.clone();
        let code_root = self.layout.code_root.clone();
        let size = zip.len() as u64;
        let result = tokio::task::spawn_blocking(move || -> Result<String, ControlError> {
            let sha = blobs.put(&zip)?;
            let target = code_root.join(&sha);
            if target.exists() {
                let _ = std::fs::remove_dir_all(&staged);
            } else {
                std::fs::rename(&staged, &target).map_err(code::CodeError::Io)?;
            }
            Ok(sha)
        })
        .await??;
        Ok(CodeInfo {
            sha256_hex: result,
            size,
            unzipped_size: unpacked.bytes,
        })
    }

    /// Removes a blob and its tree if no function uses them. Hold `code_lock`.
    async fn collect_code(&self, sha: &str) {
        match self.store.code_in_use(sha).await {
            Ok(false) => {
                let blobs = self.blobs.clone();
                let tree = self.layout.code_root.join(sha);
                let sha = sha.to_owned();
                let done = tokio::task::spawn_blocking(move || {
                    let _ = std::fs::remove_dir_all(tree);
                    blobs.remove(&sha)
                })
                .await;
                if let Ok(Err(e)) = done {
                    tracing::warn!(error = %e, "could not remove an unused code blob");
                }
            }
            Ok(true) => {}
            Err(e) => tracing::warn!(error = %e, "could not check whether code is in use"),
        }
    }

    /// Marks `f` (a changed copy of `old`) as an update in progress.
    fn begin_update(&self, f: &mut Function, old: &Function) {
        // What runs now keeps running until the update is ready (a record from before serving
        // generations were kept gets its own code as its serving generation here).
        f.serving = versions::serving_of(old);
        f.last_update_status = Some(LastUpdateStatus::InProgress);
        f.last_update_reason = Some(creating());
        f.generation += 1;
        f.revision_id = new_revision();
        f.last_modified = now();
    }

    fn spawn_prepare(self: &Arc<Self>, account: AccountId, name: String, generation: u64) {
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            if let Err(e) = this.prepare(&account, &name, generation).await {
                tracing::error!(function = %name, error = %e, "preparing code failed");
            }
        });
    }

    /// The background half of create and update: check the code, then record the outcome
    /// if the function is still at `generation`.
    async fn prepare(
        self: &Arc<Self>,
        account: &AccountId,
        name: &str,
        generation: u64,
    ) -> Result<(), ControlError> {
        let Some(f) = self.cached_get(account, name).await? else {
            return Ok(());
        };
        if f.generation != generation {
            return Ok(());
        }
        let mut outcome = self.run_preparer(&f).await?;
        if outcome.is_ok() && f.serving.is_some() {
            // An update: the new generation starts a sandbox beside the old ones before it
            // takes calls, so no call waits for its init and code that cannot start never
            // takes traffic. (A new function has no traffic to move: its first call is cold.)
            outcome = self.warm(&f).await;
        }
        // Under code_lock, so that a PublishVersion sees the versions settled and `$LATEST`
        // moved together, never one without the other.
        let _guard = self.code_lock.lock().await;
        for _ in 0..CAS_RETRIES {
            let Some(old) = self.cached_get(account, name).await? else {
                return Ok(());
            };
            if old.generation != generation {
                return Ok(());
            }
            // A version published from this generation takes its outcome first: once `$LATEST`
            // says Successful, the version can be invoked too.
            self.settle_published(&old, &outcome).await?;
            let mut f = old.clone();
            let previous_serving = old
                .serving
                .as_ref()
                .map(|s| (s.code.sha256_hex.clone(), s.config.timeout));
            match &outcome {
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
            f.revision_id = new_revision();
            match self.cached_replace(&f, &old.revision_id).await {
                Err(StoreError::Stale { .. }) => continue,
                Err(StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(e.into()),
                Ok(()) => {}
            }
            if let Some((prev, timeout)) = previous_serving
                && outcome.is_ok()
                && prev != f.code.sha256_hex
            {
                self.collect_later(prev, timeout);
            }
            return Ok(());
        }
        Err(busy())
    }

    /// Collects the code a previous generation served, once nothing can still be using it:
    /// calls that were running on it have finished (its timeout) and a call that resolved to
    /// it just before the switch has started its sandbox (a margin). A process sandbox mounts
    /// the code folder itself, so removing it earlier would pull files from under it. A restart
    /// before then leaves the folder to [`ControlPlane::resume`]'s sweep.
    fn collect_later(self: &Arc<Self>, sha: String, timeout_secs: u32) {
        let grace = std::time::Duration::from_secs(u64::from(timeout_secs) + 30);
        let this = Arc::clone(self);
        // Not one of `tasks`: shutdown must not wait for it.
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _guard = this.code_lock.lock().await;
            this.collect_code(&sha).await;
        });
    }

    /// Asks the warmer to start a sandbox of `f`'s new generation.
    async fn warm(&self, f: &Function) -> Result<(), Reason> {
        let Some(warmer) = self.warmer.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let target = Runnable {
            account: f.account.clone(),
            name: f.name.clone(),
            version: stoke_core::LATEST.to_owned(),
            deployed: f.as_deployed(),
            qualifier: None,
            reserved_concurrency: f.reserved_concurrency,
        };
        warmer.warm(&target).await
    }

    async fn run_preparer(&self, f: &Function) -> Result<Result<(), Reason>, ControlError> {
        let dir = self.layout.code_root.join(&f.code.sha256_hex);
        if !dir.exists() {
            // A crash between storing the blob and moving its tree: unpack it again.
            let Some(zip) = self.code_zip(&f.code.sha256_hex).await? else {
                return Ok(Err(Reason {
                    message: "The function's code is missing from the store.".into(),
                    code: "InternalError".into(),
                }));
            };
            let staged = self.stage(zip.clone()).await?;
            let _guard = self.code_lock.lock().await;
            self.commit_code(zip, staged).await?;
        }
        let preparer = Arc::clone(&self.preparer);
        let function = f.clone();
        Ok(tokio::task::spawn_blocking(move || preparer.prepare(&function, &dir)).await?)
    }
}

fn now() -> String {
    stoke_core::timefmt::lambda_timestamp(time::OffsetDateTime::now_utc())
}

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn creating() -> Reason {
    Reason {
        message: "The function is being created.".into(),
        code: "Creating".into(),
    }
}

fn already_exists(name: &str) -> LambdaError {
    LambdaError::ResourceConflict(format!("Function already exist: {name}"))
}

fn busy() -> ControlError {
    LambdaError::ResourceConflict(
        "The operation cannot be performed at this time: the function is changing. Try again."
            .into(),
    )
    .into()
}

fn check_unqualified(fref: &FunctionRef) -> Result<(), LambdaError> {
    match fref.qualifier.as_deref() {
        None | Some("$LATEST") => Ok(()),
        Some(_) => Err(LambdaError::InvalidParameterValue(
            "Only $LATEST can be updated: a version's code and configuration never change.".into(),
        )),
    }
}

fn check_revision(f: &Function, expected: Option<&str>) -> Result<(), LambdaError> {
    match expected {
        Some(r) if r != f.revision_id => Err(LambdaError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the \
             GetFunction/GetAlias API to retrieve the latest Revision Id"
                .into(),
        )),
        _ => Ok(()),
    }
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

/// Lambda's limits on tags: 50 per resource, keys of 1–128 characters, values up to 256, and
/// no `aws:` prefix.
fn check_tags(tags: &BTreeMap<String, String>, already: usize) -> Result<(), LambdaError> {
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
            "The number of tags exceeds the limit of 50 tags per resource.".into(),
        ));
    }
    Ok(())
}

fn encode_marker(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_marker(marker: &str) -> Result<String, LambdaError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LambdaError::InvalidParameterValue(format!("Invalid marker: {marker}")))
}

/// A set of background tasks that can be waited for (a `JoinSet` that is not `&mut`).
mod tokio_util_tasks {
    use std::future::Future;
    use std::sync::Mutex;

    use tokio::task::JoinSet;

    #[derive(Debug, Default)]
    pub struct Tasks(Mutex<JoinSet<()>>);

    impl Tasks {
        pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
            if let Ok(mut set) = self.0.lock() {
                // Reap finished tasks so the set does not grow without bound.
                while set.try_join_next().is_some() {}
                set.spawn(fut);
            }
        }

        pub async fn wait(&self) {
            let mut set = match self.0.lock() {
                Ok(mut s) => std::mem::take(&mut *s),
                Err(_) => return,
            };
            while set.join_next().await.is_some() {}
        }
    }
}
