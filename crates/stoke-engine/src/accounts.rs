//! Accounts, their access keys and their limits, as the API's SigV4 check and the admin API
//! ask for them.
//!
//! An access key read once is kept in memory (its secret opened, never written anywhere);
//! revoking a key or deleting its account goes through [`Accounts`], which forgets it at once,
//! so the very next request signed with it is refused, and tells the other nodes through the
//! store's change feed ([`Change::Account`]): they forget the account's keys and read its
//! limit again ([`Accounts::forget_account`], called by `control::watch`).
//!
//! [`AccountLimits`] holds each account's concurrency limit, shared with the control plane
//! (GetAccountSettings, reservations) and the invoker (admission per account).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use stoke_core::{AccountId, LambdaError};
use stoke_store::{
    AccessKey, Account, Change, DeleteRefused, KeyInfo, MAX_KEYS_PER_ACCOUNT, Store, StoreError,
};

use crate::ControlError;

/// The concurrency limit of every account (its own if the admin set one, else the default),
/// the least that reservations must leave unreserved, and the sum of each account's
/// reservations as last read (what the invoker admits unreserved functions within).
#[derive(Debug)]
pub struct AccountLimits {
    default: AtomicU32,
    own: RwLock<HashMap<String, u32>>,
    /// Lambda's 100 unless the server was told otherwise.
    min_unreserved: AtomicU32,
    /// Each account's reserved concurrency in all, by account id, as last read.
    reserved: RwLock<HashMap<String, i64>>,
    /// Bumped (under `reserved`'s lock) whenever a sum is forgotten: a sum read from the store
    /// before a reservation changed is not kept after it.
    reserved_epoch: AtomicU64,
}

impl AccountLimits {
    pub fn new(default: u32) -> Self {
        Self {
            default: AtomicU32::new(default),
            own: RwLock::default(),
            min_unreserved: AtomicU32::new(
                stoke_core::function::limits::MIN_UNRESERVED_CONCURRENCY,
            ),
            reserved: RwLock::default(),
            reserved_epoch: AtomicU64::new(0),
        }
    }

    /// What reservations must leave unreserved of an account limit of `limit` (Lambda's 100,
    /// or all of a smaller limit).
    pub fn min_unreserved(&self, limit: u32) -> u32 {
        self.min_unreserved.load(Ordering::Relaxed).min(limit)
    }

    /// Sets the least unreserved concurrency (`stoke serve --min-unreserved-concurrency`).
    pub fn set_min_unreserved(&self, n: u32) {
        self.min_unreserved.store(n, Ordering::Relaxed);
    }

    /// The sum of `account`'s reservations, if known, with the epoch to give
    /// [`Self::keep_reserved`] when it is not.
    pub fn reserved(&self, account: &str) -> Result<i64, u64> {
        let cached = self.reserved.read().ok();
        match cached.as_ref().and_then(|c| c.get(account)) {
            Some(n) => Ok(*n),
            None => Err(self.reserved_epoch.load(Ordering::Acquire)),
        }
    }

    /// Keeps the sum of `account`'s reservations read from the store, unless one changed since
    /// `epoch` (when the read began).
    pub fn keep_reserved(&self, account: &str, total: i64, epoch: u64) {
        if let Ok(mut cached) = self.reserved.write()
            && self.reserved_epoch.load(Ordering::Acquire) == epoch
        {
            cached.insert(account.to_owned(), total);
        }
    }

    /// Forgets every account's sum of reservations (changes were missed).
    pub fn forget_all_reserved(&self) {
        if let Ok(mut cached) = self.reserved.write() {
            self.reserved_epoch.fetch_add(1, Ordering::AcqRel);
            cached.clear();
        }
    }

    /// Forgets the sum of `account`'s reservations (one was set, removed, or its function
    /// deleted): the next call reads it again.
    pub fn forget_reserved(&self, account: &str) {
        if let Ok(mut cached) = self.reserved.write() {
            self.reserved_epoch.fetch_add(1, Ordering::AcqRel);
            cached.remove(account);
        }
    }

    /// The limit of accounts the admin set none for.
    pub fn default_concurrency(&self) -> u32 {
        self.default.load(Ordering::Relaxed)
    }

    pub fn set_default(&self, n: u32) {
        self.default.store(n, Ordering::Relaxed);
    }

