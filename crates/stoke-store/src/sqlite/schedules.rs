//! The SQLite side of the schedules ([`crate::schedules::ScheduleStore`] for [`SqliteStore`],
//! migration 0011): the shared SQL of `schedules::sql`, writing through the store's write gate.

use sqlx::Row;
use stoke_core::AccountId;

use super::accounts::account_id as account;
use crate::{SqliteStore, StoreError};

crate::schedules::sql::schedule_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    writer,
    super::queue::insert_event,
    super::queue::insert_dead_letter
);
