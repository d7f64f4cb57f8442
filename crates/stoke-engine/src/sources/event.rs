//! What a batch looks like to the function and what its answer means: the event in the shape
//! of Lambda's SQS event (`Records[]` with `messageId`, `receiptHandle`, `body`, `attributes`,
//! `messageAttributes`, `eventSource`, `eventSourceARN`, `awsRegion`, and the broker's own
//! metadata under its name: `redis`, `rmq` for RabbitMQ, or `nats` as the source gave it), the view of a record that
//! `FilterCriteria` matches (`body` as JSON when it is JSON), and `ReportBatchItemFailures`
//! with Lambda's rules; the on-failure record's batch info.

use std::collections::HashSet;

use serde_json::{Value, json};
use stoke_store::mappings::Mapping;

use super::rules::AMQP_URL;
use super::rules::NATS_URL;
use super::source::Message;

/// The record of `m` as the function sees it.
pub fn record(mapping: &Mapping, region: &str, m: &Message) -> Value {
    let attributes: serde_json::Map<String, Value> = m
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), json!({"stringValue": v, "dataType": "String"})))
        .collect();
    let sent = m.sent_ms.map(|ms| ms.to_string()).unwrap_or_default();
    let (event_source, broker, metadata) = match mapping.endpoint_kind.as_str() {
        AMQP_URL => {
            // The count as of this delivery: the poller's retries add to the broker's.
            let mut o = m.metadata.clone();
            o.insert("deliveryCount".into(), json!(m.delivery_count));
            ("aws:rmq", "rmq", Value::Object(o))
        }
        NATS_URL => ("aws:nats", "nats", Value::Object(m.metadata.clone())),
        _ => (
            "aws:redis",
            "redis",
            json!({
                "stream": mapping.topic,
                "id": m.id,
                "consumerGroup": mapping.consumer_group,
                "deliveryCount": m.delivery_count,
            }),
        ),
    };
    let mut record = json!({
        "messageId": m.id,
        "receiptHandle": format!("{}:{}", mapping.uuid, m.id),
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": m.delivery_count.to_string(),
            "SentTimestamp": sent,
        },
        "messageAttributes": attributes,
        "eventSource": event_source,
        "eventSourceARN": mapping.source,
        "awsRegion": region,
    });
    if let Some(o) = record.as_object_mut() {
        o.insert(broker.into(), metadata);
    }
    record
}

/// The member of an on-failure record that names the failed batch, and its value.
pub fn batch_info(mapping: &Mapping, ids: &[String]) -> (&'static str, Value) {
    let (name, place) = match mapping.endpoint_kind.as_str() {
        AMQP_URL => ("RabbitMQBatchInfo", json!({"queue": mapping.topic})),
        NATS_URL => (
            "NATSJetStreamBatchInfo",
            json!({"stream": mapping.topic, "consumerGroup": mapping.consumer_group}),
        ),
        _ => (
            "RedisStreamBatchInfo",
            json!({"stream": mapping.topic, "consumerGroup": mapping.consumer_group}),
        ),
    };
    let mut info = place;
    if let Some(o) = info.as_object_mut() {
        o.insert("eventSourceArn".into(), json!(mapping.source));
        o.insert("firstId".into(), json!(ids.first()));
        o.insert("lastId".into(), json!(ids.last()));
        o.insert("batchSize".into(), json!(ids.len()));
    }
    (name, info)
}

/// The record as `FilterCriteria` sees it: the same, with `body` parsed when it is JSON (a
/// pattern on `body`'s fields then matches; a body that is not JSON matches only patterns on
/// `body` itself).
pub fn filter_view(mut record: Value) -> Value {
    if let Some(body) = record.get("body").and_then(Value::as_str)
        && let Ok(parsed) = serde_json::from_str::<Value>(body)
        && let Some(o) = record.as_object_mut()
    {
        o.insert("body".into(), parsed);
    }
    record
}

/// The event of a batch of records.
pub fn event(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "Records": records })).unwrap_or_default()
}

/// What a successful call's answer says of its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every record is done.
    AllDone,
    /// These records (by `messageId`) failed; the rest are done.
    Failed(Vec<String>),
    /// The answer cannot be read as Lambda's `batchItemFailures`: the whole batch failed.
    AllFailed,
}

/// Reads `ReportBatchItemFailures`' answer as Lambda does: an empty or null answer, or an
/// empty or null `batchItemFailures`, is a complete success; invalid JSON, an empty, null or
/// missing `itemIdentifier`, or one that names no record of the batch, a complete failure.
pub fn batch_item_failures(payload: &[u8], ids: &[String]) -> BatchOutcome {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return BatchOutcome::AllDone;
    }
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return BatchOutcome::AllFailed;
    };
    let failures = match &v {
        Value::Null => return BatchOutcome::AllDone,
        Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchOutcome::AllDone,
            Some(Value::Array(items)) => items,
            Some(_) => return BatchOutcome::AllFailed,
        },
        _ => return BatchOutcome::AllFailed,
    };
    let known: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut failed = Vec::new();
    for item in failures {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && known.contains(id) => {
                if !failed.iter().any(|f: &String| f == id) {
                    failed.push(id.to_owned());
                }
            }
            _ => return BatchOutcome::AllFailed,
        }
    }
    if failed.is_empty() {
        BatchOutcome::AllDone
    } else {
        BatchOutcome::Failed(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["1-0".into(), "2-0".into(), "3-0".into()]
    }

    #[test]
    fn report_batch_item_failures_follows_lambdas_rules() {
        use BatchOutcome::*;
        for (payload, want) in [
            ("", AllDone),
            ("null", AllDone),
            ("{}", AllDone),
            (r#"{"batchItemFailures": null}"#, AllDone),
            (r#"{"batchItemFailures": []}"#, AllDone),
            (
                r#"{"batchItemFailures": [{"itemIdentifier": "2-0"}]}"#,
                Failed(vec!["2-0".into()]),
            ),
            (
                r#"{"batchItemFailures": [{"itemIdentifier": "3-0"}, {"itemIdentifier": "1-0"}]}"#,
                Failed(vec!["3-0".into(), "1-0".into()]),
            ),
            ("not json", AllFailed),
            (
                r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
                AllFailed,
            ),
            (
                r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
                AllFailed,
            ),
            (r#"{"batchItemFailures": [{"id": "2-0"}]}"#, AllFailed),
            (
                r#"{"batchItemFailures": [{"itemIdentifier": "9-0"}]}"#,
                AllFailed,
            ),
            (r#"{"batchItemFailures": "2-0"}"#, AllFailed),
            ("[1]", AllFailed),
        ] {
            assert_eq!(
                batch_item_failures(payload.as_bytes(), &ids()),
                want,
                "{payload}"
            );
        }
    }

    #[test]
    fn a_json_body_is_matched_as_json_and_text_as_text() {
        let view = filter_view(json!({"body": "{\"a\": 1}", "messageId": "1-0"}));
        assert_eq!(view["body"]["a"], 1);
        let view = filter_view(json!({"body": "plain", "messageId": "1-0"}));
        assert_eq!(view["body"], "plain");
    }
}
