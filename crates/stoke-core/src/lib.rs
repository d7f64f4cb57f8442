//! Stoke's domain: the types every other crate speaks, with no I/O.
//!
//! # Layout
//! - [`error`]: [`LambdaError`], the error types of the Lambda API (`ResourceNotFoundException`,
//!   `ValidationException`, …) with their HTTP status; every crate's own errors map into it at
//!   the API boundary.
//! - [`validate`]: the constraint checks of the Lambda API model, which collect AWS's
//!   "N validation errors detected: …" message.
//! - [`model`]: the patterns and limits of the Lambda API model and the member each error
//!   type carries its message in, generated from boto3's model by `scripts/gen_lambda_model.py`.
//! - [`ids`]: account ids, function names and the ways a caller may name a function (name,
//!   partial ARN, full ARN, with or without a qualifier).
//! - [`function`]: a function's configuration, its state machine (`State`, `LastUpdateStatus`)
//!   and the runtimes Stoke accepts.
//! - [`alias`]: aliases and their weighted routing, with Lambda's rules for them.
//! - [`invocation`]: how a call ended ([`Outcome`]: the result, or the function's own
//!   [`FunctionError`]), as the sandboxes report it and the API answers it.
//! - [`policy`]: functions' resource-based policies: statements, principals, the document
//!   GetPolicy answers, AddPermission's checks, and the evaluation of a request.
//! - [`schedule`]: EventBridge Scheduler's expressions (`rate`, `cron`, `at`) and their next
//!   ticks in a time zone, daylight saving done as EventBridge does.
//! - [`filter`]: Lambda's event filtering (`FilterCriteria`): the filter-pattern language,
//!   parsed and matched against a record's JSON.
//! - [`timefmt`]: Lambda's timestamp format (`2019-10-23T18:22:30.293+0000`).

pub mod alias;
pub mod error;
pub mod filter;
pub mod function;
pub mod ids;
pub mod invocation;
pub mod model;
pub mod policy;
pub mod schedule;
pub mod timefmt;
pub mod validate;

pub use alias::{Alias, AliasInput, AliasTarget};
pub use error::LambdaError;
pub use function::{
    Architecture, CodeInfo, ConfigInput, Deployed, Function, FunctionConfig, LATEST,
    LastUpdateStatus, Reason, Runtime, RuntimeFamily, State,
};
pub use ids::{AccountId, FunctionName, FunctionRef};
pub use invocation::{FunctionError, Outcome};
