//! What the user configures about a function: [`FunctionConfig`] as stored, and
//! [`ConfigInput`], the all-optional members of CreateFunction and UpdateFunctionConfiguration,
//! with the API model's checks and Stoke's own (runtimes, environment variables, layers).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits;
use super::runtime::{Architecture, Runtime};
use crate::LambdaError;
use crate::validate::{Violations, patterns};

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
    /// Whether the caller gave `Environment` (even with no variables): Lambda then shows it,
    /// `{"Variables": {}}` included, and shows none for a function never given one.
    #[serde(default)]
    pub environment_given: bool,
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
            environment_given: self.environment.is_some(),
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
            c.environment_given = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::function::RuntimeFamily;

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
}
