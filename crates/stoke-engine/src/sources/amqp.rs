//! RabbitMQ (AMQP 0-9-1) as a [`Source`], on the `amqprs` crate: one connection per mapping
//! with a consuming channel (manual acknowledgements, `basic.qos` prefetch of the batches the
//! mapping may have in flight) and a second channel for the queue's message count (a passive
//! `queue.declare`: the lag). The queue must exist; Stoke declares nothing.
//!
//! Deliveries are pushed by the broker into the consumer's buffer (never more than the
//! prefetch); [`Source::poll`] waits on it with a bounded wait (no busy loop) and takes what is
//! there. A message's id is `<connection>.<delivery tag>`: a delivery tag means something only
//! on the channel that delivered it, so an acknowledgement for a connection that has since
//! gone is dropped (the broker put that message back in the queue when the connection went,
//! and delivers it again: at least once) instead of acknowledging another message under the
//! same tag on the new channel.
//!
//! A failed batch is retried by the poller while it holds the delivery ([`Source::nack`] leaves
//! it unacknowledged); the broker requeues whatever a consumer held when its connection
//! closes (a stopped poller, a dead node, a lost broker), with `redelivered` set and, on a
//! quorum queue, `x-delivery-count`. The delivery count is `x-delivery-count + 1` when the
//! header is there, else 2 for a redelivered message and 1 for a new one. Nothing is
//! "claimed": the broker redelivers by itself ([`Source::claim_stale`] only connects).
//!
//! Bounds: a 5 s timeout on connecting (TCP, handshake, channel, qos, consume) and on every
//! call to the broker, heartbeats every 5 s (a silent broker is dropped after two missed
//! ones), a poll waits at most [`MAX_WAIT`], the consumer's buffer holds at most the prefetch.
//! A broken connection is dropped and made again on the next poll (the poller backs off
//! between failures); the endpoints are tried in their order. The password is never logged
//! nor shown by `Debug`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicQosArguments, Channel, ConsumerMessage,
    QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, FieldValue, Nack, Return};
use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use stoke_store::mappings::Mapping;
use tokio::sync::{Mutex, mpsc};

use super::rules::DEFAULT_MAX_CONCURRENCY;
use super::source::{Message, Source, SourceError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The heartbeat timeout asked of the broker, in seconds (a heartbeat every half of it).
const HEARTBEAT_SECS: u16 = 10;
/// The longest a poll waits for the first delivery; a poller's wait is cut to it.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// AMQP's short strings (names, tags, credentials) hold at most 255 bytes.
const SHORT_MAX: usize = 255;
const DEFAULT_PORT: u16 = 5672;

/// One broker of an `AMQP_URL` endpoint, parsed (`amqp://user:pass@host:port/vhost`).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub user: String,
    password: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// `raw` without its password (for messages).
pub fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => raw.to_owned(),
    }
}

fn decoded(part: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "it is not UTF-8 once percent-decoded".to_owned())
}

/// Parses an `AMQP_URL` endpoint as the AMQP URI spec reads it: user and password default to
/// `guest`, the port to 5672, the virtual host (the path, percent-decoded) to `/`. `amqps`
/// is refused (Stoke carries no TLS stack yet). The error is the reason, in words.
pub fn parse_endpoint(raw: &str) -> Result<Endpoint, String> {
    let shown = redact(raw);
    let bad = |why: &str| format!("The endpoint {shown} is not a valid AMQP_URL: {why}.");
    let u = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    match u.scheme() {
        "amqp" => {}
        "amqps" => {
            return Err(bad(
                "amqps (TLS) is not supported by Stoke yet, use amqp://",
            ));
        }
        _ => return Err(bad("expected amqp://user:password@host:port/vhost")),
    }
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("it names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let user = match u.username() {
        "" => "guest".to_owned(),
        name => decoded(name).map_err(|w| bad(&format!("the user name: {w}")))?,
    };
    let password = match u.password() {
        None if u.username().is_empty() => "guest".to_owned(),
        None => String::new(),
        Some(p) => decoded(p).map_err(|w| bad(&format!("the password: {w}")))?,
    };
    let path = u.path().strip_prefix('/').unwrap_or(u.path());
    if path.contains('/') {
        return Err(bad(
            "the virtual host must be one path segment (write / as %2F)",
        ));
    }
    let vhost = match path {
        "" => "/".to_owned(),
        p => decoded(p).map_err(|w| bad(&format!("the virtual host: {w}")))?,
    };
    for (what, value) in [
        ("host", &host),
        ("user name", &user),
        ("password", &password),
    ] {
        if value.len() > SHORT_MAX {
            return Err(bad(&format!("the {what} is longer than {SHORT_MAX} bytes")));
        }
    }
    if vhost.len() > SHORT_MAX {
        return Err(bad(&format!(
            "the virtual host is longer than {SHORT_MAX} bytes"
        )));
    }
    Ok(Endpoint {
        port: u.port().unwrap_or(DEFAULT_PORT),
        host,
        vhost,
        user,
        password,
    })
}

