//! The change feed, both ways: what this node's writes tell the other nodes, and what the
//! other nodes' writes make this node's caches forget.
//!
//! - [`Publisher`]: after each write of a function (its `$LATEST`, versions, aliases,
//!   policies, tags, concurrency) the control plane hands a [`Change`] to a task that
//!   publishes them in order on the store's feed, trying a failed one again a few times. It
//!   never waits for the store: a queue that overflows is published as
//!   [`Change::Everything`].
//! - [`watch`]: a task that listens to the feed for as long as the control plane lives and
//!   forgets what each change names (the function's records, versions, aliases, policies and
//!   its account's reservations; an account's keys and limits). A new listener (at start, or
//!   after its connection was lost) first forgets everything: what was sent while nobody
//!   listened is unknown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use stoke_core::AccountId;
use stoke_store::{Change, Store};
use tokio::sync::mpsc;

use super::ControlPlane;
use crate::accounts::Accounts;

/// Changes waiting to be published before the queue counts as overflowed.
const QUEUE: usize = 1024;

/// Tries of one publication.
const TRIES: u32 = 5;

/// How long a listener that could not connect waits before it tries again.
const RELISTEN: Duration = Duration::from_millis(500);

/// Hands changes to the task that publishes them (see the module doc).
#[derive(Debug)]
pub(super) struct Publisher {
    tx: mpsc::Sender<Change>,
    overflowed: Arc<AtomicBool>,
}

impl Publisher {
    /// Starts the publishing task on `store` (it ends with the last handle).
    pub(super) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Change>(QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&overflowed);
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                publish(store.as_ref(), &change).await;
                if flag.swap(false, Ordering::AcqRel) {
                    publish(store.as_ref(), &Change::Everything).await;
                }
            }
        });
        Self { tx, overflowed }
    }

    /// Publishes (soon, in order) that `name` of `account` changed.
    pub(super) fn function(&self, account: &AccountId, name: &str) {
        let change = Change::Function {
            account: account.as_str().to_owned(),
            name: name.to_owned(),
        };
        if self.tx.try_send(change).is_err() {
            self.overflowed.store(true, Ordering::Release);
        }
    }
}

async fn publish(store: &dyn Store, change: &Change) {
    for attempt in 1..=TRIES {
        match store.publish(change).await {
            Ok(()) => return,
            Err(e) if attempt == TRIES => {
                tracing::warn!(%change, error = %e, "a change could not be told to the other nodes");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await,
        }
    }
}

/// Listens to `store`'s feed for as long as `control` lives, and forgets in `control` and
/// `accounts` what the changes name.
pub fn watch(store: Arc<dyn Store>, control: &Arc<ControlPlane>, accounts: &Arc<Accounts>) {
    let control = Arc::downgrade(control);
    let accounts = Arc::downgrade(accounts);
    tokio::spawn(async move {
        loop {
            let mut listener = match store.listen().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to the change feed; trying again");
                    tokio::time::sleep(RELISTEN).await;
                    if control.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            if !apply(&control, &accounts, Change::Everything).await {
                return;
            }
            loop {
                match listener.next().await {
                    Ok(change) => {
                        if !apply(&control, &accounts, change).await {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the change feed was lost; listening again");
                        break;
                    }
                }
            }
        }
    });
}

/// Forgets what `change` names; `false` once the control plane is gone.
async fn apply(control: &Weak<ControlPlane>, accounts: &Weak<Accounts>, change: Change) -> bool {
    let Some(control) = control.upgrade() else {
        return false;
    };
    let accounts = accounts.upgrade();
    tracing::debug!(%change, "heard a change");
    match &change {
        Change::Function { account, name } => {
            if let Ok(account) = AccountId::try_from(account.clone()) {
                control.forget_all_of(&account, name);
            }
            control.limits.forget_reserved(account);
        }
        Change::Account { account } => {
            if let Some(a) = &accounts {
                a.forget_account(account).await;
            }
            control.limits.forget_reserved(account);
        }
        Change::Everything => {
            control.forget_everything();
            if let Some(a) = &accounts {
                a.forget_everything().await;
            }
        }
    }
    true
}
