//! Stoke's engine: what happens to functions between the API and the store.
//!
//! # Layout
//! - [`control`]: the control plane of functions: create, update code and configuration,
//!   delete, tags, listing; the `Pending → Active` and `InProgress → Successful` state machine,
//!   whose second half runs in the background after the API has answered.
//! - [`prepare`]: the [`prepare::Preparer`] seam: what "checking the code" means for a runtime
//!   (today: the handler file is there; the wasm backend adds compiling).
//! - [`code`]: unpacking untrusted zips safely (zip-slip, symlinks, bombs).
//! - [`error`]: [`ControlError`] and its mapping to the Lambda error types.
//!
//! The warm pool, admission and the async workers join this crate with the sandboxes.

pub mod code;
pub mod control;
pub mod error;
pub mod prepare;

pub use control::{ControlPlane, CreateFunction, Layout};
pub use error::ControlError;
