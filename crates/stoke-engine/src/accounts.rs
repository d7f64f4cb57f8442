//! Accounts and their access keys, as the API's SigV4 check asks for them.
//!
//! An access key never changes once made, so a key read once is kept (keys cannot be deleted
//! yet; when they can, deleting one must forget it here).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use stoke_store::{AccessKey, Store};

use crate::ControlError;

/// Looks up access keys.
pub struct Accounts {
    store: Arc<dyn Store>,
    /// Keys already read, by access key id.
    keys: RwLock<HashMap<String, AccessKey>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            keys: RwLock::default(),
        }
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
        let k = self.store.access_key(access_key_id).await?;
        if let (Some(k), Ok(mut keys)) = (&k, self.keys.write()) {
            keys.insert(k.access_key_id.clone(), k.clone());
        }
        Ok(k)
    }
}
