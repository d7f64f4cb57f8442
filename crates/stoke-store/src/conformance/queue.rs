//! The durable queue: leases and their expiry, release per owner, retries, dead letters and
//! redrives, event-invoke configurations.

use stoke_core::AccountId;

use super::Factory;
use crate::queue::{EventInvokeConfig, Finish, FinishKind, NewDeadLetter, NewEvent, Queue};

fn acct() -> AccountId {
    AccountId::try_from("123456789012".to_owned()).unwrap()
}

pub(crate) fn event(n: u32, now: i64) -> NewEvent {
    NewEvent {
        request_id: format!("r-{n}"),
        account: acct(),
        function_name: "f".into(),
        qualifier: "$LATEST".into(),
        payload: b"{}".to_vec(),
        trace_id: None,
        enqueued_ms: now,
        next_run_ms: now,
        hops: 0,
        caller: None,
    }
}

fn finish(id: i64, kind: FinishKind) -> Finish {
    Finish {
        id,
        kind,
        follow_up: None,
        dead_letter: None,
        logs: vec![],
        record: None,
    }
}

pub async fn a_lease_hides_an_event_until_it_expires<F: Factory>(factory: &F) {
    let s = factory.store().await;
    s.enqueue(&[(event(1, 0), false)], "a", 0).await.unwrap();
    let got = s.claim("a", 10, 1000, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].runs, 1);
    // Leased: nobody else sees it until the lease ends.
    assert!(s.claim("b", 500, 2000, 10).await.unwrap().is_empty());
    let again = s.claim("b", 1001, 2000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].runs, 2);
    // The old owner's finish no longer counts; the new owner's does.
    s.finish("a", &[finish(again[0].id, FinishKind::Delete)])
        .await
        .unwrap();
    assert_eq!(s.stats().await.unwrap().depth, 1);
    s.finish("b", &[finish(again[0].id, FinishKind::Delete)])
        .await
        .unwrap();
    assert_eq!(s.stats().await.unwrap().depth, 0);
}

pub async fn a_retry_waits_for_its_time_and_start_up_releases_leases<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let ids = s
        .enqueue(&[(event(1, 0), true), (event(2, 0), false)], "a", 10_000)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    let got = s.claim("a", 0, 10_000, 10).await.unwrap();
    assert_eq!(got.len(), 1, "the leased one is not claimed twice");
    s.finish(
        "a",
        &[finish(
            got[0].id,
            FinishKind::Retry {
                next_run_ms: 60_000,
                failures: 1,
                backoff_ms: 0,
            },
        )],
    )
    .await
    .unwrap();
    assert_eq!(s.next_due_ms().await.unwrap(), Some(60_000));
    assert!(s.claim("a", 5_000, 70_000, 10).await.unwrap().is_empty());
    // A new process releases the first event's lease.
    assert_eq!(s.release_leases("a").await.unwrap(), 1);
    let now = s.claim("c", 1, 10_000, 10).await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].request_id, "r-1");
    let later = s.claim("c", 60_000, 70_000, 10).await.unwrap();
    let r2 = later.iter().find(|e| e.request_id == "r-2").unwrap();
    assert_eq!(r2.failures, 1);
}

pub async fn an_events_hops_are_kept_by_enqueue_and_follow_up<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let mut first = event(1, 0);
    first.hops = 3;
    let ids = s.enqueue(&[(first, true)], "a", 10).await.unwrap();
    let mut f = finish(ids[0], FinishKind::Delete);
    let mut next = event(2, 0);
    next.hops = 4;
    f.follow_up = Some(next);
    s.finish("a", &[f]).await.unwrap();
    let got = s.claim("a", 0, 10, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].request_id.as_str(), got[0].hops), ("r-2", 4));
}

pub async fn dead_letters_redrive_into_the_queue<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let ids = s.enqueue(&[(event(1, 0), true)], "a", 10).await.unwrap();
    let e = event(1, 0);
    let mut f = finish(ids[0], FinishKind::Delete);
    f.dead_letter = Some(NewDeadLetter {
        request_id: e.request_id.clone(),
        account: acct(),
        function_name: "f".into(),
        qualifier: "$LATEST".into(),
        payload: e.payload.clone(),
        trace_id: None,
        enqueued_ms: 0,
        failed_ms: 5,
        condition: "EventAgeExceeded".into(),
        runs: 1,
        error_type: None,
        response: None,
    });
    s.finish("a", &[f]).await.unwrap();
    let list = s.list_dead_letters(&acct(), 0, 10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].letter.condition, "EventAgeExceeded");
    assert!(s.redrive(&acct(), list[0].id, &e).await.unwrap());
    assert!(!s.redrive(&acct(), list[0].id, &e).await.unwrap());
    assert_eq!(s.stats().await.unwrap().depth, 1);
    assert!(
        s.list_dead_letters(&acct(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_release_frees_only_the_owners_leases<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let owner = s.node_owner().await.unwrap();
    assert!(!owner.is_empty());
    assert_eq!(
        s.node_owner().await.unwrap(),
        owner,
        "the owner name is kept"
    );
    s.enqueue(&[(event(1, 0), true)], &owner, 10_000)
        .await
        .unwrap();
    s.enqueue(&[(event(2, 0), true)], "another node", 10_000)
        .await
        .unwrap();
    assert_eq!(s.stats().await.unwrap().leased, 2);
    assert_eq!(s.release_leases(&owner).await.unwrap(), 1);
    assert_eq!(s.release_leases(&owner).await.unwrap(), 0);
    // Only the released event is free again; the other node still holds its own.
    let free = s.claim("c", 1, 10_000, 10).await.unwrap();
    assert_eq!(free.len(), 1);
    assert_eq!(free[0].request_id, "r-1");
    // A finish by someone who does not hold the lease changes nothing.
    let other = s.claim("c", 10_001, 20_000, 10).await.unwrap();
    let r2 = other.iter().find(|e| e.request_id == "r-2").unwrap();
    s.finish(&owner, &[finish(r2.id, FinishKind::Delete)])
        .await
        .unwrap();
    assert_eq!(s.stats().await.unwrap().depth, 2);
}

pub async fn event_invoke_configs_are_kept_per_qualifier<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let config = |qualifier: &str, retries: Option<u32>| EventInvokeConfig {
        account: acct(),
        function_name: "f".into(),
        qualifier: qualifier.into(),
        maximum_retry_attempts: retries,
        maximum_event_age_seconds: Some(60),
        on_success: None,
        on_failure: Some("arn:aws:lambda:us-east-1:123456789012:function:dlq".into()),
        last_modified: 1.5,
    };
    s.put_event_config(&config("$LATEST", Some(1)))
        .await
        .unwrap();
    s.put_event_config(&config("1", None)).await.unwrap();
    s.put_event_config(&config("$LATEST", Some(2)))
        .await
        .unwrap();
    let got = s.get_event_config(&acct(), "f", "$LATEST").await.unwrap();
    assert_eq!(got, Some(config("$LATEST", Some(2))));
    let all = s.list_event_configs(&acct(), "f").await.unwrap();
    let qualifiers: Vec<_> = all.iter().map(|c| c.qualifier.as_str()).collect();
    assert_eq!(qualifiers, ["$LATEST", "1"]);
    assert!(s.delete_event_config(&acct(), "f", "1").await.unwrap());
    assert!(!s.delete_event_config(&acct(), "f", "1").await.unwrap());
    assert!(
        s.get_event_config(&acct(), "f", "1")
            .await
            .unwrap()
            .is_none()
    );
}
