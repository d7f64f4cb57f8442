//! The seam between a mapping's poller and a broker: the [`Source`] trait (poll a batch with
//! a bounded wait, acknowledge, leave for redelivery, claim what a dead consumer left, report
//! the backlog), the [`Message`] a source hands over, and [`SourceError`]. Redis Streams is the
//! first implementation ([`super::redis`]), RabbitMQ another ([`super::amqp`]); NATS JetStream
//! implements the same.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

/// One message as a source delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The broker's id of the message (a Redis stream id): the record's `messageId`, and what
    /// [`Source::ack`] takes.
    pub id: String,
    pub body: String,
    /// The message's other fields or headers (`messageAttributes`).
    pub attributes: BTreeMap<String, String>,
    /// How many times the broker has delivered it (1 the first time).
    pub delivery_count: u64,
    /// When the broker took it, in ms since the epoch (when it knows).
    pub sent_ms: Option<i64>,
    /// The broker's own metadata of the message (an AMQP delivery's exchange, routing key,
    /// properties), under the broker's name in the record (empty where
    /// [`super::event::record`] builds it itself, as for Redis).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// What can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The broker could not be reached or the connection broke: reconnect with backoff.
    #[error("cannot reach the broker: {0}")]
    Connection(String),
    /// The broker refused a command.
    #[error("the broker refused: {0}")]
    Refused(String),
}

/// A broker's stream or queue as one mapping consumes it.
#[async_trait]
pub trait Source: Send + Sync {
    /// Up to `max` new messages, waiting at most `wait` for the first (a blocking read: no
    /// busy loop). Empty when nothing came.
    async fn poll(&self, max: usize, wait: Duration) -> Result<Vec<Message>, SourceError>;

    /// The messages are done with: never delivered again.
    async fn ack(&self, ids: &[String]) -> Result<(), SourceError>;

    /// The messages failed: the broker may deliver them again (to [`Source::claim_stale`] or
    /// its own redelivery).
    async fn nack(&self, ids: &[String]) -> Result<(), SourceError>;

    /// The messages failed for good (they went to the on-failure destination, or there is
    /// none): never delivered again. An acknowledgement unless the broker has a word of its
    /// own (JetStream's `+TERM`).
    async fn discard(&self, ids: &[String]) -> Result<(), SourceError> {
        self.ack(ids).await
    }

    /// Takes over up to `max` messages delivered to any consumer of this mapping at least
    /// `idle` ago and never acknowledged (a consumer that died holding them).
    async fn claim_stale(&self, idle: Duration, max: usize) -> Result<Vec<Message>, SourceError>;

    /// Messages not yet delivered to this mapping (its lag), when the broker knows.
    async fn lag(&self) -> Result<Option<u64>, SourceError>;
}
