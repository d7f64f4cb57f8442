//! Log lines and invocation records: reads, filters, and the trims by lines, bytes and age.

use super::Factory;
use crate::{AccountStore, InvocationRecord, LogEvent, LogQuery, LogStore};

fn line(account: &stoke_core::AccountId, f: &str, m: &str) -> LogEvent {
    LogEvent {
        id: 0,
        account: account.clone(),
        function_name: f.into(),
        log_stream: "s".into(),
        timestamp_ms: 1000,
        request_id: "r".into(),
        message: m.into(),
    }
}

/// The lines `q` reads of `f`.
async fn lines(
    s: &impl LogStore,
    account: &stoke_core::AccountId,
    f: &str,
    q: LogQuery,
) -> Vec<LogEvent> {
    s.read_logs(account, f, &q).await.unwrap().events
}

async fn messages(s: &impl LogStore, account: &stoke_core::AccountId, f: &str) -> Vec<String> {
    let q = LogQuery {
        limit: 10_000,
        ..Default::default()
    };
    lines(s, account, f, q)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect()
}

pub async fn usage_counts_bytes_and_a_byte_trim_removes_the_oldest_first<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let a = &k.account;
    // Ten lines of 99 bytes ("é" is two bytes in UTF-8), one line of another function.
    let logs: Vec<_> = (0..10)
        .map(|i| line(a, "f", &format!("{i}{}", "é".repeat(49))))
        .collect();
    let sizes: Vec<usize> = logs.iter().map(|e| e.message.len()).collect();
    assert_eq!(sizes[0], 99);
    s.append_calls(&logs, &[]).await.unwrap();
    s.append_calls(&[line(a, "g", "other")], &[]).await.unwrap();
    let mut usage = s.log_usage().await.unwrap();
    usage.sort_by(|x, y| x.function_name.cmp(&y.function_name));
    let f_bytes: u64 = sizes.iter().map(|n| *n as u64 + 26).sum();
    assert_eq!(usage.len(), 2);
    assert_eq!((usage[0].bytes, usage[0].lines), (f_bytes, 10));
    assert_eq!((usage[1].bytes, usage[1].lines), (5 + 26, 1));

    // Keep the bytes of the newest four lines, in batches of three: six lines go.
    let keep: u64 = sizes[6..].iter().map(|n| *n as u64 + 26).sum();
    assert_eq!(s.trim_log_bytes(a, Some("f"), keep, 3).await.unwrap(), 6);
    let kept = messages(&s, a, "f").await;
    assert_eq!(kept.len(), 4);
    assert!(
        kept[0].starts_with('6') && kept[3].starts_with('9'),
        "{kept:?}"
    );
    let usage = s.log_usage().await.unwrap();
    let f = usage.iter().find(|u| u.function_name == "f").unwrap();
    assert_eq!((f.bytes, f.lines), (keep, 4));
    // Under the budget: nothing to do.
    assert_eq!(s.trim_log_bytes(a, Some("f"), keep, 3).await.unwrap(), 0);

    // The account's budget takes the oldest lines of any of its functions.
    assert_eq!(s.trim_log_bytes(a, None, 5 + 26, 100).await.unwrap(), 4);
    assert!(messages(&s, a, "f").await.is_empty());
    assert_eq!(messages(&s, a, "g").await, ["other"]);
}

pub async fn count_trims_go_in_batches_and_keep_the_newest<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let logs: Vec<_> = (0..2500)
        .map(|i| line(&k.account, "f", &format!("line {i}")))
        .collect();
    s.append_calls(&logs, &[]).await.unwrap();
    assert_eq!(s.trim_calls(100, 10, 0).await.unwrap(), 2400);
    let kept = messages(&s, &k.account, "f").await;
    assert_eq!(kept.len(), 100);
    assert_eq!(kept[0], "line 2400");
    let usage = s.log_usage().await.unwrap();
    assert_eq!(usage[0].lines, 100);
    // Everything older than the lines' time goes; the usage row goes with them.
    s.trim_calls(100, 10, 2000).await.unwrap();
    assert!(s.log_usage().await.unwrap().is_empty());
}

