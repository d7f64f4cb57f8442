//! A client of the HTTP API that `stoke serve` speaks: Lambda's REST API (and the CloudWatch
//! Logs API's `FilterLogEvents`, which Stoke serves on `POST /`), every request signed with AWS
//! Signature V4, the error JSON turned into an [`ApiError`]; and the AWS credential chain that
//! finds the key to sign with. The `stoke` command line, `stoke bench` and the Rust tests use it.
//!
//! # Layout
//! - [`credentials`]: the AWS credential chain, ending at the file `stoke serve` writes.
//! - [`client`]: [`LambdaClient`], the endpoint and key, and the one path a call takes (sign,
//!   send, read the error).
//! - [`functions`], [`aliases`], [`invoke`]: the operations, one method each;
//!   [`accounts`]: Stoke's admin API (accounts, keys, limits); [`nodes`]: the cluster's
//!   nodes.
//! - [`sign`]: SigV4 signing, public for load generators that build their own requests.
//! - [`paths`]: the operations' paths and queries, percent-encoded.
//! - [`model`]: the typed parts of the API's shapes.
//! - [`error`]: [`ApiError`] (the server's error answer) and [`ClientError`].
//! - [`wait`]: waiting for a function to become Active, as boto3's waiters do.
//! - [`progress`]: the upload bar and the spinner on stderr (hidden off a terminal).

pub mod accounts;
pub mod aliases;
pub mod client;
pub mod credentials;
pub mod error;
pub mod functions;
pub mod invoke;
pub mod model;
pub mod nodes;
pub mod paths;
pub mod progress;
pub mod sign;
pub mod wait;

pub use client::LambdaClient;
pub use credentials::Credentials;
pub use error::{ApiError, ClientError};
pub use functions::DEFAULT_ROLE;
pub use model::*;
pub use paths::invoke_path;
pub use sign::{SigningScope, sign};
pub use wait::{Settled, WaitError, wait_ready, wait_until};
