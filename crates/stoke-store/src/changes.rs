//! The change feed: how every node hears of a write another node made to what it caches
//! (functions with their versions, aliases and policies; accounts with their keys and
//! limits), so that its caches forget the stale records.
//!
//! A [`Change`] names what changed, not how; a node that hears one forgets what it cached of
//! it and reads it afresh. [`ChangeFeed::publish`] sends one to every listener of the store,
//! the writer's own included; [`ChangeFeed::listen`] opens a [`ChangeListener`]. A listener
//! whose connection is lost answers [`Change::Everything`] when it is back (what was sent
//! meanwhile is unknown), and a listener that fell behind does likewise: a missed change never
//! leaves a cache stale for ever.
//!
//! On PostgreSQL the feed is `LISTEN`/`NOTIFY` on one channel ([`CHANNEL`]); on SQLite (one
//! node) an in-process broadcast.

use std::fmt;

use async_trait::async_trait;

use crate::StoreError;

/// The PostgreSQL channel changes are sent on.
pub const CHANNEL: &str = "stoke_changes";

/// What a write changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A function of `account`: its `$LATEST`, versions, aliases, policies, tags or
    /// concurrency (or its deletion).
    Function { account: String, name: String },
    /// An account: its keys, its limits or its deletion.
    Account { account: String },
    /// Anything: forget every cache (changes were missed).
    Everything,
}

impl fmt::Display for Change {
    /// The change as it travels: `f <account> <name>`, `a <account>` or `*` (ids and names
    /// never hold a space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Function { account, name } => write!(f, "f {account} {name}"),
            Change::Account { account } => write!(f, "a {account}"),
            Change::Everything => f.write_str("*"),
        }
    }
}

impl Change {
    /// Reads a change as [`fmt::Display`] writes it; anything else is [`Change::Everything`]
    /// (a message this build does not know: forgetting everything is always safe).
    pub fn parse(s: &str) -> Self {
        let mut parts = s.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("f"), Some(a), Some(n), None) if !a.is_empty() && !n.is_empty() => {
                Change::Function {
                    account: a.to_owned(),
                    name: n.to_owned(),
                }
            }
            (Some("a"), Some(a), None, None) if !a.is_empty() => Change::Account {
                account: a.to_owned(),
            },
            _ => Change::Everything,
        }
    }
}

/// Where changes are told and heard.
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Tells every listener of the store (this node's too) that `change` happened.
    async fn publish(&self, change: &Change) -> Result<(), StoreError>;

    /// A listener of every change published from now on.
    async fn listen(&self) -> Result<Box<dyn ChangeListener>, StoreError>;
}

/// Changes as they are published.
#[async_trait]
pub trait ChangeListener: Send {
    /// The next change: [`Change::Everything`] after changes were missed. An error: the feed
    /// is gone (listen again).
    async fn next(&mut self) -> Result<Change, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_back_as_written_and_anything_else_is_everything() {
        for c in [
            Change::Function {
                account: "123456789012".into(),
                name: "my-fn_1".into(),
            },
            Change::Account {
                account: "123456789012".into(),
            },
            Change::Everything,
        ] {
            assert_eq!(Change::parse(&c.to_string()), c);
        }
        for bad in ["", "f", "f a", "f a b c", "a", "x y", "a  "] {
            assert_eq!(Change::parse(bad), Change::Everything, "{bad:?}");
        }
    }
}
