//! Schedules and schedule groups: conflicts, the `default` group, lists with filters and
//! pages, and a tick's fire (compare-and-swap, its event enqueued once, delete on completion,
//! an undelivered tick's dead letter written once).

use stoke_core::AccountId;

use super::Factory;
use crate::StoreError;
use crate::queue::{NewDeadLetter, NewEvent, Queue};
use crate::schedules::{
    DEFAULT_GROUP, Fire, Schedule, ScheduleFilter, ScheduleGroup, ScheduleStore,
};

fn acct(n: &str) -> AccountId {
    AccountId::try_from(n.to_owned()).unwrap()
}

fn schedule(account: &AccountId, group: &str, name: &str, next: Option<i64>) -> Schedule {
    Schedule {
        account: account.clone(),
        group: group.into(),
        name: name.into(),
        state: "ENABLED".into(),
        spec: format!("{{\"name\":\"{name}\"}}"),
        next_ms: next,
        last_tick_ms: None,
        created_ms: 1,
        modified_ms: 1,
    }
}

fn group(account: &AccountId, name: &str) -> ScheduleGroup {
    ScheduleGroup {
        account: account.clone(),
        name: name.into(),
        created_ms: 5,
        modified_ms: 5,
    }
}

fn tick_event(account: &AccountId, id: &str, at: i64) -> NewEvent {
    NewEvent {
        request_id: id.into(),
        account: account.clone(),
        function_name: "f".into(),
        qualifier: "$LATEST".into(),
        payload: b"{}".to_vec(),
        trace_id: None,
        enqueued_ms: at,
        next_run_ms: at,
        hops: 0,
        caller: None,
    }
}

pub async fn groups_are_unique_listed_in_pages_and_take_their_schedules<F: Factory>(f: &F) {
    let s = f.store().await;
    let a = acct("123456789012");
    let b = acct("210987654321");
    for name in ["beta", "alpha", "alps"] {
        s.create_schedule_group(&group(&a, name)).await.unwrap();
    }
    assert!(matches!(
        s.create_schedule_group(&group(&a, "alpha")).await,
        Err(StoreError::Conflict)
    ));
    // Another account may use the same name.
    s.create_schedule_group(&group(&b, "alpha")).await.unwrap();
    assert_eq!(
        s.get_schedule_group(&a, "alpha").await.unwrap(),
        Some(group(&a, "alpha"))
    );
    assert_eq!(s.get_schedule_group(&a, "nope").await.unwrap(), None);
    let names = |v: Vec<ScheduleGroup>| v.into_iter().map(|g| g.name).collect::<Vec<_>>();
    let page = s.list_schedule_groups(&a, None, None, 2).await.unwrap();
    assert_eq!(names(page), ["alpha", "alps"]);
    let rest = s
        .list_schedule_groups(&a, None, Some("alps"), 2)
        .await
        .unwrap();
    assert_eq!(names(rest), ["beta"]);
    let al = s
        .list_schedule_groups(&a, Some("al"), None, 10)
        .await
        .unwrap();
    assert_eq!(names(al), ["alpha", "alps"]);
    // A deleted group takes its schedules with it; the other account's stay.
    s.create_schedule(&schedule(&a, "alpha", "s1", Some(10)))
        .await
        .unwrap();
    s.create_schedule(&schedule(&b, "alpha", "s1", Some(10)))
        .await
        .unwrap();
    assert!(s.delete_schedule_group(&a, "alpha").await.unwrap());
    assert!(!s.delete_schedule_group(&a, "alpha").await.unwrap());
    assert_eq!(s.get_schedule(&a, "alpha", "s1").await.unwrap(), None);
    assert!(s.get_schedule(&b, "alpha", "s1").await.unwrap().is_some());
}

