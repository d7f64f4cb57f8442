//! NATS JetStream as a [`Source`], on the `async-nats` crate: one durable pull consumer per
//! mapping (named after its consumer group, made at the stream's start or its end as
//! `StartingPosition` says, explicit acks), batches fetched with a bounded wait, acknowledged
//! with `+ACK` after success, `-NAK` with a delay after a failure, `+TERM` once a poison
//! message went to the on-failure destination, the lag from the consumer's `num_pending`.
//!
//! - A poll first takes what is there at once (a `no_wait` fetch of the whole batch); when
//!   nothing is, it waits up to the poller's wait (at most [`MAX_WAIT`]) for one message (a
//!   long pull: an idle mapping sends one request per wait, never a busy loop), then takes at
//!   once whatever else came with it.
//! - Redelivery is JetStream's own: a message delivered and neither acknowledged nor refused
//!   comes back after the consumer's ack wait ([`ACK_WAIT`]), to whichever poller holds the
//!   mapping then, so [`Source::claim_stale`] has nothing to do. The messages this source has
//!   handed to its poller and not yet settled are remembered (by stream sequence, with their
//!   reply subject); one of them delivered again while the poller still works on it (its
//!   call outlasted the ack wait, or a nak's delay passed during the poller's own retries) is
//!   not handed over twice: its newest reply subject is kept for the acknowledgement.
//! - A record's `messageId` is the stream sequence; its attributes are the message's headers;
//!   the broker's metadata (stream, consumer, subject, sequences, delivery count, pending,
//!   headers with all their values) goes under `nats` in the record. A payload that is not
//!   UTF-8 is given in base64 (`nats.payloadEncoding` says so).
//!
//! Bounds: one connection per mapping with a 5 s connect timeout and 5 s request timeout; the
//! client reconnects on its own (with its backoff) and the poller backs off while it does
//! (a poll on a disconnected client fails at once); every fetch and flush is bounded by a
//! deadline; at most [`MAX_ACK_PENDING`] messages are out unacknowledged per mapping. The URL
//! may carry credentials, and `BASIC_AUTH` gives a user and password (no user: a token): none
//! of it is logged nor shown by `Debug`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind};
use async_nats::{Client, ConnectOptions, ServerAddr, Subject};
use async_trait::async_trait;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};
use stoke_store::mappings::BasicAuth;

use super::source::{Message, Source, SourceError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a long pull waits; a poller's wait is cut to it.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// How long past a pull's own expiry its answer may take before the broker counts as gone.
const SLACK: Duration = Duration::from_secs(2);
/// The consumer's ack wait: a message neither acknowledged nor refused in this time is
/// delivered again (after a crash of the poller, or a broker that lost a batch in flight).
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// How long a failed message waits before JetStream delivers it again (the poller retries it
/// itself meanwhile; the delay matters when the poller stops before it succeeds).
pub const NAK_DELAY: Duration = Duration::from_secs(2);
/// The most messages out unacknowledged at once per mapping (the consumer's
/// `max_ack_pending`; JetStream delivers no more until some are settled).
pub const MAX_ACK_PENDING: i64 = 20_000;

/// One mapping's durable pull consumer of one stream.
pub struct NatsSource {
    servers: Vec<ServerAddr>,
    /// `BASIC_AUTH`'s credentials (a user and password; no user: a token).
    auth: Option<BasicAuth>,
    stream: String,
    durable: String,
    latest: bool,
    client: tokio::sync::Mutex<Option<Client>>,
    consumer: tokio::sync::Mutex<Option<PullConsumer>>,
    /// The messages handed over and not yet settled: stream sequence → newest reply subject.
    held: Mutex<HashMap<String, Subject>>,
    /// `num_pending` as the newest delivered message told it (none after an empty poll).
    pending_hint: Mutex<Option<u64>>,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The servers' URLs may carry a password: never shown.
        f.debug_struct("NatsSource")
            .field("stream", &self.stream)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

fn gone(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Connection(format!("{what}: {e}"))
}

fn timed_out(what: &str) -> SourceError {
    SourceError::Connection(format!("{what}: no answer in time"))
}

/// The record's body, and whether it had to be base64.
fn body(payload: &[u8]) -> (String, bool) {
    match std::str::from_utf8(payload) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(payload),
            true,
        ),
    }
}

