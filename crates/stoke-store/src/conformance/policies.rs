//! Policies per qualifier and their compare-and-swap, the cascade from the function, and the
//! caller an invocation record and a queued event name.

use stoke_core::AccountId;
use stoke_core::policy::{Policy, Principal, Statement};

use super::{Factory, function, record};
use crate::queue::{NewEvent, Queue};
use crate::{AccountStore, FunctionStore, InvocationRecord, LogStore, PolicyStore, StoreError};

fn policy(revision: &str, sids: &[&str]) -> Policy {
    Policy {
        revision_id: revision.into(),
        statements: sids
            .iter()
            .map(|sid| Statement {
                sid: (*sid).into(),
                principal: Principal::Any,
                action: "lambda:InvokeFunction".into(),
                resource: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                condition: Default::default(),
            })
            .collect(),
    }
}

pub async fn policies_are_kept_per_qualifier_with_a_compare_and_swap<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let a = &k.account;
    assert!(matches!(
        s.put_policy(a, "f", "", Some(&policy("p1", &["a"])), None)
            .await,
        Err(StoreError::NotFound)
    ));
    s.insert_function(&function(a, "f", "r1")).await.unwrap();
    assert_eq!(s.get_policy(a, "f", "").await.unwrap(), None);
    s.put_policy(a, "f", "", Some(&policy("p1", &["a"])), None)
        .await
        .unwrap();
    s.put_policy(a, "f", "prod", Some(&policy("q1", &["b"])), None)
        .await
        .unwrap();
    assert_eq!(
        s.get_policy(a, "f", "").await.unwrap(),
        Some(policy("p1", &["a"]))
    );
    assert_eq!(
        s.get_policy(a, "f", "prod").await.unwrap(),
        Some(policy("q1", &["b"]))
    );
    // A second first write, or a write over another revision, loses.
    assert!(matches!(
        s.put_policy(a, "f", "", Some(&policy("p2", &["x"])), None)
            .await,
        Err(StoreError::Stale { .. })
    ));
    assert!(matches!(
        s.put_policy(a, "f", "", Some(&policy("p2", &["x"])), Some("p0"))
            .await,
        Err(StoreError::Stale { .. })
    ));
    s.put_policy(a, "f", "", Some(&policy("p2", &["a", "c"])), Some("p1"))
        .await
        .unwrap();
    assert_eq!(
        s.get_policy(a, "f", "").await.unwrap(),
        Some(policy("p2", &["a", "c"]))
    );
    // Removed by revision; a qualifier's goes on its own.
    assert!(matches!(
        s.put_policy(a, "f", "", None, Some("p1")).await,
        Err(StoreError::Stale { .. })
    ));
    s.put_policy(a, "f", "", None, Some("p2")).await.unwrap();
    assert_eq!(s.get_policy(a, "f", "").await.unwrap(), None);
    s.delete_policy(a, "f", "prod").await.unwrap();
    assert_eq!(s.get_policy(a, "f", "prod").await.unwrap(), None);
    // They go with the function.
    s.put_policy(a, "f", "7", Some(&policy("v1", &["v"])), None)
        .await
        .unwrap();
    s.delete_function(a, "f").await.unwrap();
    s.insert_function(&function(a, "f", "r2")).await.unwrap();
    assert_eq!(s.get_policy(a, "f", "7").await.unwrap(), None);
}

pub async fn a_record_names_the_account_that_called<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let caller = AccountId::try_from("222222222222".to_owned()).unwrap();
    let own = record(&k.account, "own", 1);
    let granted = InvocationRecord {
        caller_account: caller.clone(),
        ..record(&k.account, "granted", 2)
    };
    s.append_calls(&[], &[own.clone(), granted.clone()])
        .await
        .unwrap();
    // Both are the owner's records; the other account's call names its caller.
    let recent = s.recent_invocations(&k.account, "f", 10).await.unwrap();
    assert_eq!(recent, [granted, own]);
    assert!(
        s.recent_invocations(&caller, "f", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_queued_event_keeps_the_account_that_asked<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let owner = AccountId::try_from("123456789012".to_owned()).unwrap();
    let caller = AccountId::try_from("222222222222".to_owned()).unwrap();
    let event = |id: &str, caller: Option<AccountId>| NewEvent {
        request_id: id.into(),
        account: owner.clone(),
        function_name: "f".into(),
        qualifier: "prod".into(),
        payload: b"{}".to_vec(),
        trace_id: None,
        enqueued_ms: 0,
        next_run_ms: 0,
        hops: 0,
        caller,
    };
    s.enqueue(
        &[
            (event("own", None), false),
            (event("granted", Some(caller.clone())), false),
        ],
        "n",
        0,
    )
    .await
    .unwrap();
    let mut claimed = s.claim("n", 1, 1000, 10).await.unwrap();
    claimed.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    let got: Vec<_> = claimed
        .iter()
        .map(|e| (e.request_id.as_str(), e.account.clone(), e.caller.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("granted", owner.clone(), Some(caller)),
            ("own", owner.clone(), None)
        ]
    );
}