pub async fn schedules_conflict_need_their_group_and_list_with_filters<F: Factory>(f: &F) {
    let s = f.store().await;
    let a = acct("123456789012");
    // The default group needs no row; another group does.
    s.create_schedule(&schedule(&a, DEFAULT_GROUP, "b-one", Some(10)))
        .await
        .unwrap();
    assert!(matches!(
        s.create_schedule(&schedule(&a, "nightly", "x", Some(10)))
            .await,
        Err(StoreError::NotFound)
    ));
    s.create_schedule_group(&group(&a, "nightly"))
        .await
        .unwrap();
    s.create_schedule(&schedule(&a, "nightly", "a-two", Some(20)))
        .await
        .unwrap();
    let mut off = schedule(&a, DEFAULT_GROUP, "b-three", Some(5));
    off.state = "DISABLED".into();
    s.create_schedule(&off).await.unwrap();
    assert!(matches!(
        s.create_schedule(&schedule(&a, DEFAULT_GROUP, "b-one", None))
            .await,
        Err(StoreError::Conflict)
    ));
    let list = |filter: ScheduleFilter| {
        let s = &s;
        let a = &a;
        async move {
            s.list_schedules(a, &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|x| format!("{}/{}", x.group, x.name))
                .collect::<Vec<_>>()
        }
    };
    let all = ScheduleFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        list(all.clone()).await,
        ["default/b-one", "default/b-three", "nightly/a-two"]
    );
    assert_eq!(
        list(ScheduleFilter {
            limit: 1,
            after: Some(("default".into(), "b-one".into())),
            ..all.clone()
        })
        .await,
        ["default/b-three"]
    );
    assert_eq!(
        list(ScheduleFilter {
            group: Some("nightly".into()),
            ..all.clone()
        })
        .await,
        ["nightly/a-two"]
    );
    assert_eq!(
        list(ScheduleFilter {
            name_prefix: Some("b-".into()),
            state: Some("DISABLED".into()),
            ..all.clone()
        })
        .await,
        ["default/b-three"]
    );
    // Only enabled schedules are due; the earliest first.
    let due = s.due_schedules(100, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["b-one", "a-two"]
    );
    assert_eq!(s.next_schedule_ms().await.unwrap(), Some(10));
    // An update replaces state, spec and next tick; a missing schedule is not found.
    let mut up = schedule(&a, DEFAULT_GROUP, "b-one", Some(50));
    up.spec = "{\"changed\":true}".into();
    up.modified_ms = 9;
    s.update_schedule(&up).await.unwrap();
    let got = s
        .get_schedule(&a, DEFAULT_GROUP, "b-one")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            got.spec.as_str(),
            got.next_ms,
            got.created_ms,
            got.modified_ms
        ),
        ("{\"changed\":true}", Some(50), 1, 9)
    );
    assert!(matches!(
        s.update_schedule(&schedule(&a, DEFAULT_GROUP, "gone", None))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(s.delete_schedule(&a, DEFAULT_GROUP, "b-one").await.unwrap());
    assert!(!s.delete_schedule(&a, DEFAULT_GROUP, "b-one").await.unwrap());
    assert_eq!(s.next_schedule_ms().await.unwrap(), Some(20));
}

pub async fn a_tick_fires_once_with_its_event_in_the_same_commit<F: Factory>(f: &F) {
    let s = f.store().await;
    let a = acct("123456789012");
    s.create_schedule(&schedule(&a, DEFAULT_GROUP, "tick", Some(1000)))
        .await
        .unwrap();
    let fire = Fire {
        account: a.clone(),
        group: DEFAULT_GROUP.into(),
        name: "tick".into(),
        expected_next_ms: 1000,
        tick_ms: 1000,
        next_ms: Some(2000),
        event: Some(tick_event(&a, "tick-1000", 1000)),
        dead_letter: None,
        delete: false,
    };
    assert!(s.fire(&fire).await.unwrap());
    // The same tick again (another node, or a retry) moves nothing and enqueues nothing.
    assert!(!s.fire(&fire).await.unwrap());
    let got = s
        .get_schedule(&a, DEFAULT_GROUP, "tick")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.next_ms, got.last_tick_ms), (Some(2000), Some(1000)));
    assert_eq!(s.stats().await.unwrap().depth, 1);
    let claimed = s.claim("n", 5000, 9000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].request_id, "tick-1000");
    // A skipped tick (past its window) moves on without an event.
    let skip = Fire {
        expected_next_ms: 2000,
        tick_ms: 2000,
        next_ms: Some(3000),
        event: None,
        ..fire.clone()
    };
    assert!(s.fire(&skip).await.unwrap());
    assert_eq!(s.stats().await.unwrap().depth, 1);
    // An undelivered tick's dead letter is written with the move, once.
    let letter = NewDeadLetter {
        request_id: "tick-2500".into(),
        account: a.clone(),
        function_name: "f".into(),
        qualifier: "$LATEST".into(),
        payload: b"{\"tick\":2500}".to_vec(),
        trace_id: None,
        enqueued_ms: 2500,
        failed_ms: 2600,
        condition: "EventAgeExceeded".into(),
        runs: 0,
        error_type: None,
        response: Some(b"{}".to_vec()),
    };
    let dead = Fire {
        expected_next_ms: 3000,
        tick_ms: 3000,
        next_ms: Some(3500),
        dead_letter: Some(letter.clone()),
        ..skip.clone()
    };
    assert!(s.fire(&dead).await.unwrap());
    assert!(!s.fire(&dead).await.unwrap());
    let letters = s.list_dead_letters(&a, 0, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].letter, letter);
    // The last tick of a schedule to delete after completion takes the row away.
    let last = Fire {
        expected_next_ms: 3500,
        tick_ms: 3500,
        next_ms: None,
        event: Some(tick_event(&a, "tick-3000", 3000)),
        delete: true,
        ..fire.clone()
    };
    assert!(s.fire(&last).await.unwrap());
    assert_eq!(
        s.get_schedule(&a, DEFAULT_GROUP, "tick").await.unwrap(),
        None
    );
    assert_eq!(s.stats().await.unwrap().depth, 2);
    // A fire on a schedule that is gone writes nothing.
    assert!(
        !s.fire(&Fire {
            event: Some(tick_event(&a, "tick-4000", 4000)),
            ..last
        })
        .await
        .unwrap()
    );
    assert_eq!(s.stats().await.unwrap().depth, 2);
}
