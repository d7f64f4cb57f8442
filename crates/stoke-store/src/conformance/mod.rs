//! The behaviour every store implementation must show, as async test cases over a store
//! factory ([`Factory`]): accounts and their keys, functions and their compare-and-swap, versions
//! and aliases, policies, logs and
//! their trims, the queue (leases, expiry, release per owner, renewal, retries, dead letters), the
//! node registry, event source mappings and their leases, blobs, the change feed and concurrency
//! slots.
//!
//! An implementation runs them all with [`conformance_tests!`](crate::conformance_tests), one
//! `#[tokio::test]` per case (the SQLite run is `sqlite::conformance_tests`). Available in this
//! crate's tests and, for other crates' implementations, with the `conformance` feature.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use async_trait::async_trait;
use stoke_core::{AccountId, CodeInfo, ConfigInput, Function, FunctionName, State};

use crate::{BlobStore, InvocationRecord, Queue, Store};

pub mod accounts;
pub mod blobs;
pub mod changes;
pub mod functions;
pub mod logs;
pub mod mappings;
pub mod nodes;
pub mod policies;
pub mod queue;
pub mod versions;

/// Makes fresh, empty stores of one implementation (its futures need not be `Send`: tests
/// run them on one thread).
#[async_trait(?Send)]
pub trait Factory {
    type Store: Store + Queue;
    type Blobs: BlobStore;

    /// A store of its own, empty.
    async fn store(&self) -> Self::Store;

    /// A blob store of its own, empty.
    fn blobs(&self) -> Self::Blobs;
}

/// A `$LATEST` function of `account`, as the control plane would store it.
pub(crate) fn function(account: &AccountId, name: &str, revision: &str) -> Function {
    Function {
        account: account.clone(),
        name: FunctionName::parse("functionName", name).unwrap(),
        config: ConfigInput {
            runtime: Some("wasm".into()),
            handler: Some("f.wasm".into()),
            ..Default::default()
        }
        .into_new_config()
        .unwrap(),
        code: CodeInfo {
            sha256_hex: "ab".repeat(32),
            size: 10,
            unzipped_size: 20,
        },
        state: State::Pending,
        state_reason: None,
        last_update_status: None,
        last_update_reason: None,
        revision_id: revision.into(),
        last_modified: "2026-01-01T00:00:00.000+0000".into(),
        tags: BTreeMap::new(),
        generation: 1,
        version: stoke_core::LATEST.into(),
        serving: None,
        reserved_concurrency: None,
        runtime_version_arn: None,
    }
}

/// A successful call's record of `f` in `account`, made by the account itself.
pub(crate) fn record(account: &AccountId, request_id: &str, started_ms: i64) -> InvocationRecord {
    InvocationRecord {
        request_id: request_id.into(),
        account: account.clone(),
        caller_account: account.clone(),
        function_name: "f".into(),
        version: "1".into(),
        started_ms,
        cold: false,
        init_ms: None,
        duration_ms: 1.0,
        billed_ms: 1,
        memory_size_mb: 128,
        max_memory_mb: 20,
        outcome: "Success".into(),
        error_type: None,
    }
}

/// One `#[tokio::test]` per conformance case, each on a store from `$factory` (an expression
/// that makes a [`Factory`], evaluated once per test).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            functions::the_default_account_is_created_once,
            accounts::accounts_have_unique_names_and_keys_of_their_own,
            accounts::an_account_has_at_most_two_keys_and_a_deleted_key_is_gone,
            accounts::an_account_owning_functions_or_the_admin_is_not_deleted,
            accounts::an_accounts_concurrency_limit_is_kept,
            functions::a_setting_keeps_its_first_value,
            functions::a_duplicate_name_conflicts_and_a_stale_revision_is_refused,
            functions::listing_pages_in_name_order_and_usage_counts,
            functions::a_replace_of_a_missing_function_is_not_found,
            versions::version_numbers_are_never_reused_and_cascade_with_the_function,
            versions::a_stale_version_or_alias_revision_is_refused,
            logs::logs_are_read_oldest_first_filtered_and_trimmed_per_function,
            logs::usage_counts_bytes_and_a_byte_trim_removes_the_oldest_first,
            logs::count_trims_go_in_batches_and_keep_the_newest,
            logs::records_are_read_newest_first_and_trimmed_by_count_and_age,
            logs::every_attempt_of_a_request_keeps_its_record,
            policies::policies_are_kept_per_qualifier_with_a_compare_and_swap,
            policies::a_record_names_the_account_that_called,
            policies::a_queued_event_keeps_the_account_that_asked,
            logs::a_page_of_lines_is_cut_by_bytes_and_says_more_follow,
            queue::a_lease_hides_an_event_until_it_expires,
            queue::a_retry_waits_for_its_time_and_start_up_releases_leases,
            queue::an_events_hops_are_kept_by_enqueue_and_follow_up,
            queue::dead_letters_redrive_into_the_queue,
            queue::a_release_frees_only_the_owners_leases,
            queue::event_invoke_configs_are_kept_per_qualifier,
            mappings::mappings_are_kept_listed_and_replaced_by_revision,
            mappings::a_mapping_is_leased_to_one_owner_until_it_expires,
            mappings::a_mappings_credentials_are_sealed_and_come_back_opened,
            nodes::nodes_register_heartbeat_and_leave,
            nodes::a_node_renews_only_its_own_leases,
            blobs::a_blob_is_stored_once_under_its_digest,
            blobs::an_address_that_is_not_a_digest_names_nothing,
            changes::every_listener_hears_what_is_published_in_order,
            changes::slots_hold_a_limit_expire_and_are_given_back,
        );
    };
    (@cases $factory:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::conformance::$module::$case(&$factory).await;
            }
        )*
    };
}
