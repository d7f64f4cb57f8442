//! Lambda's JSON shapes: requests as they arrive, answers as boto3 reads them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use stoke_core::{Alias, ConfigInput, Function, LastUpdateStatus, State};

/// `Environment` in requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentIn {
    pub variables: Option<BTreeMap<String, String>>,
}

/// `EphemeralStorage` in requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorageIn {
    pub size: Option<i64>,
}

/// `Code` of CreateFunction.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeIn {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
}

/// The body of CreateFunction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionIn {
    pub function_name: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub code: Option<CodeIn>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub publish: Option<bool>,
    pub environment: Option<EnvironmentIn>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<EphemeralStorageIn>,
    pub tags: Option<BTreeMap<String, String>>,
    pub package_type: Option<String>,
    pub layers: Option<Vec<String>>,
}

/// The body of UpdateFunctionConfiguration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfigurationIn {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<EnvironmentIn>,
    pub ephemeral_storage: Option<EphemeralStorageIn>,
    pub revision_id: Option<String>,
    pub layers: Option<Vec<String>>,
}

/// The body of UpdateFunctionCode.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeIn {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// The body of PublishVersion.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishVersionIn {
    pub code_sha256: Option<String>,
    pub description: Option<String>,
    pub revision_id: Option<String>,
}

/// `RoutingConfig` of an alias.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfigIn {
    pub additional_version_weights: Option<BTreeMap<String, f64>>,
}

/// The body of CreateAlias and UpdateAlias.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasIn {
    pub name: Option<String>,
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<RoutingConfigIn>,
    pub revision_id: Option<String>,
}

impl AliasIn {
    /// The members as the control plane takes them; `name` comes from the body (create) or
    /// the path (update).
    pub fn input(self, name: String) -> stoke_core::AliasInput {
        stoke_core::AliasInput {
            name,
            function_version: self.function_version,
            description: self.description,
            additional_weights: self
                .routing_config
                .map(|r| r.additional_version_weights.unwrap_or_default()),
        }
    }
}

/// `AliasConfiguration`.
pub fn alias(a: &Alias, region: &str) -> Value {
    let mut v = json!({
        "AliasArn": a.arn(region),
        "Name": a.name,
        "FunctionVersion": a.target.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if !a.target.additional_weights.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert(
            "RoutingConfig".into(),
            json!({ "AdditionalVersionWeights": a.target.additional_weights }),
        );
    }
    v
}

/// The body of TagResource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceIn {
    pub tags: Option<BTreeMap<String, String>>,
}

impl UpdateConfigurationIn {
    pub fn config_input(&self) -> ConfigInput {
        ConfigInput {
            runtime: self.runtime.clone(),
            handler: self.handler.clone(),
            role: self.role.clone(),
            memory_size: self.memory_size,
            timeout: self.timeout,
            description: self.description.clone(),
            environment: self
                .environment
                .as_ref()
                .map(|e| e.variables.clone().unwrap_or_default()),
            architectures: None,
            ephemeral_storage: self.ephemeral_storage.as_ref().and_then(|e| e.size),
            layers: self.layers.clone(),
        }
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Pending => "Pending",
        State::Active => "Active",
        State::Inactive => "Inactive",
        State::Failed => "Failed",
    }
}

fn update_status_name(s: LastUpdateStatus) -> &'static str {
    match s {
        LastUpdateStatus::InProgress => "InProgress",
        LastUpdateStatus::Successful => "Successful",
        LastUpdateStatus::Failed => "Failed",
    }
}

/// `FunctionConfiguration`, as GetFunctionConfiguration, CreateFunction and the updates
/// answer it.
pub fn configuration(f: &Function, region: &str) -> Value {
    let c = &f.config;
    let mut v = json!({
        "FunctionName": f.name.as_str(),
        "FunctionArn": f.version_arn(region),
        "Runtime": c.runtime.as_str(),
        "Role": c.role,
        "Handler": c.handler,
        "CodeSize": f.code.size,
        "Description": c.description,
        "Timeout": c.timeout,
        "MemorySize": c.memory_size,
        "LastModified": f.last_modified,
        "CodeSha256": f.code.sha256_base64(),
        "Version": f.version,
        "TracingConfig": { "Mode": "PassThrough" },
        "RevisionId": f.revision_id,
        "State": state_name(f.state),
        "PackageType": "Zip",
        "Architectures": [c.architecture.as_str()],
        "EphemeralStorage": { "Size": c.ephemeral_storage },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": {
            "LogFormat": "Text",
            "LogGroup": format!("/aws/lambda/{}", f.name),
        },
    });
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    // As given: `{"Variables": {}}` for an empty map, nothing for a function never given one.
    if c.environment_given || !c.environment.is_empty() {
        obj.insert("Environment".into(), json!({ "Variables": c.environment }));
    }
    if let Some(arn) = &f.runtime_version_arn {
        obj.insert(
            "RuntimeVersionConfig".into(),
            json!({ "RuntimeVersionArn": arn }),
        );
    }
    if let Some(r) = &f.state_reason {
        obj.insert("StateReason".into(), json!(r.message));
        obj.insert("StateReasonCode".into(), json!(r.code));
    }
    if let Some(s) = f.last_update_status {
        obj.insert("LastUpdateStatus".into(), json!(update_status_name(s)));
    }
    if let Some(r) = &f.last_update_reason {
        obj.insert("LastUpdateStatusReason".into(), json!(r.message));
        obj.insert("LastUpdateStatusReasonCode".into(), json!(r.code));
    }
    v
}

/// The members of `FunctionConfiguration` that ListFunctions and ListVersionsByFunction leave
/// out of their items ("a subset of the FunctionConfiguration fields": GetFunction has them).
pub const NOT_IN_LIST_ITEMS: [&str; 7] = [
    "State",
    "StateReason",
    "StateReasonCode",
    "LastUpdateStatus",
    "LastUpdateStatusReason",
    "LastUpdateStatusReasonCode",
    "RuntimeVersionConfig",
];

/// A configuration as a list item: without [`NOT_IN_LIST_ITEMS`].
pub fn list_item(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in NOT_IN_LIST_ITEMS {
            o.remove(k);
        }
    }
    v
}

/// The most items ListFunctions and ListVersionsByFunction answer in one page, whatever
/// `MaxItems` asks ("returns a maximum of 50 items in each response, even if you set the
/// number higher").
pub const MAX_LIST_PAGE: i64 = 50;

/// `MaxItems` of ListFunctions and ListVersionsByFunction: [`MAX_LIST_PAGE`] at most, for a
/// value the model allows (a value it does not is left for the model's check to refuse).
pub fn capped_max_items(
    q: &std::collections::HashMap<String, String>,
) -> Result<Option<i64>, stoke_core::LambdaError> {
    Ok(max_items(q)?.map(|m| {
        if (MAX_LIST_PAGE..=10_000).contains(&m) {
            MAX_LIST_PAGE
        } else {
            m
        }
    }))
}

/// `MaxItems` from a query string, as an integer (Lambda's wording when it is not one).
pub fn max_items(
    q: &std::collections::HashMap<String, String>,
) -> Result<Option<i64>, stoke_core::LambdaError> {
    match q.get("MaxItems") {
        None => Ok(None),
        Some(s) => Ok(Some(s.parse::<i64>().map_err(|_| {
            stoke_core::LambdaError::Validation(format!(
                "1 validation error detected: Value '{s}' at 'maxItems' failed to satisfy \
                 constraint: Member must be an integer"
            ))
        })?)),
    }
}
