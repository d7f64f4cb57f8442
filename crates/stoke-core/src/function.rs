//! A function: its configuration, its code, and the state machine that boto3's waiters read.
//!
//! `State` moves `Pending → Active` (or `Failed`) when a function is created, and
//! `LastUpdateStatus` moves `InProgress → Successful` (or `Failed`) on each update, as the code
//! is unpacked and checked. [`ConfigInput`] is the all-optional shape shared by CreateFunction
//! and UpdateFunctionConfiguration: it is checked against the API model first
//! ([`ConfigInput::check`]), then turned into a [`FunctionConfig`] (create) or applied to one
//! (update).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validate::{Violations, patterns};
use crate::{AccountId, FunctionName, LambdaError};

/// Limits Lambda documents and Stoke keeps.
pub mod limits {
    /// A zip uploaded in the request (`Code.ZipFile`).
    pub const MAX_ZIP_BYTES: u64 = 50 * 1024 * 1024;
    /// The code once unpacked.
    pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;
    /// The JSON of the environment variables.
    pub const MAX_ENV_BYTES: usize = 4096;
    /// CreateFunction's request body (the zip travels base64-encoded in JSON); AWS's figure.
    pub const MAX_CREATE_REQUEST_BYTES: usize = 69_905_067;
    pub const MEMORY_MIN: i64 = 128;
    pub const MEMORY_MAX: i64 = 10240;
    pub const TIMEOUT_MIN: i64 = 1;
    pub const TIMEOUT_MAX: i64 = 900;
    pub const EPHEMERAL_MIN: i64 = 512;
    pub const EPHEMERAL_MAX: i64 = 10240;
    /// Lambda's default account concurrency.
    pub const ACCOUNT_CONCURRENCY: u32 = 1000;
    /// Lambda's default total code storage.
    pub const TOTAL_CODE_BYTES: u64 = 80 * 1024 * 1024 * 1024;
}

/// Environment variables Lambda sets itself and refuses from users.
pub const RESERVED_ENV_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The kind of sandbox a runtime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFamily {
    /// A WASI preview 1 module; Handler is the path of the `.wasm` file in the zip.
    Wasm,
    /// An executable `bootstrap` that speaks the Runtime API.
    Provided,
    /// Python 3; Handler is `module.function`.
    Python,
    /// Node.js; Handler is `file.export`.
    Nodejs,
}

/// A runtime name Stoke accepts, kept as the caller spelled it (`python3.12`, `nodejs20.x`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Runtime(String);

impl Runtime {
    /// The names Stoke takes, as shown in errors.
    pub const SUPPORTED: &'static str = "wasm, provided, provided.al2, provided.al2023, \
        python3.N (N >= 8), nodejsN.x (N >= 18)";

    pub fn parse(s: &str) -> Option<Self> {
        let ok = match s {
            "wasm" | "provided" | "provided.al2" | "provided.al2023" => true,
            _ => {
                if let Some(minor) = s.strip_prefix("python3.") {
                    minor.parse::<u32>().is_ok_and(|m| (8..100).contains(&m))
                        && !minor.starts_with('0')
                } else if let Some(major) =
                    s.strip_prefix("nodejs").and_then(|r| r.strip_suffix(".x"))
                {
                    major.parse::<u32>().is_ok_and(|m| (18..1000).contains(&m))
                        && !major.starts_with('0')
                } else {
                    false
                }
            }
        };
        ok.then(|| Self(s.to_owned()))
    }