/// `m` as the poller sees it, with its reply subject (`None`: not a JetStream delivery).
fn message(m: &jetstream::Message) -> Option<(Message, Subject)> {
    let reply = m.reply.clone()?;
    let info = m.info().ok()?;
    let mut attributes = BTreeMap::new();
    let mut headers = serde_json::Map::new();
    if let Some(h) = &m.headers {
        for (name, values) in h.iter() {
            let values: Vec<String> = values.iter().map(|v| v.as_str().to_owned()).collect();
            attributes.insert(name.to_string(), values.join(","));
            headers.insert(name.to_string(), json!(values));
        }
    }
    let (text, base64) = body(&m.payload);
    let delivered = u64::try_from(info.delivered.max(1)).unwrap_or(1);
    let mut metadata = serde_json::Map::new();
    for (k, v) in [
        ("stream", json!(info.stream)),
        ("consumer", json!(info.consumer)),
        ("subject", json!(m.subject.as_str())),
        ("sequence", json!(info.stream_sequence)),
        ("consumerSequence", json!(info.consumer_sequence)),
        ("deliveryCount", json!(delivered)),
        ("pending", json!(info.pending)),
        ("headers", Value::Object(headers)),
    ] {
        metadata.insert(k.into(), v);
    }
    if base64 {
        metadata.insert("payloadEncoding".into(), json!("base64"));
    }
    let sent_ms = i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).ok();
    let msg = Message {
        id: info.stream_sequence.to_string(),
        body: text,
        attributes,
        delivery_count: delivered,
        sent_ms,
        metadata,
    };
    Some((msg, reply))
}