/// The prefetch of a mapping: every batch it may have in flight, full (AMQP's prefetch count
/// is a 16-bit number: at most 65,535).
pub fn prefetch(batch_size: u32, maximum_concurrency: Option<u32>) -> u16 {
    let batches = maximum_concurrency
        .unwrap_or(DEFAULT_MAX_CONCURRENCY)
        .max(1);
    u16::try_from(batch_size.max(1).saturating_mul(batches)).unwrap_or(u16::MAX)
}

/// At most [`SHORT_MAX`] bytes of `s`, cut at a character boundary.
fn short(s: &str) -> String {
    let mut end = s.len().min(SHORT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// What is live of one connection to the broker.
struct Live {
    /// Numbers this connection's deliveries (their ids start with it).
    generation: u64,
    connection: Connection,
    /// The consuming channel: acknowledgements go on it.
    channel: Channel,
    /// The channel for the queue's count, opened on first use.
    admin: Mutex<Option<Channel>>,
    rx: Mutex<mpsc::UnboundedReceiver<ConsumerMessage>>,
}

impl Live {
    fn open(&self) -> bool {
        self.connection.is_open() && self.channel.is_open()
    }
}

/// One mapping's consumer of one queue.
pub struct AmqpSource {
    endpoints: Vec<Endpoint>,
    queue: String,
    consumer_tag: String,
    prefetch: u16,
    live: Mutex<Option<Arc<Live>>>,
    generations: AtomicU64,
}

impl std::fmt::Debug for AmqpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSource")
            .field("endpoints", &self.endpoints)
            .field("queue", &self.queue)
            .field("consumer_tag", &self.consumer_tag)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

fn connection_error(what: &str, e: &amqprs::error::Error) -> SourceError {
    SourceError::Connection(format!("{what}: {e}"))
}

/// `f`, given at most `limit`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = Result<T, amqprs::error::Error>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(connection_error(what, &e)),
        Err(_) => Err(SourceError::Connection(format!(
            "{what}: no answer within {} s",
            limit.as_secs()
        ))),
    }
}

/// A message id: the connection's generation and the delivery tag.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (generation, tag) = id.split_once('.')?;
    Some((generation.parse().ok()?, tag.parse().ok()?))
}

impl AmqpSource {
    /// A consumer tagged `consumer_tag` of `queue` on the first of `endpoints` that answers
    /// (nothing is connected until the first poll).
    pub fn new(
        endpoints: &[String],
        queue: &str,
        consumer_tag: &str,
        prefetch: u16,
    ) -> Result<Self, SourceError> {
        let endpoints = endpoints
            .iter()
            .map(|e| parse_endpoint(e).map_err(SourceError::Refused))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() || queue.is_empty() || queue.len() > SHORT_MAX {
            return Err(SourceError::Refused(
                "an AMQP source needs an endpoint and a queue name of 1 to 255 bytes".into(),
            ));
        }
        Ok(Self {
            endpoints,
            queue: queue.to_owned(),
            consumer_tag: short(consumer_tag),
            prefetch: prefetch.max(1),
            live: Mutex::new(None),
            generations: AtomicU64::new(0),
        })
    }

    /// The source of mapping `m` on node `owner`: its consumer tag is the mapping's consumer
    /// group and the node, its prefetch every batch the mapping may have in flight.
    pub fn for_mapping(m: &Mapping, owner: &str) -> Result<Self, SourceError> {
        Self::new(
            &m.endpoints,
            &m.topic,
            &format!("{}.{owner}", m.consumer_group),
            prefetch(m.batch_size, m.maximum_concurrency),
        )
    }

    async fn connect(&self) -> Result<Live, SourceError> {
        let mut last = SourceError::Connection("no endpoint".into());
        for e in &self.endpoints {
            match self.connect_to(e).await {
                Ok(live) => return Ok(live),
                Err(err) => {
                    tracing::debug!(host = %e.host, port = e.port, error = %err,
                        "cannot consume from this AMQP endpoint");
                    last = err;
                }
            }
        }
        Err(last)
    }