    pub fn family(&self) -> RuntimeFamily {
        match self.0.as_str() {
            "wasm" => RuntimeFamily::Wasm,
            s if s.starts_with("provided") => RuntimeFamily::Provided,
            s if s.starts_with("python") => RuntimeFamily::Python,
            _ => RuntimeFamily::Nodejs,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Runtime {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unsupported runtime {s:?}"))
    }
}

impl From<Runtime> for String {
    fn from(r: Runtime) -> String {
        r.0
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The instruction set a function is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Architecture {
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub const NAMES: [&'static str; 2] = ["x86_64", "arm64"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "x86_64" => Some(Self::X86_64),
            "arm64" => Some(Self::Arm64),
            _ => None,
        }
    }
}

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

/// What the user configures about a function (everything but the code and the tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub runtime: Runtime,
    pub handler: String,
    /// Kept and shown as given; Stoke has no IAM, but tools send a role and read it back.
    pub role: String,
    pub memory_size: u32,
    pub timeout: u32,
    pub description: String,
    pub environment: BTreeMap<String, String>,
    pub architecture: Architecture,
    /// `/tmp` size in MB.
    pub ephemeral_storage: u32,
}

/// The configuration members of CreateFunction and UpdateFunctionConfiguration, all optional
/// (an update changes only what it names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigInput {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: Option<String>,
    pub memory_size: Option<i64>,
    pub timeout: Option<i64>,
    pub description: Option<String>,
    pub environment: Option<BTreeMap<String, String>>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<i64>,
    /// `Layers`: not supported yet, so refused unless empty (a deploy tool that sends
    /// `Layers: []` is not refused for it).
    pub layers: Option<Vec<String>>,
}

/// The role a function gets when the caller sends none (Stoke has no IAM).
pub const DEFAULT_ROLE: &str = "arn:aws:iam::000000000000:role/stoke-default";

impl ConfigInput {
    /// Checks every member against the API model, collecting violations as AWS does and in
    /// the order of the model's members (Role, Handler, Description, Timeout, MemorySize, …).
    pub fn check(&self, v: &mut Violations) {
        if let Some(r) = &self.role {
            v.pattern("role", r, patterns::ROLE);
        }
        // The model's pattern `[^\s]+` refuses an empty Handler (its `min` is 0, but AWS checks
        // the pattern on the empty string too), whatever the runtime.
        if let Some(h) = &self.handler {
            v.pattern("handler", h, patterns::HANDLER);
            v.length("handler", h, 0, 128);
        }
        if let Some(d) = &self.description {
            v.length("description", d, 0, 256);
        }
        if let Some(t) = self.timeout {
            v.range("timeout", t, limits::TIMEOUT_MIN, limits::TIMEOUT_MAX);
        }
        if let Some(m) = self.memory_size {
            v.range("memorySize", m, limits::MEMORY_MIN, limits::MEMORY_MAX);
        }
        if let Some(env) = &self.environment {
            v.map_keys_pattern("environment.variables", env.keys(), patterns::ENV_KEY);
        }
        if let Some(a) = &self.architectures {
            let shown = format!("[{}]", a.join(", "));
            v.list_length("architectures", &shown, a.len(), 1, 1);
            v.each_one_of("architectures", &shown, a, &Architecture::NAMES);
        }
        if let Some(e) = self.ephemeral_storage {
            v.range(
                "ephemeralStorage.size",
                e,
                limits::EPHEMERAL_MIN,
                limits::EPHEMERAL_MAX,
            );
        }
    }