impl NatsSource {
    /// The durable consumer `durable` of `stream` on the servers `urls`, signing in with
    /// `auth` when given (nothing is connected until the first call).
    pub fn new(
        urls: &[String],
        stream: &str,
        durable: &str,
        latest: bool,
        auth: Option<&BasicAuth>,
    ) -> Result<Self, SourceError> {
        let servers = urls
            .iter()
            .map(|u| u.parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SourceError::Refused(e.to_string()))?;
        if servers.is_empty() {
            return Err(SourceError::Refused("no NATS server named".into()));
        }
        Ok(Self {
            servers,
            auth: auth.cloned(),
            stream: stream.to_owned(),
            durable: durable.to_owned(),
            latest,
            client: tokio::sync::Mutex::new(None),
            consumer: tokio::sync::Mutex::new(None),
            held: Mutex::new(HashMap::new()),
            pending_hint: Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<Client, SourceError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let options = match &self.auth {
            Some(a) if a.username.is_empty() => ConnectOptions::with_token(a.password.to_string()),
            Some(a) => {
                ConnectOptions::with_user_and_password(a.username.clone(), a.password.to_string())
            }
            None => ConnectOptions::new(),
        };
        let client = options
            .name("stoke")
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(self.servers.clone())
            .await
            .map_err(|e| gone("cannot connect", e))?;
        *guard = Some(client.clone());
        Ok(client)
    }

    /// The consumer (made when missing); fails at once while the client is reconnecting.
    async fn consumer(&self) -> Result<PullConsumer, SourceError> {
        let client = self.client().await?;
        if client.connection_state() != State::Connected {
            return Err(SourceError::Connection("disconnected".into()));
        }
        let mut guard = self.consumer.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let js = jetstream::new(client.clone());
        let stream = js.get_stream(&self.stream).await.map_err(|e| {
            use async_nats::jetstream::context::GetStreamErrorKind as K;
            match e.kind() {
                K::JetStream(_) | K::EmptyName | K::InvalidStreamName => {
                    SourceError::Refused(format!("stream {}: {e}", self.stream))
                }
                _ => gone("stream lookup", e),
            }
        })?;
        let config = pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some("Stoke event source mapping".into()),
            deliver_policy: if self.latest {
                DeliverPolicy::New
            } else {
                DeliverPolicy::All
            },
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver: -1,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&self.durable, config)
            .await
            .map_err(|e| {
                use async_nats::jetstream::stream::ConsumerErrorKind as K;
                match e.kind() {
                    K::JetStream(_) | K::InvalidName | K::InvalidConsumerType => {
                        SourceError::Refused(format!("consumer {}: {e}", self.durable))
                    }
                    _ => gone("consumer lookup", e),
                }
            })?;
        *guard = Some(consumer.clone());
        Ok(consumer)
    }

    /// Forgets the consumer (looked up again next time: the broker may have lost it).
    async fn forget_consumer(&self) {
        *self.consumer.lock().await = None;
    }

    /// Up to `max` messages of one pull (`wait`: a long pull waiting that long for the first;
    /// `None`: what is there at once), less those already held (their reply subject renewed).
    async fn pull(
        &self,
        c: &PullConsumer,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Message>, SourceError> {
        let batch = match wait {
            Some(w) => c.batch().max_messages(max).expires(w).messages().await,
            None => c.fetch().max_messages(max).messages().await,
        };
        let mut batch = batch.map_err(|e| gone("pull", e))?;
        let deadline = tokio::time::Instant::now() + wait.unwrap_or(REQUEST_TIMEOUT) + SLACK;
        let mut out = Vec::new();
        let mut failure = None;
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(m))) => {
                    let Some((msg, reply)) = message(&m) else {
                        tracing::warn!(stream = %self.stream, "a delivery without JetStream metadata");
                        continue;
                    };
                    if let Ok(mut p) = self.pending_hint.lock() {
                        *p = Some(
                            msg.metadata
                                .get("pending")
                                .and_then(Value::as_u64)
                                .unwrap_or(0),
                        );
                    }
                    let fresh = match self.held.lock() {
                        Ok(mut h) => h.insert(msg.id.clone(), reply).is_none(),
                        Err(_) => true,
                    };
                    if fresh {
                        out.push(msg);
                    }
                }
                Ok(Some(Err(e))) => {
                    failure = Some(gone("pull", e));
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    failure = Some(timed_out("pull"));
                    break;
                }
            }
        }
        match failure {
            // What came before the failure is held: handed over, never lost.
            Some(_) if !out.is_empty() => Ok(out),
            Some(e) => {
                self.forget_consumer().await;
                Err(e)
            }
            None => Ok(out),
        }
    }

    /// Sends `kind` for each of `ids` this source holds and flushes; `release` forgets them.
    async fn settle(
        &self,
        ids: &[String],
        kind: AckKind,
        release: bool,
    ) -> Result<(), SourceError> {
        let replies: Vec<Subject> = match self.held.lock() {
            Ok(h) => ids.iter().filter_map(|id| h.get(id).cloned()).collect(),
            Err(_) => Vec::new(),
        };
        if replies.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let send = async {
            for reply in replies {
                client
                    .publish(reply, kind.into())
                    .await
                    .map_err(|e| gone("acknowledge", e))?;
            }
            client.flush().await.map_err(|e| gone("acknowledge", e))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, send)
            .await
            .map_err(|_| timed_out("acknowledge"))??;
        if release && let Ok(mut h) = self.held.lock() {
            for id in ids {
                h.remove(id);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Source for NatsSource {
    async fn poll(&self, max: usize, wait: Duration) -> Result<Vec<Message>, SourceError> {
        let max = max.max(1);
        let c = self.consumer().await?;
        let got = self.pull(&c, max, None).await?;
        if !got.is_empty() {
            return Ok(got);
        }
        if let Ok(mut p) = self.pending_hint.lock() {
            *p = None;
        }
        let wait = wait.min(MAX_WAIT);
        if wait.is_zero() {
            return Ok(got);
        }
        let mut got = self.pull(&c, 1, Some(wait)).await?;
        if !got.is_empty() && max > 1 {
            got.extend(self.pull(&c, max - 1, None).await?);
        }
        Ok(got)
    }

    async fn ack(&self, ids: &[String]) -> Result<(), SourceError> {
        self.settle(ids, AckKind::Ack, true).await
    }

    async fn nack(&self, ids: &[String]) -> Result<(), SourceError> {
        // Still held: the poller retries them itself; JetStream delivers them again after
        // the delay only if it stops first.
        self.settle(ids, AckKind::Nak(Some(NAK_DELAY)), false).await
    }

    async fn discard(&self, ids: &[String]) -> Result<(), SourceError> {
        self.settle(ids, AckKind::Term, true).await
    }

    async fn claim_stale(&self, _idle: Duration, _max: usize) -> Result<Vec<Message>, SourceError> {
        // JetStream redelivers what a dead consumer left once its ack wait has passed.
        Ok(Vec::new())
    }

    async fn lag(&self) -> Result<Option<u64>, SourceError> {
        if let Some(p) = self.pending_hint.lock().ok().and_then(|p| *p) {
            return Ok(Some(p));
        }
        let c = self.consumer().await?;
        let info = tokio::time::timeout(REQUEST_TIMEOUT + SLACK, c.get_info())
            .await
            .map_err(|_| timed_out("consumer info"))?
            .map_err(|e| gone("consumer info", e))?;
        Ok(Some(info.num_pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_utf8_is_given_in_base64() {
        assert_eq!(body(b"{\"a\":1}"), ("{\"a\":1}".to_owned(), false));
        assert_eq!(body(&[0xff, 0x00]), ("/wA=".to_owned(), true));
    }

    #[test]
    fn the_debug_output_never_shows_the_servers() {
        let s = NatsSource::new(
            &["nats://user:secret@127.0.0.1:4222".to_owned()],
            "orders",
            "stoke-1",
            false,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("secret") && shown.contains("orders"),
            "{shown}"
        );
        assert!(NatsSource::new(&[], "orders", "d", false, None).is_err());
    }
}
