//! A delivery as the poller's [`Message`]: its id (`<connection>.<delivery tag>`), body (UTF-8
//! as it is, else base64), headers as attributes, delivery count (`x-delivery-count + 1`, else
//! 2 when `redelivered`, else 1), `timestamp` as the sent time, and the broker's metadata
//! (queue, exchange, routing key, tag, properties in Lambda's MQ names).

use std::collections::BTreeMap;

use amqprs::channel::ConsumerMessage;
use amqprs::{BasicProperties, FieldValue};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::super::source::Message;

/// A message id: the connection's generation and the delivery tag.
pub(super) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (generation, tag) = id.split_once('.')?;
    Some((generation.parse().ok()?, tag.parse().ok()?))
}

/// A header's value as text (strings as they are, numbers and the rest as AMQP prints them).
fn field_text(v: &FieldValue) -> String {
    match v {
        FieldValue::S(s) => s.as_ref().clone(),
        other => other.to_string(),
    }
}

fn properties_json(p: &BasicProperties, headers: &BTreeMap<String, String>) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.to_owned(), v);
        }
    };
    put("contentType", p.content_type().map(|s| json!(s)));
    put("contentEncoding", p.content_encoding().map(|s| json!(s)));
    put("deliveryMode", p.delivery_mode().map(|n| json!(n)));
    put("priority", p.priority().map(|n| json!(n)));
    put("correlationId", p.correlation_id().map(|s| json!(s)));
    put("replyTo", p.reply_to().map(|s| json!(s)));
    put("expiration", p.expiration().map(|s| json!(s)));
    put("messageId", p.message_id().map(|s| json!(s)));
    put("timestamp", p.timestamp().map(|n| json!(n)));
    put("type", p.message_type().map(|s| json!(s)));
    put("userId", p.user_id().map(|s| json!(s)));
    put("appId", p.app_id().map(|s| json!(s)));
    put("clusterId", p.cluster_id().map(|s| json!(s)));
    put("headers", (!headers.is_empty()).then(|| json!(headers)));
    Value::Object(o)
}

/// A delivery as a [`Message`] (none for a frame without its delivery, which the library
/// says does not happen).
pub(super) fn message(generation: u64, queue: &str, m: ConsumerMessage) -> Option<Message> {
    let deliver = m.deliver?;
    let props = m.basic_properties.unwrap_or_default();
    let headers: BTreeMap<String, String> = props
        .headers()
        .map(|t| {
            t.as_ref()
                .iter()
                .map(|(k, v)| (k.to_string(), field_text(v)))
                .collect()
        })
        .unwrap_or_default();
    let delivery_count = headers
        .get("x-delivery-count")
        .and_then(|c| c.parse::<u64>().ok())
        .map_or(if deliver.redelivered() { 2 } else { 1 }, |n| n + 1);
    let (body, base64) = match String::from_utf8(m.content.unwrap_or_default()) {
        Ok(text) => (text, false),
        Err(e) => (
            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            true,
        ),
    };
    let mut meta = Map::new();
    meta.insert("queue".into(), json!(queue));
    meta.insert("exchange".into(), json!(deliver.exchange()));
    meta.insert("routingKey".into(), json!(deliver.routing_key()));
    meta.insert("deliveryTag".into(), json!(deliver.delivery_tag()));
    meta.insert("redelivered".into(), json!(deliver.redelivered()));
    meta.insert("basicProperties".into(), properties_json(&props, &headers));
    if base64 {
        meta.insert("bodyEncoding".into(), json!("base64"));
    }
    Some(Message {
        id: format!("{generation}.{}", deliver.delivery_tag()),
        body,
        attributes: headers,
        delivery_count,
        sent_ms: props
            .timestamp()
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| s.saturating_mul(1000)),
        metadata: meta,
    })
}