    /// The checks past the model: a runtime Stoke runs, environment variables Lambda allows,
    /// no layers.
    fn check_values(&self) -> Result<(), LambdaError> {
        if let Some(layers) = self.layers.as_ref().filter(|l| !l.is_empty()) {
            return Err(LambdaError::InvalidParameterValue(format!(
                "Layers are not supported by Stoke yet; deploy the layer's files in the \
                 function's zip and send no Layers (or an empty list). Layers sent: {}",
                layers.join(", ")
            )));
        }
        if let Some(r) = &self.runtime
            && Runtime::parse(r).is_none()
        {
            return Err(LambdaError::InvalidParameterValue(format!(
                "Value {r} at 'runtime' failed to satisfy constraint: Member must satisfy enum \
                 value set: [{}] or be a valid ARN",
                Runtime::SUPPORTED
            )));
        }
        if let Some(env) = &self.environment {
            let reserved: Vec<&str> = env
                .keys()
                .map(String::as_str)
                .filter(|k| RESERVED_ENV_KEYS.contains(k))
                .collect();
            if !reserved.is_empty() {
                return Err(LambdaError::InvalidParameterValue(format!(
                    "Lambda was unable to configure your environment variables because the \
                     environment variables you have provided contains reserved keys that are \
                     currently not supported for modification. Reserved keys used in this \
                     request: {}",
                    reserved.join(", ")
                )));
            }
            // A process environment is NUL-terminated strings: a NUL could never reach the
            // function, and a key with one already failed the model's pattern.
            let with_nul: Vec<&str> = env
                .iter()
                .filter(|(_, value)| value.contains('\0'))
                .map(|(k, _)| k.as_str())
                .collect();
            if !with_nul.is_empty() {
                return Err(LambdaError::InvalidParameterValue(format!(
                    "Lambda was unable to configure your environment variables because the \
                     environment variables you have provided contain a null character (\\0), \
                     which an environment variable cannot hold. Keys whose value has one: {}",
                    with_nul.join(", ")
                )));
            }
            let measured = serde_json::to_string(env).unwrap_or_default();
            if measured.len() > limits::MAX_ENV_BYTES {
                return Err(LambdaError::InvalidParameterValue(format!(
                    "Lambda was unable to configure your environment variables because the \
                     environment variables you have provided exceeded the 4KB limit. String \
                     measured: {measured}"
                )));
            }
        }
        Ok(())
    }

    /// The configuration of a new function: model checks, value checks, then Lambda's defaults.
    pub fn into_new_config(self) -> Result<FunctionConfig, LambdaError> {
        let mut v = Violations::new();
        self.check(&mut v);
        v.into_result()?;
        self.check_values()?;
        let (Some(runtime), Some(handler)) = (&self.runtime, &self.handler) else {
            return Err(LambdaError::InvalidParameterValue(
                "Runtime and Handler are mandatory parameters for functions created with \
                 deployment packages."
                    .into(),
            ));
        };
        let runtime = Runtime::parse(runtime).ok_or_else(|| {
            LambdaError::InvalidParameterValue(format!("Unsupported runtime {runtime}"))
        })?;
        Ok(FunctionConfig {
            runtime,
            handler: handler.clone(),
            role: self.role.unwrap_or_else(|| DEFAULT_ROLE.to_owned()),
            memory_size: clamp_u32(self.memory_size.unwrap_or(128)),
            timeout: clamp_u32(self.timeout.unwrap_or(3)),
            description: self.description.unwrap_or_default(),
            environment: self.environment.unwrap_or_default(),
            architecture: first_architecture(self.architectures.as_deref()),
            ephemeral_storage: clamp_u32(self.ephemeral_storage.unwrap_or(512)),
        })
    }

