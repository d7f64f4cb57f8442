//! The control plane of functions.
//!
//! Each operation checks the request as the Lambda API model does, then changes the store
//! with a compare-and-swap on the function's `RevisionId` ([`ControlPlane::cas`]), so a
//! concurrent writer is never silently overwritten. Once stored, the answer goes back with
//! `State: Pending` (create) or `LastUpdateStatus: InProgress` (update), and a background task
//! deploys the code and moves the function to `Active`/`Successful` or `Failed`.
//!
//! # Layout
//! - this file: [`ControlPlane`], how operations name functions (names, ARNs, qualifiers),
//!   the reads and writes of records through the cache, and the one compare-and-swap loop;
//! - [`functions`](self::functions): CreateFunction, UpdateFunctionCode,
//!   UpdateFunctionConfiguration, DeleteFunction, GetFunction, ListFunctions;
//! - [`tags`](self::tags): tags and reserved concurrency;
//! - [`permissions`](self::permissions): resource-based policies (AddPermission,
//!   RemovePermission, GetPolicy) and [`ControlPlane::resolve_ref`], the gate of every
//!   operation on a function: the caller's own, or another account's that its policy grants;
//! - [`versions`](self::versions) and [`aliases`](self::aliases): published versions and
//!   aliases;
//! - [`cache`](self::cache): the one cache of records;
//! - [`feed`](self::feed): the change feed both ways: this node's writes told to the others,
//!   and the others' writes forgotten from the cache (within a second: `LISTEN`/`NOTIFY`);
//! - [`code_store`](self::code_store): stage, commit and collect code (see there for the files);
//! - [`deploy`](self::deploy): the background half: prepare, warm, settle;
//! - [`deploy_check`](self::deploy_check): what an update's warm-up decides (an Init failure
//!   is logged and fails the update only under the `stoke:deploy-check` = `init` tag).

mod aliases;
mod cache;
mod code_store;
mod deploy;
mod deploy_check;
mod feed;
mod functions;
mod permissions;
mod tags;
mod versions;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use stoke_core::validate::patterns;
use stoke_core::{AccountId, Alias, Function, FunctionRef, LambdaError, Reason};
use stoke_store::{Blobs, Store, StoreError};

use crate::ControlError;
use crate::accounts::AccountLimits;
use crate::prepare::Preparer;
use crate::target::{Layout, Warmer};

pub use aliases::AliasPage;
pub use deploy_check::{DEPLOY_CHECK_TAG, DeployCheck};
pub use feed::watch;
pub use functions::{CreateFunction, FunctionPage};
pub use permissions::PolicyAnswer;
pub use versions::VersionPage;
pub(crate) use versions::{not_runnable, serving_of};

use cache::Cache;
use code_store::CodeStore;

type FunctionKey = (AccountId, String);
type VersionKey = (AccountId, String, u64);
type AliasKey = (AccountId, String, String);
/// (owner, function, qualifier key: `""` for the function's own).
type PolicyKey = (AccountId, String, String);

/// The control plane; cheap to share behind an `Arc`.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    /// Zips and their unpacked trees.
    code: Arc<CodeStore>,
    /// The region ARNs name.
    region: String,
    /// Checks (and for wasm compiles) a deploy's code.
    preparer: Arc<dyn Preparer>,
    /// Starts a sandbox of an update's new generation before calls move to it (what came of
    /// it is `deploy_check`'s to decide).
    warmer: Arc<dyn Warmer>,
    /// Background deploys, so shutdown can wait for them.
    tasks: tasks::Tasks,
    /// `$LATEST` records, published versions and aliases as last read or written here, so
    /// that a call does not read the store.
    functions: Cache<FunctionKey, Function>,
    versions: Cache<VersionKey, Function>,
    aliases: Cache<AliasKey, Alias>,
    /// Policies as last read or written here (cross-account calls read them).
    policies: Cache<PolicyKey, stoke_core::policy::Policy>,
    /// Each account's concurrency: GetAccountSettings' `ConcurrentExecutions`, of which
    /// reservations must leave some unreserved, and what the invoker admits per account.
    limits: Arc<AccountLimits>,
    /// Tells the other nodes what this one wrote.
    publisher: feed::Publisher,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// How many times a compare-and-swap that lost to another writer is tried again.
