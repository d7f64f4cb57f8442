//! Event source mappings (Lambda's `CreateEventSourceMapping` and its siblings) and the
//! pollers that turn a broker's messages into calls of a function.
//!
//! - [`rules`]: the request, its validation in Lambda's words, defaults, Update's merge (pure);
//!   [`access`]: its `BASIC_AUTH` credentials (sealed in the store, never shown) and endpoints'
//!   passwords hidden.
//! - [`service`]: [`Mappings`], the API's operations over the store.
//! - [`source`]: the [`Source`] trait, the seam to a broker (poll with a bounded wait, ack,
//!   nack, claim what a dead consumer left, lag); [`redis`]: Redis Streams on it; [`amqp`]:
//!   RabbitMQ (AMQP 0-9-1) queues on it; [`nats`]: NATS JetStream (a durable pull consumer).
//! - [`event`]: the SQS-shaped event of a batch, the view `FilterCriteria` matches, and
//!   `ReportBatchItemFailures`' rules.
//! - [`deliver`]: one batch through the function: retries, bisection, record age, the
//!   on-failure destination, acknowledgements after success.
//! - [`poller`]: one mapping's loop: reads, filters, batches in flight following the backlog.
//! - [`supervisor`]: this node's pollers, one per mapping it leases from the store.
//! - [`metrics`]: lag, in-flight batches, batch sizes, oldest record age in `/metrics`.

pub mod access;
#[cfg(test)]
mod access_tests;
pub mod amqp;
pub mod deliver;
pub mod event;
pub mod metrics;
pub mod nats;
pub mod poller;
pub mod redis;
pub mod rules;
pub mod service;
pub mod source;
pub mod supervisor;

pub use service::Mappings;
pub use source::{Message, Source, SourceError};
pub use supervisor::{SourcesConfig, Supervisor};