    /// Applies an update to a configuration, after the same checks; members not named stay.
    pub fn apply_to(self, base: &FunctionConfig) -> Result<FunctionConfig, LambdaError> {
        let mut v = Violations::new();
        self.check(&mut v);
        v.into_result()?;
        self.check_values()?;
        let mut c = base.clone();
        if let Some(r) = self.runtime.as_deref().and_then(Runtime::parse) {
            c.runtime = r;
        }
        if let Some(h) = self.handler {
            c.handler = h;
        }
        if let Some(r) = self.role {
            c.role = r;
        }
        if let Some(m) = self.memory_size {
            c.memory_size = clamp_u32(m);
        }
        if let Some(t) = self.timeout {
            c.timeout = clamp_u32(t);
        }
        if let Some(d) = self.description {
            c.description = d;
        }
        if let Some(e) = self.environment {
            c.environment = e;
        }
        if self.architectures.is_some() {
            c.architecture = first_architecture(self.architectures.as_deref());
        }
        if let Some(e) = self.ephemeral_storage {
            c.ephemeral_storage = clamp_u32(e);
        }
        Ok(c)
    }
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn first_architecture(a: Option<&[String]>) -> Architecture {
    a.and_then(|a| a.first())
        .and_then(|s| Architecture::parse(s))
        .unwrap_or_default()
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

    fn input() -> ConfigInput {
        ConfigInput {
            runtime: Some("python3.12".into()),
            handler: Some("app.handler".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_config_gets_lambdas_defaults() {
        let c = input().into_new_config().unwrap();
        assert_eq!(
            (c.memory_size, c.timeout, c.ephemeral_storage),
            (128, 3, 512)
        );
        assert_eq!(c.architecture, Architecture::X86_64);
        assert_eq!(c.runtime.family(), RuntimeFamily::Python);
    }

    #[test]
    fn out_of_range_members_are_validation_errors() {
        let e = ConfigInput {
            memory_size: Some(127),
            timeout: Some(901),
            architectures: Some(vec!["sparc".into()]),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert_eq!(e.type_name(), "ValidationException");
        assert!(
            e.message().starts_with("3 validation errors detected: "),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_runtime_is_an_invalid_parameter() {
        let e = ConfigInput {
            runtime: Some("cobol1".into()),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert_eq!(e.type_name(), "InvalidParameterValueException");
        for ok in ["wasm", "provided.al2023", "python3.13", "nodejs22.x"] {
            assert!(Runtime::parse(ok).is_some(), "{ok}");
        }
        for bad in ["python2.7", "nodejs8.10", "python3.", "nodejs", "java21"] {
            assert!(Runtime::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn environment_over_4kb_or_with_reserved_keys_is_refused() {
        let big = BTreeMap::from([("BIG".to_owned(), "x".repeat(4100))]);
        let e = ConfigInput {
            environment: Some(big),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert!(e.message().contains("exceeded the 4KB limit"));
        let reserved = BTreeMap::from([("AWS_REGION".to_owned(), "x".to_owned())]);
        let e = ConfigInput {
            environment: Some(reserved),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert!(
            e.message()
                .contains("Reserved keys used in this request: AWS_REGION")
        );
    }

    #[test]
    fn nul_in_an_environment_value_layers_and_an_empty_handler_are_refused() {
        let env = BTreeMap::from([("GOOD".to_owned(), "a\0b".to_owned())]);
        let e = ConfigInput {
            environment: Some(env),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert_eq!(e.type_name(), "InvalidParameterValueException");
        assert!(e.message().contains("null character"), "{e}");
        assert!(e.message().ends_with("has one: GOOD"), "{e}");

        let env = BTreeMap::from([("BAD\0KEY".to_owned(), "v".to_owned())]);
        let e = ConfigInput {
            environment: Some(env),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert_eq!(e.type_name(), "ValidationException");
        assert_eq!(
            e.message(),
            "1 validation error detected: Value at 'environment.variables' failed to satisfy \
             constraint: Map keys must satisfy constraint: [Member must satisfy regular \
             expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
        );

        let e = ConfigInput {
            layers: Some(vec![
                "arn:aws:lambda:us-east-1:123456789012:layer:l:1".into(),
            ]),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert_eq!(e.type_name(), "InvalidParameterValueException");
        assert!(e.message().starts_with("Layers are not supported"), "{e}");
        assert!(
            ConfigInput {
                layers: Some(vec![]),
                ..input()
            }
            .into_new_config()
            .is_ok()
        );

        let e = ConfigInput {
            handler: Some(String::new()),
            ..input()
        }
        .into_new_config()
        .unwrap_err();
        assert_eq!(e.type_name(), "ValidationException");
        assert!(e.message().contains("Value '' at 'handler'"), "{e}");
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let base = input().into_new_config().unwrap();
        let c = ConfigInput {
            timeout: Some(30),
            ..Default::default()
        }
        .apply_to(&base)
        .unwrap();
        assert_eq!(c.timeout, 30);
        assert_eq!(c.handler, base.handler);
    }

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