const CAS_RETRIES: usize = 20;

impl ControlPlane {
    /// A control plane over `store` and `blobs`, keeping unpacked code under `layout`. Deploys
    /// check code with `preparer` and warm an update's new generation with `warmer`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Blobs,
        layout: Layout,
        region: impl Into<String>,
        preparer: Arc<dyn Preparer>,
        warmer: Arc<dyn Warmer>,
    ) -> Result<Arc<Self>, ControlError> {
        let code = CodeStore::open(Arc::clone(&store), blobs, layout, Arc::clone(&preparer))?;
        Ok(Arc::new(Self {
            publisher: feed::Publisher::start(Arc::clone(&store)),
            store,
            code,
            region: region.into(),
            preparer,
            warmer,
            tasks: tasks::Tasks::default(),
            functions: Cache::default(),
            versions: Cache::default(),
            aliases: Cache::default(),
            policies: Cache::default(),
            limits: Arc::new(AccountLimits::new(
                stoke_core::function::limits::ACCOUNT_CONCURRENCY,
            )),
        }))
    }

    /// `account`'s concurrency, as the invoker admits its calls (its own limit if the admin
    /// set one, else the default: Lambda's, 1000, until the engine sets the server's).
    pub fn account_concurrency(&self, account: &AccountId) -> u32 {
        self.limits.concurrency(account.as_str())
    }

    /// The concurrency of accounts with no limit of their own.
    pub fn set_account_concurrency(&self, n: u32) {
        self.limits.set_default(n);
    }

    /// Every account's limits (shared with the invoker and the accounts).
    pub fn limits(&self) -> &Arc<AccountLimits> {
        &self.limits
    }

    /// `RuntimeVersionConfig.RuntimeVersionArn` for a function of `runtime` on this server.
    fn runtime_version_arn(&self, runtime: &stoke_core::Runtime) -> Option<String> {
        self.preparer.runtime_version_arn(runtime)
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The folder of a code blob's unpacked tree.
    pub fn code_dir(&self, sha256_hex: &str) -> PathBuf {
        self.code.dir(sha256_hex)
    }

    /// What brings code another node deployed to this one (for the sandboxes).
    pub fn code_source(&self) -> Arc<dyn crate::target::CodeSource> {
        Arc::clone(&self.code) as Arc<dyn crate::target::CodeSource>
    }

    /// The zip of a code blob, for the presigned code URL.
    pub async fn code_zip(&self, sha256_hex: &str) -> Result<Option<Vec<u8>>, ControlError> {
        self.code.zip(sha256_hex).await
    }

    /// Waits for the background deploys under way.
    pub async fn drain(&self) {
        self.tasks.wait().await;
    }

    // ----- naming functions ----------------------------------------------------------------

    /// Parses a reference to an existing function (whose it is, [`Self::resolve_ref`] says).
    pub(crate) fn parse_name(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionRef, LambdaError> {
        FunctionRef::parse(
            "functionName",
            name,
            patterns::NAMESPACED_FUNCTION_NAME,
            170,
        )?
        .with_qualifier(qualifier)
    }

    /// Another region's function is not served here, in AWS's words.
    fn check_region(&self, fref: &FunctionRef) -> Result<(), LambdaError> {
        match fref.region.as_deref().filter(|r| *r != self.region) {
            Some(r) => Err(LambdaError::ResourceNotFound(format!(
                "Functions from '{r}' are not reachable in this region ('{}')",
                self.region
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn qualified_arn(&self, account: &AccountId, fref: &FunctionRef) -> String {
        let base = stoke_core::ids::function_arn(&self.region, account, fref.name.as_str());
        match &fref.qualifier {
            Some(q) => format!("{base}:{q}"),
            None => base,
        }
    }

    fn not_found(&self, account: &AccountId, fref: &FunctionRef) -> LambdaError {
        LambdaError::function_not_found(&self.qualified_arn(account, fref))
    }

    /// The record a reference names: `$LATEST`, a version, or the version an alias points
    /// to (its primary one).
    async fn load(
        &self,
        account: &AccountId,
        fref: &FunctionRef,
    ) -> Result<Function, ControlError> {
        let not_found = || self.not_found(account, fref);
        let name = fref.name.as_str();
        let f = self.latest(account, name).await?.ok_or_else(not_found)?;
        let number = match fref.qualifier.as_deref() {
            None | Some(stoke_core::LATEST) => return Ok(f),
            Some(q) => match q.parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    let alias = self.alias(account, name, q).await?.ok_or_else(not_found)?;
                    match alias.target.function_version.parse::<u64>() {
                        Ok(n) => n,
                        Err(_) => return Ok(f),
                    }
                }
            },
        };
        Ok(self
            .version(account, name, number)
            .await?
            .ok_or_else(not_found)?)
    }

    // ----- the store, through the cache ---------------------------------------------------

    /// `$LATEST`'s record.
    pub(crate) async fn latest(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        self.functions
            .get_or_load(
                (account.clone(), name.to_owned()),
                self.store.get_function(account, name),
            )
            .await
    }

    /// A published version's record.
    pub(crate) async fn version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError> {
        self.versions
            .get_or_load(
                (account.clone(), name.to_owned(), version),
                self.store.get_version(account, name, version),
            )
            .await
    }

    /// An alias.
    pub(crate) async fn alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        self.aliases
            .get_or_load(
                (account.clone(), function.to_owned(), name.to_owned()),
                self.store.get_alias(account, function, name),
            )
            .await
    }

    fn function_key(f: &Function) -> FunctionKey {
        (f.account.clone(), f.name.as_str().to_owned())
    }

    async fn insert_function(&self, f: &Function) -> Result<(), StoreError> {
        self.functions
            .write_through(Self::function_key(f), f, self.store.insert_function(f))
            .await?;
        self.changed(&f.account, f.name.as_str());
        Ok(())
    }

    async fn replace_function(&self, f: &Function, expected: &str) -> Result<(), StoreError> {
        self.functions
            .write_through(
                Self::function_key(f),
                f,
                self.store.replace_function(f, expected),
            )
            .await?;
        self.changed(&f.account, f.name.as_str());
        Ok(())
    }

    /// Tells the other nodes that `name` (its record, versions, aliases or policies) changed:
    /// after the write, never before (a node that read it again in between would keep the
    /// old value).
    fn changed(&self, account: &AccountId, name: &str) {
        self.publisher.function(account, name);
    }

    /// Forgets every record (changes were missed).
    fn forget_everything(&self) {
        self.functions.clear();
        self.versions.clear();
        self.aliases.clear();
        self.policies.clear();
        self.limits.forget_all_reserved();
    }

    fn forget_function(&self, account: &AccountId, name: &str) {
        self.functions.forget(&(account.clone(), name.to_owned()));
    }

    /// Keeps a version just written (and tells the other nodes).
    fn remember_version(&self, v: &Function) {
        if let Some(n) = v.version_number() {
            self.versions.put(
                (v.account.clone(), v.name.as_str().to_owned(), n),
                v.clone(),
            );
        }
        self.changed(&v.account, v.name.as_str());
    }

    fn forget_version(&self, account: &AccountId, name: &str, version: u64) {
        self.versions
            .forget(&(account.clone(), name.to_owned(), version));
    }

    fn alias_key(a: &Alias) -> AliasKey {
        (a.account.clone(), a.function_name.clone(), a.name.clone())
    }

    fn forget_alias(&self, account: &AccountId, function: &str, name: &str) {
        self.aliases
            .forget(&(account.clone(), function.to_owned(), name.to_owned()));
    }

    /// Forgets a function with its versions and aliases (it is being deleted).
    fn forget_all_of(&self, account: &AccountId, name: &str) {
        self.forget_function(account, name);
        self.versions
            .forget_where(|(a, n, _)| a == account && n == name);
        self.aliases
            .forget_where(|(a, n, _)| a == account && n == name);
        self.policies
            .forget_where(|(a, n, _)| a == account && n == name);
    }

    /// Changes `$LATEST` of `name` with a compare-and-swap on its revision: `change` sees the
    /// record as it is now (`None` if there is none) and answers the record to write (`None`:
    /// write nothing), which gets a new revision and is written only over the record it saw,
    /// and answered. When another
    /// writer came first, the record is read again and `change` asked again, up to
    /// [`CAS_RETRIES`] times; then the caller is told to try again later.
    pub(super) async fn cas(
        &self,
        account: &AccountId,
        name: &str,
        mut change: impl FnMut(Option<&Function>) -> Result<Option<Function>, ControlError>,
    ) -> Result<Option<Function>, ControlError> {
        for _ in 0..CAS_RETRIES {
            let old = self.latest(account, name).await?;
            let Some(mut f) = change(old.as_ref())? else {
                return Ok(None);
            };
            let Some(old) = old else {
                return Err(LambdaError::function_not_found(&f.arn(&self.region)).into());
            };
            f.revision_id = new_revision();
            match self.replace_function(&f, &old.revision_id).await {
                Ok(()) => return Ok(Some(f)),
                // Changed or removed meanwhile: look again.
                Err(StoreError::Stale { .. } | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(update_in_progress(&stoke_core::ids::function_arn(
            &self.region,
            account,
            name,
        )))
    }
}

pub(super) fn now() -> String {
    stoke_core::timefmt::lambda_timestamp(time::OffsetDateTime::now_utc())
}

pub(super) fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(super) fn creating() -> Reason {
    Reason {
        message: "The function is being created.".into(),
        code: "Creating".into(),
    }
}

/// AWS's answer to a change of a function while another is being applied to it.
pub(super) fn update_in_progress(arn: &str) -> ControlError {
    LambdaError::ResourceConflict(format!(
        "The operation cannot be performed at this time. An update is in progress for resource: \
         {arn}"
    ))
    .into()
}

pub(super) fn busy() -> ControlError {
    LambdaError::ResourceConflict(
        "The operation cannot be performed at this time: the function is changing. Try again."
            .into(),
    )
    .into()
}

pub(super) fn check_unqualified(fref: &FunctionRef) -> Result<(), LambdaError> {
    match fref.qualifier.as_deref() {
        None | Some("$LATEST") => Ok(()),
        Some(_) => Err(LambdaError::InvalidParameterValue(
            "Only $LATEST can be updated: a version's code and configuration never change.".into(),
        )),
    }
}

pub(super) fn revision_mismatch() -> LambdaError {
    LambdaError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. Call the \
         GetFunction/GetAlias API to retrieve the latest Revision Id"
            .into(),
    )
}

pub(super) fn check_revision(f: &Function, expected: Option<&str>) -> Result<(), LambdaError> {
    match expected {
        Some(r) if r != f.revision_id => Err(revision_mismatch()),
        _ => Ok(()),
    }
}

pub(super) fn encode_marker(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

pub(super) fn decode_marker(marker: &str) -> Result<String, LambdaError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LambdaError::InvalidParameterValue(format!("Invalid marker: {marker}")))
}

/// The page size a `MaxItems` asks for (Lambda's default: 50).
pub(super) fn page_limit(max_items: Option<i64>) -> u32 {
    max_items.map_or(50, |m| u32::try_from(m).unwrap_or(50))
}

/// A set of background tasks that can be waited for (a `JoinSet` that is not `&mut`).
mod tasks {
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