    /// Calls of `account`'s functions that may run at once.
    pub fn concurrency(&self, account: &str) -> u32 {
        self.own
            .read()
            .ok()
            .and_then(|o| o.get(account).copied())
            .unwrap_or_else(|| self.default_concurrency())
    }

    /// Replaces every account's own limit (read again from the store).
    pub fn replace_own(&self, own: HashMap<String, u32>) {
        if let Ok(mut o) = self.own.write() {
            *o = own;
        }
    }

    /// Sets (`Some`) or clears (`None`) an account's own limit.
    pub fn set(&self, account: &str, limit: Option<u32>) {
        if let Ok(mut own) = self.own.write() {
            match limit {
                Some(n) => own.insert(account.to_owned(), n),
                None => own.remove(account),
            };
        }
    }
}

/// An account's name: 1 to 64 letters, digits, `-`, `_` or `.`, not all digits (an id is).
pub fn check_name(name: &str) -> Result<(), LambdaError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LambdaError::InvalidParameterValue(format!(
            "1 validation error detected: Value '{name}' at 'accountName' failed to satisfy \
             constraint: Member must be 1 to 64 letters, digits, '-', '_' or '.', and not only \
             digits"
        )))
    }
}

fn no_such_account(id_or_name: &str) -> ControlError {
    LambdaError::ResourceNotFound(format!("Account not found: {id_or_name}")).into()
}

/// Accounts, access keys and limits.
pub struct Accounts {
    store: Arc<dyn Store>,
    /// Keys already read, by access key id.
    keys: RwLock<HashMap<String, AccessKey>>,
    /// Bumped (under the keys' lock) whenever keys are forgotten: a key read from the store
    /// before a revocation is not put in the cache after it.
    forgotten: AtomicU64,
    /// Accounts known to exist (a deleted one is taken out when it goes): a function's session
    /// token, which verifies without the store, is refused once its account is gone.
    live: RwLock<std::collections::HashSet<String>>,
    /// The default account: the admin.
    admin: tokio::sync::OnceCell<AccountId>,
    limits: Arc<AccountLimits>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    pub fn new(store: Arc<dyn Store>, limits: Arc<AccountLimits>) -> Self {
        Self {
            store,
            keys: RwLock::default(),
            forgotten: AtomicU64::new(0),
            live: RwLock::default(),
            admin: tokio::sync::OnceCell::new(),
            limits,
        }
    }

    /// Reads every account's own limit from the store (at start).
    pub async fn load_limits(&self) -> Result<(), ControlError> {
        for a in self.store.list_accounts().await? {
            self.limits.set(a.id.as_str(), a.concurrency);
        }
        Ok(())
    }

    pub fn limits(&self) -> &Arc<AccountLimits> {
        &self.limits
    }

    /// The default account and its first key, made on the first start (the flag says whether
    /// they were made now).
    pub async fn ensure_admin(&self) -> Result<(AccessKey, bool), ControlError> {
        let (key, created) = self.store.ensure_default_account().await?;
        let _ = self.admin.set(key.account.clone());
        Ok((key, created))
    }

    /// The admin account's id.
    pub async fn admin(&self) -> Result<&AccountId, ControlError> {
        self.admin
            .get_or_try_init(|| async {
                let (key, _) = self.store.ensure_default_account().await?;
                Ok::<_, ControlError>(key.account)
            })
            .await
    }

    /// The access key `access_key_id` names, with its secret and account, if there is one.
    pub async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, ControlError> {
        if let Some(k) = self
            .keys
            .read()
            .ok()
            .and_then(|k| k.get(access_key_id).cloned())
        {
            return Ok(Some(k));
        }
        let epoch = self.forgotten.load(Ordering::Acquire);
        let k = self.store.access_key(access_key_id).await?;
        if let (Some(k), Ok(mut keys)) = (&k, self.keys.write())
            && self.forgotten.load(Ordering::Acquire) == epoch
        {
            keys.insert(k.access_key_id.clone(), k.clone());
        }
        Ok(k)
    }

    /// Whether `account` exists (known accounts from memory; a deleted one is forgotten when
    /// it goes, and a read that raced the deletion is not kept).
    pub async fn exists(&self, account: &AccountId) -> Result<bool, ControlError> {
        if self
            .live
            .read()
            .is_ok_and(|live| live.contains(account.as_str()))
        {
            return Ok(true);
        }
        let epoch = self.forgotten.load(Ordering::Acquire);
        let found = self.store.find_account(account.as_str()).await?;
        let found = found.is_some_and(|a| a.id == *account);
        if found
            && let Ok(mut live) = self.live.write()
            && self.forgotten.load(Ordering::Acquire) == epoch
        {
            live.insert(account.as_str().to_owned());
        }
        Ok(found)
    }