    async fn connect_to(&self, e: &Endpoint) -> Result<Live, SourceError> {
        let mut args = OpenConnectionArguments::new(&e.host, e.port, &e.user, &e.password);
        args.virtual_host(&e.vhost)
            .heartbeat(HEARTBEAT_SECS)
            .connection_name(&self.consumer_tag);
        let connection = bounded(CONNECT_TIMEOUT, "connect", Connection::open(&args)).await?;
        let name = self.queue.clone();
        bounded(
            CALL_TIMEOUT,
            "connection callback",
            connection.register_callback(Watch {
                queue: name.clone(),
            }),
        )
        .await?;
        let channel = bounded(
            CALL_TIMEOUT,
            "open a channel",
            connection.open_channel(None),
        )
        .await?;
        bounded(
            CALL_TIMEOUT,
            "channel callback",
            channel.register_callback(Watch { queue: name }),
        )
        .await?;
        bounded(
            CALL_TIMEOUT,
            "basic.qos",
            channel.basic_qos(BasicQosArguments::new(0, self.prefetch, false)),
        )
        .await?;
        // The queue must be there (a missing one closes the channel: an error here).
        bounded(
            CALL_TIMEOUT,
            "queue.declare (passive)",
            channel.queue_declare(
                QueueDeclareArguments::new(&self.queue)
                    .passive(true)
                    .finish(),
            ),
        )
        .await?;
        let consume = BasicConsumeArguments::new(&self.queue, &self.consumer_tag)
            .manual_ack(true)
            .finish();
        let (_, rx) = bounded(
            CALL_TIMEOUT,
            "basic.consume",
            channel.basic_consume_rx(consume),
        )
        .await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(queue = %self.queue, host = %e.host, generation, "consuming");
        Ok(Live {
            generation,
            connection,
            channel,
            admin: Mutex::new(None),
            rx: Mutex::new(rx),
        })
    }

    /// The live connection, made (again) if there is none or it broke.
    async fn current(&self) -> Result<Arc<Live>, SourceError> {
        let mut guard = self.live.lock().await;
        if let Some(live) = guard.as_ref()
            && live.open()
        {
            return Ok(Arc::clone(live));
        }
        // A broken one is dropped first: the broker requeues what it held.
        *guard = None;
        let live = Arc::new(self.connect().await?);
        *guard = Some(Arc::clone(&live));
        Ok(live)
    }

    /// Drops connection `generation` if it is still the current one.
    async fn forget(&self, generation: u64) {
        let mut guard = self.live.lock().await;
        if guard.as_ref().is_some_and(|l| l.generation == generation) {
            *guard = None;
        }
    }
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
fn message(generation: u64, queue: &str, m: ConsumerMessage) -> Option<Message> {
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
        meta,
    })
}

