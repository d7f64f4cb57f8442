//! Delivering to a destination function: Lambda's invocation record (what the destination
//! receives), the event that carries it (one hop more than the event it reports on), and the
//! log line of a record dropped at the hop limit.

use stoke_store::LogEvent;
use stoke_store::queue::{NewEvent, QueuedEvent};

use super::decide::{Condition, Destination};

/// What a run answered, for destinations and dead letters.
#[derive(Debug, Clone)]
pub struct Response {
    pub executed_version: String,
    pub function_error: Option<String>,
    pub body: Vec<u8>,
}

fn json_or_string(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The qualified ARN of the function an event ran on.
pub fn event_function_arn(region: &str, ev: &QueuedEvent) -> String {
    format!(
        "{}:{}",
        stoke_core::ids::function_arn(region, &ev.account, &ev.function_name),
        ev.qualifier
    )
}

/// Lambda's invocation record, as destinations receive it.
pub fn invocation_record(
    ev: &QueuedEvent,
    function_arn: &str,
    condition: Condition,
    response: Option<&Response>,
) -> String {
    let ts = time::OffsetDateTime::now_utc();
    let timestamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.millisecond()
    );
    let mut record = serde_json::json!({
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": ev.request_id,
            "functionArn": function_arn,
            "condition": condition.as_str(),
            "approximateInvokeCount": ev.runs,
        },
        "requestPayload": json_or_string(&ev.payload),
    });
    if let (Some(r), Some(o)) = (response, record.as_object_mut()) {
        let mut ctx = serde_json::json!({
            "statusCode": 200,
            "executedVersion": r.executed_version,
        });
        if let (Some(_), Some(c)) = (&r.function_error, ctx.as_object_mut()) {
            c.insert("functionError".into(), serde_json::json!("Unhandled"));
        }
        o.insert("responseContext".into(), ctx);
        o.insert("responsePayload".into(), json_or_string(&r.body));
    }
    record.to_string()
}

/// The event that delivers the invocation record of `ev` to `to`, as its `hops`-th hop.
pub fn destination_event(
    ev: &QueuedEvent,
    region: &str,
    to: &Destination,
    condition: Condition,
    response: Option<&Response>,
    hops: u32,
    now_ms: i64,
) -> NewEvent {
    let record = invocation_record(ev, &event_function_arn(region, ev), condition, response);
    NewEvent {
        request_id: uuid::Uuid::new_v4().to_string(),
        account: ev.account.clone(),
        function_name: to.function_name.clone(),
        qualifier: to.qualifier.clone(),
        payload: record.into_bytes(),
        trace_id: ev.trace_id.clone(),
        enqueued_ms: now_ms,
        next_run_ms: now_ms,
        hops,
        caller: None,
    }
}

/// What a dropped record says in the log of the function whose run it reports on.
pub fn dropped_message(
    ev: &QueuedEvent,
    to: &Destination,
    condition: Condition,
    hops: u32,
) -> String {
    let kind = if condition == Condition::Success {
        "OnSuccess"
    } else {
        "OnFailure"
    };
    format!(
        "Stoke did not invoke the {kind} destination {}:{} for request {} ({}): the event \
         reached the recursion limit of {hops} hops of a destination chain, so it was dropped \
         (RecursiveInvocationsDropped).",
        to.function_name,
        to.qualifier,
        ev.request_id,
        condition.as_str(),
    )
}

/// A log stream of Lambda's shape (`YYYY/MM/DD/[qualifier]<32 hex>`), for a line about an
/// event that did not run (so had no stream of its own).
fn stream_for(ev: &QueuedEvent) -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}/{:02}/{:02}/[{}]{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        ev.qualifier,
        uuid::Uuid::new_v4().simple()
    )
}