    fn forget(&self, ids: &[String]) {
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            keys.remove(id);
        }
    }

    /// Tells every node (after the write) that `account`'s keys or limits changed. A failure
    /// leaves the other nodes to hear of it when their feed reconnects.
    async fn changed(&self, account: &AccountId) {
        let change = Change::Account {
            account: account.as_str().to_owned(),
        };
        if let Err(e) = self.store.publish(&change).await {
            tracing::warn!(%change, error = %e, "a change could not be told to the other nodes");
        }
    }

    /// Forgets what is kept of `account` (another node changed it): its keys, whether it
    /// exists, and its limit, read again now.
    pub async fn forget_account(&self, account: &str) {
        {
            let mut keys = self
                .keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.forgotten.fetch_add(1, Ordering::AcqRel);
            keys.retain(|_, k| k.account.as_str() != account);
        }
        if let Ok(mut live) = self.live.write() {
            live.remove(account);
        }
        match self.store.find_account(account).await {
            Ok(found) => self.limits.set(
                account,
                found
                    .filter(|a| a.id.as_str() == account)
                    .and_then(|a| a.concurrency),
            ),
            Err(e) => tracing::warn!(account, error = %e, "cannot read an account's limit again"),
        }
    }

    /// Forgets every key and account kept, and reads every limit again (changes were missed).
    pub async fn forget_everything(&self) {
        {
            let mut keys = self
                .keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.forgotten.fetch_add(1, Ordering::AcqRel);
            keys.clear();
        }
        if let Ok(mut live) = self.live.write() {
            live.clear();
        }
        match self.store.list_accounts().await {
            Ok(all) => {
                let own: HashMap<String, u32> = all
                    .into_iter()
                    .filter_map(|a| a.concurrency.map(|c| (a.id.as_str().to_owned(), c)))
                    .collect();
                self.limits.replace_own(own);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the accounts' limits again"),
        }
    }

    /// A new account and its first key.
    pub async fn create(&self, name: &str) -> Result<(Account, AccessKey), ControlError> {
        check_name(name)?;
        match self.store.create_account(name).await {
            Err(StoreError::Conflict) => Err(LambdaError::ResourceConflict(format!(
                "An account named {name} already exists."
            ))
            .into()),
            other => Ok(other?),
        }
    }

    pub async fn list(&self) -> Result<Vec<Account>, ControlError> {
        Ok(self.store.list_accounts().await?)
    }

    /// The account with this id or name.
    pub async fn find(&self, id_or_name: &str) -> Result<Account, ControlError> {
        self.store
            .find_account(id_or_name)
            .await?
            .ok_or_else(|| no_such_account(id_or_name))
    }

    /// Deletes an account and its keys (refused for the admin and for an account that still
    /// owns functions).
    pub async fn delete(&self, id_or_name: &str) -> Result<Account, ControlError> {
        let account = self.find(id_or_name).await?;
        match self.store.delete_account(&account.id).await {
            Ok(Ok(keys)) => {
                self.forget(&keys);
                if let Ok(mut live) = self.live.write() {
                    live.remove(account.id.as_str());
                }
                self.limits.set(account.id.as_str(), None);
                self.changed(&account.id).await;
                Ok(account)
            }
            Ok(Err(DeleteRefused::Admin)) => Err(LambdaError::InvalidParameterValue(
                "The admin account cannot be deleted.".into(),
            )
            .into()),
            Ok(Err(DeleteRefused::OwnsFunctions(n))) => {
                Err(LambdaError::ResourceConflict(format!(
                    "Account {} ({}) still owns {n} function(s); delete them first.",
                    account.name, account.id
                ))
                .into())
            }
            Err(StoreError::NotFound) => Err(no_such_account(id_or_name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets an account's concurrency limit (`None`: the server's default).
    pub async fn set_concurrency(
        &self,
        account: &AccountId,
        limit: Option<u32>,
    ) -> Result<(), ControlError> {
        match self.store.set_account_concurrency(account, limit).await {
            Err(StoreError::NotFound) => Err(no_such_account(account.as_str())),
            other => {
                other?;
                self.limits.set(account.as_str(), limit);
                self.changed(account).await;
                Ok(())
            }
        }
    }

    /// A new access key for the account (at most [`MAX_KEYS_PER_ACCOUNT`]).
    pub async fn create_key(&self, id_or_name: &str) -> Result<AccessKey, ControlError> {
        let account = self.find(id_or_name).await?;
        match self.store.create_access_key(&account.id).await {
            Ok(Some(k)) => Ok(k),
            Ok(None) => Err(LambdaError::InvalidParameterValue(format!(
                "Cannot exceed quota for AccessKeysPerAccount: {MAX_KEYS_PER_ACCOUNT}"
            ))
            .into()),
            Err(StoreError::NotFound) => Err(no_such_account(id_or_name)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_keys(&self, id_or_name: &str) -> Result<Vec<KeyInfo>, ControlError> {
        let account = self.find(id_or_name).await?;
        Ok(self.store.list_access_keys(&account.id).await?)
    }

    /// Revokes (deletes) an access key: the next request signed with it is refused. The
    /// admin's last key is kept, so that the admin is never locked out.
    pub async fn revoke_key(
        &self,
        id_or_name: &str,
        access_key_id: &str,
    ) -> Result<(), ControlError> {
        let account = self.find(id_or_name).await?;
        if account.is_admin && self.store.list_access_keys(&account.id).await?.len() <= 1 {
            return Err(LambdaError::InvalidParameterValue(
                "The admin account's last access key cannot be revoked; create another first."
                    .into(),
            )
            .into());
        }
        // Forgotten after the delete: a request that read it from the store before sees the
        // epoch moved and does not keep it.
        let gone = self
            .store
            .delete_access_key(&account.id, access_key_id)
            .await?;
        self.forget(&[access_key_id.to_owned()]);
        self.changed(&account.id).await;
        if !gone {
            return Err(LambdaError::ResourceNotFound(format!(
                "The Access Key with id {access_key_id} cannot be found."
            ))
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoke_store::SqliteStore;

    async fn accounts() -> Accounts {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        Accounts::new(store, Arc::new(AccountLimits::new(10)))
    }

    #[tokio::test]
    async fn a_cached_key_is_refused_once_revoked_or_its_account_deleted() {
        let a = accounts().await;
        a.ensure_admin().await.unwrap();
        let (acct, first) = a.create("cached").await.unwrap();
        let second = a.create_key("cached").await.unwrap();
        for k in [&first, &second] {
            assert_eq!(
                a.access_key(&k.access_key_id).await.unwrap().as_ref(),
                Some(k)
            );
        }
        a.revoke_key("cached", &first.access_key_id).await.unwrap();
        assert_eq!(a.access_key(&first.access_key_id).await.unwrap(), None);
        assert!(a.access_key(&second.access_key_id).await.unwrap().is_some());
        a.delete(acct.id.as_str()).await.unwrap();
        assert_eq!(a.access_key(&second.access_key_id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn limits_are_the_accounts_own_or_the_default() {
        let a = accounts().await;
        let (acct, _) = a.create("limits").await.unwrap();
        assert_eq!(a.limits().concurrency(acct.id.as_str()), 10);
        a.set_concurrency(&acct.id, Some(3)).await.unwrap();
        assert_eq!(a.limits().concurrency(acct.id.as_str()), 3);
        let fresh = Accounts::new(Arc::clone(&a.store), Arc::new(AccountLimits::new(10)));
        fresh.load_limits().await.unwrap();
        assert_eq!(
            fresh.limits().concurrency(acct.id.as_str()),
            3,
            "read back at start"
        );
        a.set_concurrency(&acct.id, None).await.unwrap();
        assert_eq!(a.limits().concurrency(acct.id.as_str()), 10);
    }

    #[tokio::test]
    async fn an_account_exists_until_it_is_deleted() {
        let a = accounts().await;
        a.ensure_admin().await.unwrap();
        let (acct, _) = a.create("exists").await.unwrap();
        assert!(a.exists(&acct.id).await.unwrap());
        assert!(a.exists(&acct.id).await.unwrap(), "from memory now");
        a.delete(acct.id.as_str()).await.unwrap();
        assert!(!a.exists(&acct.id).await.unwrap(), "gone at once");
        let never = AccountId::try_from("999999999999".to_owned()).unwrap();
        assert!(!a.exists(&never).await.unwrap());
    }

    #[test]
    fn names_are_checked() {
        for ok in ["alice", "team-2", "a.b_c", "x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "123456789012", "has space", "ünï", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
