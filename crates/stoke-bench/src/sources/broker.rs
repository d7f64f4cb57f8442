//! The seam between the event source bench and a broker ([`Broker`]): the mapping's source
//! members, publish one, fill a backlog, consume with the broker's own client (the floor),
//! and count what a group finished. Each broker implements it in a file of its own.

use async_trait::async_trait;
use serde_json::Value;

/// A broker the bench runs and speaks to.
#[async_trait]
pub trait Broker: Send {
    /// Its name in the table.
    fn name(&self) -> &'static str;
    /// The mapping's members that name `topic` on this broker (`SelfManagedEventSource`
    /// and `Topics` or `Queues`).
    fn source(&self, topic: &str) -> Value;
    /// Publishes one message and waits for the broker's answer.
    async fn publish(&mut self, topic: &str, body: &str) -> anyhow::Result<()>;
    /// Publishes `n` copies of `body` as fast as the broker takes them.
    async fn fill(&mut self, topic: &str, n: usize, body: &str) -> anyhow::Result<()>;
    /// Consumes `n` messages of `topic` (already there) with the broker's own client in
    /// batches of `batch`, acknowledging each batch.
    async fn consume(&mut self, topic: &str, n: usize, batch: usize) -> anyhow::Result<()>;
    /// How many messages of `topic` the consumer group (or durable consumer, or queue)
    /// `group` has had acknowledged.
    async fn done(&mut self, topic: &str, group: &str) -> anyhow::Result<u64>;
    /// Stops the broker.
    async fn stop(self: Box<Self>);
}
