//! Stoke's engine: what happens to functions between the API and the store.
//!
//! # Layout
//! The modules form a chain; each imports only those before it:
//! `target` ← `prepare` ← `control` ← `route` ← `invoke` (← `async_invoke`), with `engine`
//! wiring them together.
//!
//! - [`target`]: the leaf: what a call or a deploy runs ([`target::Runnable`] and the
//!   sandbox spec it makes), the [`target::Backends`] by runtime family, the
//!   [`target::Warmer`] seam and where code lives on disk ([`target::Layout`]).
//! - [`prepare`]: the [`prepare::Preparer`] seam: what "checking the code" means for a runtime
//!   (the handler file is there; the backend's own check, for wasm a compile), with the
//!   backend's typed refusal turned into the function's `StateReasonCode`.
//! - [`control`]: the control plane of functions, versions, aliases, tags and concurrency;
//!   one cache of records, the code store, and deploys (prepare, warm, settle), whose
//!   `Pending → Active` and `InProgress → Successful` half runs after the API has answered.
//! - [`route`]: which version a call runs (qualifiers, alias weights) and the placement
//!   seam where affinity and capacity policy will plug in.
//! - [`invoke`]: synchronous calls: admit, take a warm sandbox or start one (the
//!   [`invoke::Sandboxes`], which also warm deploys), run, record.
//! - [`async_invoke`]: asynchronous invocation: the group-committed queue writer, the
//!   dispatcher leasing events to workers, the pure [`async_invoke::decide::decide`] of
//!   retries, event age, destinations, dead letters and the hop limit, and delivery to
//!   destination functions.
//! - [`event_config`]: event-invoke configurations: their rules (validation, Put/Update,
//!   destinations, the one qualifier check of async events) and the stored ones (CRUD, the
//!   workers' cached read).
//! - [`dead_letters`]: events that failed for good: list, show, redrive.
//! - [`engine`]: [`Engine::start`] and [`Engine::shutdown`]: the object graph of a server.
//! - [`accounts`], [`logs`]: the access keys SigV4 checks, the stored log lines.
//! - [`credentials`]: the short-lived, stateless credentials each function's sandboxes get
//!   (`ASIA…` key, secret, session token), minted and verified with one shared key.
//! - [`pool`]: the warm pool per function version, admission (concurrency limits, 429s) and
//!   the [`pool::KeepAlivePolicy`] seam that decides how long idle sandboxes stay.
//! - [`record`]: Lambda's START/END/REPORT lines, invocation records, the batched log writer.
//! - [`code`]: unpacking untrusted zips safely (zip-slip, symlinks, bombs).
//! - [`metrics`]: the Prometheus metrics.
//! - [`slots`]: concurrency limits across the nodes sharing a store (slots in the store,
//!   renewed by the node that holds them).
//! - [`cluster`]: [`cluster::Membership`]: this node and the living nodes of its cluster (the
//!   seam between the node registry and forwarding).
//! - [`nodes`]: [`nodes::Nodes`], this node's registration and heartbeat loop in the store's
//!   node registry, which keeps the membership to the living nodes.
//! - [`error`]: [`ControlError`] and the one mapping of engine failures to Lambda's error
//!   types.
//!
//! - [`sources`]: event source mappings (their API operations and rules) and the pollers
//!   that run them: the [`sources::Source`] trait, Redis Streams, one node per mapping.

pub mod accounts;
pub mod async_invoke;
pub mod cluster;
pub mod code;
pub mod control;
pub mod credentials;
pub mod dead_letters;
pub mod engine;
pub mod error;
pub mod event_config;
pub mod invoke;
pub mod logs;
pub mod metrics;
pub mod nodes;
pub mod pool;
pub mod prepare;
pub mod record;
pub mod route;
pub mod slots;
pub mod sources;
pub mod target;

pub use async_invoke::{AsyncConfig, AsyncInvoker, AsyncTasks, EventRequest};
pub use control::{ControlPlane, CreateFunction};
pub use engine::{Engine, EngineConfig, StartError};
pub use error::ControlError;
pub use invoke::{InvokeRequest, InvokeResponse, Invoker, InvokerConfig};
pub use target::{Backends, Layout, Runnable};
