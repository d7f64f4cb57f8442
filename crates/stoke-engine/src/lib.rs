//! Stoke's engine: what happens to functions between the API and the store.
//!
//! # Layout
//! - [`control`]: the control plane of functions: create, update code and configuration,
//!   delete, tags, listing; the `Pending → Active` and `InProgress → Successful` state machine,
//!   whose second half runs in the background after the API has answered.
//! - [`prepare`]: the [`prepare::Preparer`] seam: what "checking the code" means for a runtime
//!   (today: the handler file is there; the wasm backend adds compiling).
//! - [`code`]: unpacking untrusted zips safely (zip-slip, symlinks, bombs).
//! - [`invoke`]: synchronous calls: resolve, admit, place on a warm or new sandbox, run, record.
//! - [`pool`]: the warm pool per function version, admission (concurrency limits, 429s) and
//!   the [`pool::KeepAlivePolicy`] seam that decides how long idle sandboxes stay.
//! - [`record`]: Lambda's START/END/REPORT lines, invocation records, the batched log writer.
//! - [`metrics`]: the Prometheus metrics.
//! - [`error`]: [`ControlError`] and its mapping to the Lambda error types.
//!
//! - [`async_invoke`]: asynchronous invocation: the group-committed queue writer, the
//!   dispatcher leasing events to workers, the pure [`async_invoke::decide::decide`] of
//!   retries, event age, destinations, dead letters and the hop limit, and delivery to
//!   destination functions.
//! - [`event_config`]: event-invoke configurations: their rules (validation, Put/Update,
//!   destinations, the one qualifier check of async events) and the stored ones (CRUD, the
//!   workers' cached read).
//! - [`dead_letters`]: events that failed for good: list, show, redrive.
//!
//! Event sources join this crate later.

pub mod async_invoke;
pub mod code;
pub mod control;
pub mod dead_letters;
pub mod error;
pub mod event_config;
pub mod invoke;
pub mod metrics;
pub mod pool;
pub mod prepare;
pub mod record;

pub use async_invoke::{AsyncConfig, AsyncInvoker, AsyncTasks, EventRequest};
pub use control::{ControlPlane, CreateFunction, Layout};
pub use error::ControlError;
pub use invoke::{Backends, InvokeRequest, InvokeResponse, Invoker, InvokerConfig};
