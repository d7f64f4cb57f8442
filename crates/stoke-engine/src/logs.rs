//! Reading functions' stored log lines (what the API's `FilterLogEvents` answers); the
//! writing side is [`crate::record`].

use std::sync::Arc;

use stoke_core::AccountId;
use stoke_store::{LogPage, Store};

use crate::ControlError;

pub use stoke_store::{LogPage as Page, LogQuery};

/// Reads log lines.
pub struct Logs {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").finish_non_exhaustive()
    }
}

impl Logs {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The lines of `function` in `account` that `query` asks for, oldest first.
    pub async fn read(
        &self,
        account: &AccountId,
        function: &str,
        query: &LogQuery,
    ) -> Result<LogPage, ControlError> {
        Ok(self.store.read_logs(account, function, query).await?)
    }
}