pub async fn logs_are_read_oldest_first_filtered_and_trimmed_per_function<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let line = |f: &str, t: i64, m: &str| LogEvent {
        id: 0,
        account: k.account.clone(),
        function_name: f.into(),
        log_stream: "s".into(),
        timestamp_ms: t,
        request_id: "r".into(),
        message: m.into(),
    };
    let logs: Vec<_> = (0..10)
        .map(|i| line("f", 1000 + i, &format!("line {i}")))
        .collect();
    s.append_calls(&logs, &[]).await.unwrap();
    s.append_calls(&[line("g", 5, "other")], &[]).await.unwrap();
    let all = lines(
        &s,
        &k.account,
        "f",
        LogQuery {
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 10);
    assert_eq!(all[0].message, "line 0");
    let after = lines(
        &s,
        &k.account,
        "f",
        LogQuery {
            after_id: Some(all[7].id),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(after.len(), 2);
    let since = lines(
        &s,
        &k.account,
        "f",
        LogQuery {
            since_ms: Some(1005),
            contains: Some("line 9".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(since.len(), 1);
    s.trim_calls(3, 10, 0).await.unwrap();
    let kept = lines(
        &s,
        &k.account,
        "f",
        LogQuery {
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    let kept: Vec<_> = kept.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(kept, ["line 7", "line 8", "line 9"]);
    assert_eq!(
        lines(
            &s,
            &k.account,
            "g",
            LogQuery {
                limit: 9,
                ..Default::default()
            }
        )
        .await
        .len(),
        1
    );
}

pub async fn records_are_read_newest_first_and_trimmed_by_count_and_age<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let record = |f: &str, n: i64| InvocationRecord {
        request_id: format!("{f}-{n}"),
        account: k.account.clone(),
        caller_account: k.account.clone(),
        function_name: f.into(),
        version: "$LATEST".into(),
        started_ms: 1000 + n,
        cold: n == 0,
        init_ms: (n == 0).then_some(1.5),
        duration_ms: 2.0,
        billed_ms: 3,
        memory_size_mb: 128,
        max_memory_mb: 20,
        outcome: "Success".into(),
        error_type: None,
    };
    let records: Vec<_> = (0..20).map(|n| record("f", n)).collect();
    s.append_calls(&[], &records).await.unwrap();
    s.append_calls(&[], &[record("g", 0)]).await.unwrap();
    let recent = s.recent_invocations(&k.account, "f", 3).await.unwrap();
    let ids: Vec<_> = recent.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["f-19", "f-18", "f-17"]);
    assert_eq!(recent[0], records[19]);
    // At most 10 per function, then none older than 1015.
    assert_eq!(s.trim_calls(100, 10, 0).await.unwrap(), 10);
    assert_eq!(
        s.recent_invocations(&k.account, "f", 100)
            .await
            .unwrap()
            .len(),
        10
    );
    assert_eq!(s.trim_calls(100, 10, 1015).await.unwrap(), 6);
    let left = s.recent_invocations(&k.account, "f", 100).await.unwrap();
    assert_eq!(left.last().unwrap().request_id, "f-15");
    assert!(
        s.recent_invocations(&k.account, "g", 9)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn every_attempt_of_a_request_keeps_its_record<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    // An async event's retries run under one request id; each attempt is a call of its own.
    let attempt = |n: i64, outcome: &str| InvocationRecord {
        outcome: outcome.into(),
        error_type: (outcome != "Success").then(|| "Unhandled".into()),
        ..super::record(&k.account, "retried", 1000 + n)
    };
    let attempts = [
        attempt(0, "Error"),
        attempt(1, "Error"),
        attempt(2, "Success"),
    ];
    for a in &attempts {
        s.append_calls(&[], std::slice::from_ref(a)).await.unwrap();
    }
    let recent = s.recent_invocations(&k.account, "f", 10).await.unwrap();
    let newest_first: Vec<_> = attempts.iter().rev().cloned().collect();
    assert_eq!(recent, newest_first);
    // Trimmed by count, the oldest attempt goes first.
    assert_eq!(s.trim_calls(100, 2, 0).await.unwrap(), 1);
    let left = s.recent_invocations(&k.account, "f", 10).await.unwrap();
    assert_eq!(left, newest_first[..2]);
}

pub async fn a_page_of_lines_is_cut_by_bytes_and_says_more_follow<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let a = &k.account;
    // Lines of 100, 200, ..., 500 bytes of message: 126, 226, ... with the event overhead.
    let logs: Vec<_> = (1..=5)
        .map(|i| line(a, "f", &"x".repeat(i * 100)))
        .collect();
    s.append_calls(&logs, &[]).await.unwrap();
    let page = |limit: u32, max_bytes: Option<u64>| {
        let s = &s;
        async move {
            let q = LogQuery {
                limit,
                max_bytes,
                ..Default::default()
            };
            let p = s.read_logs(a, "f", &q).await.unwrap();
            let sizes: Vec<_> = p.events.iter().map(|e| e.message.len()).collect();
            (sizes, p.more)
        }
    };
    assert_eq!(page(10, None).await, (vec![100, 200, 300, 400, 500], false));
    assert_eq!(page(5, None).await, (vec![100, 200, 300, 400, 500], false));
    assert_eq!(page(4, None).await, (vec![100, 200, 300, 400], true));
    // 126 + 226 + 326 = 678 fit in 700; the fourth line would not.
    assert_eq!(page(10, Some(700)).await, (vec![100, 200, 300], true));
    assert_eq!(page(10, Some(678)).await, (vec![100, 200, 300], true));
    assert_eq!(page(10, Some(677)).await, (vec![100, 200], true));
    // The first line comes whatever its size, so a reader always gets on.
    assert_eq!(page(10, Some(1)).await, (vec![100], true));
    assert_eq!(
        page(10, Some(1 << 20)).await,
        (vec![100, 200, 300, 400, 500], false)
    );
    // Nothing after the last line.
    let all = lines(
        &s,
        a,
        "f",
        LogQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    let q = LogQuery {
        after_id: all.last().map(|e| e.id),
        limit: 10,
        max_bytes: Some(1),
        ..Default::default()
    };
    let after = s.read_logs(a, "f", &q).await.unwrap();
    assert!(after.events.is_empty() && !after.more);
}

/// Nodes append a function's lines at once while a reader follows them by id (as `stoke logs
/// --follow` and GetLogEvents' forward token do): the reader misses none, because no line
/// becomes visible below an id the reader has already passed.
pub async fn a_reader_following_by_id_misses_no_line_of_concurrent_writers<F: Factory>(
    factory: &F,
) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 30;
    const LINES: usize = 4;
    let s = std::sync::Arc::new(factory.store().await);
    let (k, _) = s.ensure_default_account().await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let s = std::sync::Arc::clone(&s);
        let account = k.account.clone();
        writers.spawn(async move {
            for b in 0..BATCHES {
                let batch: Vec<_> = (0..LINES)
                    .map(|l| line(&account, "f", &format!("{w}/{b}/{l}")))
                    .collect();
                s.append_calls(&batch, &[]).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut writing = true;
    loop {
        let q = LogQuery {
            after_id: after,
            limit: 50,
            ..Default::default()
        };
        let page = s.read_logs(&k.account, "f", &q).await.unwrap();
        if let Some(last) = page.events.last() {
            after = Some(last.id);
        } else if !writing {
            break;
        }
        seen.extend(page.events.into_iter().map(|e| e.message));
        if writing && writers.is_empty() {
            writing = false;
        }
        while let Some(done) = writers.try_join_next() {
            done.unwrap();
        }
        tokio::task::yield_now().await;
    }
    let total = WRITERS * BATCHES * LINES;
    let unique: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a line was read twice");
    assert_eq!(
        seen.len(),
        total,
        "the reader missed lines written below its cursor"
    );
}