#[async_trait]
impl Source for AmqpSource {
    async fn poll(&self, max: usize, wait: Duration) -> Result<Vec<Message>, SourceError> {
        let live = self.current().await?;
        let mut rx = live.rx.lock().await;
        let first = match tokio::time::timeout(wait.min(MAX_WAIT), rx.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(Some(m)) => m,
            Ok(None) => {
                drop(rx);
                self.forget(live.generation).await;
                return Err(SourceError::Connection(
                    "the broker ended the consumer (connection lost, queue deleted or \
                     consumer cancelled)"
                        .into(),
                ));
            }
        };
        let mut out: Vec<Message> = message(live.generation, &self.queue, first)
            .into_iter()
            .collect();
        while out.len() < max.max(1) {
            match rx.try_recv() {
                Ok(m) => out.extend(message(live.generation, &self.queue, m)),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    async fn ack(&self, ids: &[String]) -> Result<(), SourceError> {
        let Some(live) = self.live.lock().await.clone() else {
            // No connection: the broker took back whatever was delivered on the last one.
            return Ok(());
        };
        for (generation, tag) in ids.iter().filter_map(|id| parse_id(id)) {
            if generation != live.generation {
                continue;
            }
            let acked = bounded(
                CALL_TIMEOUT,
                "basic.ack",
                live.channel.basic_ack(BasicAckArguments::new(tag, false)),
            )
            .await;
            if let Err(e) = acked {
                self.forget(live.generation).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn nack(&self, _ids: &[String]) -> Result<(), SourceError> {
        // The poller retries the batch while it holds the deliveries; whatever it still holds
        // when its connection closes, the broker requeues.
        Ok(())
    }

    async fn claim_stale(&self, _idle: Duration, _max: usize) -> Result<Vec<Message>, SourceError> {
        // The broker redelivers what a closed consumer held: nothing to claim. The poller
        // calls this first and after every failure, so the connection is made here: a broker
        // still away fails it, and the poller's backoff grows.
        self.current().await?;
        Ok(Vec::new())
    }

    async fn lag(&self) -> Result<Option<u64>, SourceError> {
        let Some(live) = self.live.lock().await.clone() else {
            return Ok(None);
        };
        let mut admin = live.admin.lock().await;
        let channel = match admin.as_ref() {
            Some(c) if c.is_open() => c.clone(),
            _ => {
                let c = bounded(
                    CALL_TIMEOUT,
                    "open a channel",
                    live.connection.open_channel(None),
                )
                .await?;
                *admin = Some(c.clone());
                c
            }
        };
        let declared = bounded(
            CALL_TIMEOUT,
            "queue.declare (passive)",
            channel.queue_declare(
                QueueDeclareArguments::new(&self.queue)
                    .passive(true)
                    .finish(),
            ),
        )
        .await;
        match declared {
            Ok(reply) => Ok(reply.map(|(_, ready, _)| u64::from(ready))),
            Err(e) => {
                *admin = None;
                Err(e)
            }
        }
    }
}

/// What the broker tells a connection or channel on its own (a close, a cancelled consumer,
/// flow control): logged; the consumer's buffer ends with it and the next poll reconnects.
struct Watch {
    queue: String,
}

#[async_trait]
impl ConnectionCallback for Watch {
    async fn close(&mut self, _c: &Connection, close: Close) -> Result<(), amqprs::error::Error> {
        tracing::warn!(queue = %self.queue, code = close.reply_code(),
            reason = %close.reply_text(), "the AMQP broker closed the connection");
        Ok(())
    }

    async fn blocked(&mut self, _c: &Connection, reason: String) {
        tracing::warn!(queue = %self.queue, %reason, "the AMQP broker blocked the connection");
    }

    async fn unblocked(&mut self, _c: &Connection) {}

    async fn secret_updated(&mut self, _c: &Connection) {}
}

#[async_trait]
impl ChannelCallback for Watch {
    async fn close(
        &mut self,
        _c: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(queue = %self.queue, code = close.reply_code(),
            reason = %close.reply_text(), "the AMQP broker closed the channel");
        Ok(())
    }

    async fn cancel(&mut self, _c: &Channel, _cancel: Cancel) -> Result<(), amqprs::error::Error> {
        tracing::warn!(queue = %self.queue, "the AMQP broker cancelled the consumer");
        Ok(())
    }

    async fn flow(&mut self, _c: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _c: &Channel, _ack: Ack) {}

    async fn publish_nack(&mut self, _c: &Channel, _nack: Nack) {}

    async fn publish_return(
        &mut self,
        _c: &Channel,
        _ret: Return,
        _props: BasicProperties,
        _content: Vec<u8>,
    ) {
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_amqp_url_is_read_as_the_uri_spec_says() {
        let e = parse_endpoint("amqp://u%40x:p%2Fw@h.example:5673/v%2Fh").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.vhost.as_str(), e.user.as_str()),
            ("h.example", 5673, "v/h", "u@x")
        );
        assert_eq!(e.password, "p/w");
        let d = parse_endpoint("amqp://127.0.0.1").unwrap();
        assert_eq!(
            (
                d.port,
                d.vhost.as_str(),
                d.user.as_str(),
                d.password.as_str()
            ),
            (5672, "/", "guest", "guest")
        );
        assert_eq!(parse_endpoint("amqp://h/%2f").unwrap().vhost, "/");
        assert_eq!(parse_endpoint("amqp://[::1]:5672/").unwrap().host, "::1");
        let refused = parse_endpoint("amqps://u:secret@h:5671/v").unwrap_err();
        assert_eq!(
            refused,
            "The endpoint amqps://u:***@h:5671/v is not a valid AMQP_URL: amqps (TLS) is not \
             supported by Stoke yet, use amqp://."
        );
        let two = parse_endpoint("amqp://u:secret@h/a/b").unwrap_err();
        assert!(
            two.contains("one path segment") && !two.contains("secret"),
            "{two}"
        );
        assert!(parse_endpoint("amqp://u:secret@:5672/v").is_err());
        let long = format!("amqp://h/{}", "v".repeat(256));
        assert!(parse_endpoint(&long).unwrap_err().contains("255 bytes"));
    }

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(redact("amqp://u:pw@h:1/v?x=1"), "amqp://u:***@h:1/v?x=1");
        assert_eq!(redact("amqp://h:1/v"), "amqp://h:1/v");
        let e = parse_endpoint("amqp://user:hunter2@h/v").unwrap();
        assert!(!format!("{e:?}").contains("hunter2"));
        let s = AmqpSource::new(&["amqp://user:hunter2@h/v".into()], "q", "t", 10).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_prefetch_covers_the_batches_in_flight_within_amqps_limit() {
        assert_eq!(prefetch(10, Some(4)), 40);
        assert_eq!(
            prefetch(100, None),
            u16::try_from(100 * DEFAULT_MAX_CONCURRENCY).unwrap()
        );
        assert_eq!(prefetch(10_000, Some(1000)), u16::MAX);
        assert_eq!(prefetch(0, Some(0)), 1);
    }

    #[test]
    fn ids_name_the_connection_and_the_tag() {
        assert_eq!(parse_id("3.17"), Some((3, 17)));
        assert_eq!(parse_id("17"), None);
        assert_eq!(parse_id("a.b"), None);
        assert_eq!(short(&"é".repeat(200)).len(), 254);
    }
}
