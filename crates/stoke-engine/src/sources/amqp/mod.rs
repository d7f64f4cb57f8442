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
//!
//! [`endpoint`]: the `AMQP_URL` parsed (and shown without its password); `delivery`: a
//! delivery as a [`Message`].

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
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return};
use async_trait::async_trait;
use stoke_store::mappings::Mapping;
use tokio::sync::{Mutex, mpsc};

use super::rules::DEFAULT_MAX_CONCURRENCY;
use super::source::{Message, Source, SourceError};
use delivery::{message, parse_id};
use endpoint::SHORT_MAX;
pub use endpoint::{Endpoint, parse_endpoint, redact};

mod delivery;
pub mod endpoint;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The heartbeat timeout asked of the broker, in seconds (a heartbeat every half of it).
const HEARTBEAT_SECS: u16 = 10;
/// The longest a poll waits for the first delivery; a poller's wait is cut to it.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

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
    /// group and the node, its prefetch every batch the mapping may have in flight; the
    /// mapping's `BASIC_AUTH` credentials, when it has them, over those in the URLs.
    pub fn for_mapping(m: &Mapping, owner: &str) -> Result<Self, SourceError> {
        let mut source = Self::new(
            &m.endpoints,
            &m.topic,
            &format!("{}.{owner}", m.consumer_group),
            prefetch(m.batch_size, m.maximum_concurrency),
        )?;
        if let Some(auth) = &m.basic_auth {
            for e in &mut source.endpoints {
                e.user.clone_from(&auth.username);
                e.password = auth.password.to_string();
            }
        }
        Ok(source)
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
        self.ready_count(&channel).await?;
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

    /// The queue's count of ready messages (a passive `queue.declare` on `channel`: a queue
    /// that is not there closes the channel).
    async fn ready_count(&self, channel: &Channel) -> Result<Option<u32>, SourceError> {
        let passive = QueueDeclareArguments::new(&self.queue)
            .passive(true)
            .finish();
        let reply = bounded(
            CALL_TIMEOUT,
            "queue.declare (passive)",
            channel.queue_declare(passive),
        )
        .await?;
        Ok(reply.map(|(_, ready, _)| ready))
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
        if !live.open() {
            // Its channel is gone, and with it what it delivered (back in the queue).
            self.forget(live.generation).await;
            return Ok(());
        }
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
        match self.ready_count(&channel).await {
            Ok(ready) => Ok(ready.map(u64::from)),
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
    use serde_json::json;

    use super::*;

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
    fn an_amqp_mapping_is_created_with_its_password_out_of_its_name() {
        let input: super::super::rules::MappingInput = serde_json::from_value(json!({
            "SelfManagedEventSource": {"Endpoints": {"AMQP_URL": ["amqp://u:pw@h:5672/v"]}},
            "Queues": ["orders"],
        }))
        .unwrap();
        let account = stoke_core::AccountId::try_from("123456789012".to_owned()).unwrap();
        let m = super::super::rules::create(&input, &account, "f", None, 0.0).unwrap();
        assert_eq!(
            (m.endpoint_kind.as_str(), m.topic.as_str()),
            ("AMQP_URL", "orders")
        );
        assert_eq!(m.source, "amqp://u:****@h:5672/v/orders");
        let s = AmqpSource::for_mapping(&m, "node-1").unwrap();
        assert_eq!(s.consumer_tag, format!("stoke-{}.node-1", m.uuid));
        assert_eq!(s.prefetch, prefetch(100, None));
    }

    #[test]
    fn a_sources_debug_shows_no_password() {
        let s = AmqpSource::new(&["amqp://user:hunter2@h/v".into()], "q", "t", 10).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn ids_name_the_connection_and_the_tag() {
        assert_eq!(parse_id("3.17"), Some((3, 17)));
        assert_eq!(parse_id("17"), None);
        assert_eq!(parse_id("a.b"), None);
        assert_eq!(short(&"é".repeat(200)).len(), 254);
    }
}