/// The line about a dropped record, in the stream of the run it reports on (`run_logs`, the
/// run's own lines; a new stream when the event did not run).
pub fn dropped_line(
    ev: &QueuedEvent,
    run_logs: &[LogEvent],
    message: String,
    now_ms: i64,
) -> LogEvent {
    let log_stream = run_logs
        .last()
        .map_or_else(|| stream_for(ev), |l| l.log_stream.clone());
    LogEvent {
        id: 0,
        account: ev.account.clone(),
        function_name: ev.function_name.clone(),
        log_stream,
        timestamp_ms: now_ms,
        request_id: ev.request_id.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stoke_core::AccountId;

    fn event() -> QueuedEvent {
        QueuedEvent {
            id: 1,
            request_id: "r".into(),
            account: AccountId::try_from("123456789012".to_owned()).unwrap(),
            function_name: "f".into(),
            qualifier: "$LATEST".into(),
            payload: br#"{"a":1}"#.to_vec(),
            trace_id: Some("t".into()),
            enqueued_ms: 0,
            runs: 3,
            failures: 2,
            backoff_ms: 0,
            hops: 4,
            caller: None,
        }
    }

    #[test]
    fn the_invocation_record_reads_as_lambdas() {
        let ev = event();
        let r = Response {
            executed_version: "$LATEST".into(),
            function_error: Some("Unhandled".into()),
            body: br#"{"errorMessage":"x"}"#.to_vec(),
        };
        let v: serde_json::Value = serde_json::from_str(&invocation_record(
            &ev,
            "arn:f:$LATEST",
            Condition::RetriesExhausted,
            Some(&r),
        ))
        .unwrap_or_default();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(v["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(v["requestPayload"]["a"], 1);
        assert_eq!(v["responseContext"]["functionError"], "Unhandled");
        assert_eq!(v["responsePayload"]["errorMessage"], "x");
    }

    #[test]
    fn a_destination_event_is_one_hop_more_and_carries_the_record() {
        let ev = event();
        let to = Destination {
            function_name: "d".into(),
            qualifier: "live".into(),
        };
        let e = destination_event(&ev, "us-east-1", &to, Condition::Success, None, 5, 77);
        assert_eq!(
            (e.function_name.as_str(), e.qualifier.as_str()),
            ("d", "live")
        );
        assert_eq!((e.hops, e.enqueued_ms, e.next_run_ms), (5, 77, 77));
        assert_eq!(e.trace_id.as_deref(), Some("t"));
        assert_ne!(e.request_id, ev.request_id);
        let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
        assert_eq!(
            v["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"
        );
        assert_eq!(v["requestContext"]["condition"], "Success");
        assert!(v.get("responseContext").is_none());
    }

    #[test]
    fn a_dropped_record_is_logged_in_the_runs_stream_or_a_new_one() {
        let ev = event();
        let to = Destination {
            function_name: "d".into(),
            qualifier: "$LATEST".into(),
        };
        let msg = dropped_message(&ev, &to, Condition::Success, 16);
        assert!(msg.contains("OnSuccess destination d:$LATEST"), "{msg}");
        assert!(msg.contains("recursion limit of 16 hops"), "{msg}");
        let fresh = dropped_line(&ev, &[], msg.clone(), 9);
        assert!(
            fresh.log_stream.contains("/[$LATEST]"),
            "{}",
            fresh.log_stream
        );
        assert_eq!(fresh.log_stream.len(), "2026/01/01/[$LATEST]".len() + 32);
        let run = LogEvent {
            log_stream: "2026/12/01/[$LATEST]abc".into(),
            ..fresh.clone()
        };
        let line = dropped_line(&ev, &[run], msg, 9);
        assert_eq!(line.log_stream, "2026/12/01/[$LATEST]abc");
        assert_eq!(
            (line.function_name.as_str(), line.request_id.as_str()),
            ("f", "r")
        );
        let failed = dropped_message(&ev, &to, Condition::EventAgeExceeded, 16);
        assert!(failed.contains("OnFailure destination"), "{failed}");
    }
}
