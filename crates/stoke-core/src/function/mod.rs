//! A function: its configuration, its code, and the state machine that boto3's waiters read.
//!
//! `State` moves `Pending → Active` (or `Failed`) when a function is created, and
//! `LastUpdateStatus` moves `InProgress → Successful` (or `Failed`) on each update, as the code
//! is unpacked and checked. The parts:
//! - [`config`]: [`ConfigInput`], the all-optional shape shared by CreateFunction and
//!   UpdateFunctionConfiguration, checked against the API model first ([`ConfigInput::check`]),
//!   then turned into a [`FunctionConfig`] (create) or applied to one (update);
//! - [`runtime`]: the runtimes and architectures Stoke accepts;
//! - [`limits`]: the limits Lambda documents and Stoke keeps;
//! - here: the stored [`Function`], its code ([`CodeInfo`]) and its states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{AccountId, FunctionName, LambdaError};

pub mod config;
pub mod limits;
pub mod runtime;

pub use config::{ConfigInput, DEFAULT_ROLE, FunctionConfig, RESERVED_ENV_KEYS};
pub use runtime::{Architecture, Runtime, RuntimeFamily};

/// A function's `State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Pending,
    Active,
    Inactive,
    Failed,
}

/// A function's `LastUpdateStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastUpdateStatus {
    InProgress,
    Successful,
    Failed,
}

/// The code a function runs: a zip, stored once by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    /// Lowercase hex of the zip's SHA-256: the blob's address in the store.
    pub sha256_hex: String,
    /// Size of the zip in bytes (`CodeSize`).
    pub size: u64,
    /// Size once unpacked, counted while unpacking.
    pub unzipped_size: u64,
}

impl CodeInfo {
    /// `CodeSha256` as Lambda reports it: the base64 of the digest.
    pub fn sha256_base64(&self) -> String {
        use base64::Engine as _;
        let bytes: Vec<u8> = (0..self.sha256_hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(self.sha256_hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// Why a function is in its state, in Lambda's words (`StateReason`, `StateReasonCode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub message: String,
    pub code: String,
}

/// A function as stored: `$LATEST` of one name in one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    pub account: AccountId,
    pub name: FunctionName,
    pub config: FunctionConfig,
    pub code: CodeInfo,
    pub state: State,
    pub state_reason: Option<Reason>,
    /// `None` until the first update finishes (CreateFunction's answer has none, as Lambda's).
    pub last_update_status: Option<LastUpdateStatus>,
    pub last_update_reason: Option<Reason>,
    /// Changes on every change of the record, including state changes.
    pub revision_id: String,
    /// Lambda's format; changes when the user changes the function, not on state changes.
    pub last_modified: String,
    pub tags: BTreeMap<String, String>,
    /// Counts creates and updates; the result of preparing code applies only to the
    /// generation it was started for, so a late result never overwrites a newer update.
    pub generation: u64,
    /// `$LATEST`, or the number of a published version (whose record never changes again).
    #[serde(default = "latest")]
    pub version: String,
    /// What calls of `$LATEST` run: the last code and configuration that were prepared and
    /// warmed successfully. While an update is in progress (or after one failed) this is the
    /// previous generation, so calls never wait for a deploy and never fail because of one.
    /// `None` until the first preparation succeeds; always `None` on a version.
    #[serde(default)]
    pub serving: Option<Deployed>,
    /// PutFunctionConcurrency's `ReservedConcurrentExecutions`: at most this many calls at
    /// once (0 throttles every call). `None`: the server's per-function limit.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// `RuntimeVersionConfig.RuntimeVersionArn`: the version of a managed runtime
    /// (`python3.x`, `nodejs*`) that serves the function, set when it is created or updated;
    /// `None` for `provided*` and wasm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version_arn: Option<String>,
}

/// A generation of a function's code and configuration that is ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub generation: u64,
    pub config: FunctionConfig,
    pub code: CodeInfo,
}

/// `$LATEST`: the name of the unpublished version.
pub const LATEST: &str = "$LATEST";

fn latest() -> String {
    LATEST.to_owned()
}

impl Function {
    /// The unqualified ARN.
    pub fn arn(&self, region: &str) -> String {
        crate::ids::function_arn(region, &self.account, self.name.as_str())
    }

    /// The ARN qualified with the version (`…:function:f:3`; `$LATEST` is unqualified, as
    /// Lambda answers it for `$LATEST`).
    pub fn version_arn(&self, region: &str) -> String {
        if self.is_latest() {
            self.arn(region)
        } else {
            format!("{}:{}", self.arn(region), self.version)
        }
    }

    pub fn is_latest(&self) -> bool {
        self.version == LATEST
    }

    /// The version number, for a published version.
    pub fn version_number(&self) -> Option<u64> {
        self.version.parse().ok()
    }

    /// What this record's code and configuration are, as a [`Deployed`].
    pub fn as_deployed(&self) -> Deployed {
        Deployed {
            generation: self.generation,
            config: self.config.clone(),
            code: self.code.clone(),
        }
    }

    /// Whether an update may start: Lambda refuses one while another is in progress.
    pub fn check_not_updating(&self, region: &str) -> Result<(), LambdaError> {
        if self.state == State::Pending {
            return Err(LambdaError::ResourceConflict(
                "The operation cannot be performed at this time. The function is currently in \
                 the following state: Pending"
                    .into(),
            ));
        }
        if self.last_update_status == Some(LastUpdateStatus::InProgress) {
            return Err(LambdaError::ResourceConflict(format!(
                "The operation cannot be performed at this time. An update is in progress for \
                 resource: {}",
                self.arn(region)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_sha256_is_base64_of_the_digest() {
        let info = CodeInfo {
            sha256_hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            size: 0,
            unzipped_size: 0,
        };
        assert_eq!(
            info.sha256_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
