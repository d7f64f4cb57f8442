//! The shapes of the API that the client reads and sends: the typed parts of Lambda's answers
//! (a function's configuration, an alias, list pages, FilterLogEvents's events) and Invoke's
//! request and answer. Fields the CLI does not look at are ignored; answers it only prints are
//! kept as `serde_json::Value` by the callers.

use bytes::Bytes;
use serde::Deserialize;

/// The fields of a FunctionConfiguration the CLI reads; the rest is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    #[serde(default)]
    pub function_arn: String,
    /// `$LATEST` or a version number.
    pub version: Option<String>,
    pub description: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_size: Option<u64>,
    pub timeout: Option<u64>,
    pub code_sha256: Option<String>,
    pub last_modified: Option<String>,
    pub state: Option<String>,
    pub state_reason: Option<String>,
    pub state_reason_code: Option<String>,
    pub last_update_status: Option<String>,
    pub last_update_status_reason: Option<String>,
    pub last_update_status_reason_code: Option<String>,
}

/// One page of ListFunctions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsPage {
    #[serde(default)]
    pub functions: Vec<FunctionConfiguration>,
    pub next_marker: Option<String>,
}

/// One page of ListVersionsByFunction: `$LATEST` first, then the versions in order.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersionsPage {
    #[serde(default)]
    pub versions: Vec<FunctionConfiguration>,
    pub next_marker: Option<String>,
}

/// An alias (the answer of CreateAlias, GetAlias, UpdateAlias, and the items of ListAliases).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AliasConfiguration {
    #[serde(default)]
    pub alias_arn: String,
    pub name: String,
    pub function_version: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub routing_config: Option<RoutingConfig>,
    #[serde(default)]
    pub revision_id: Option<String>,
}

impl AliasConfiguration {
    /// The additional versions and their weights (empty when the alias is not split).
    pub fn weights(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.routing_config
            .iter()
            .flat_map(|r| r.additional_version_weights.iter())
    }
}

/// An alias's `RoutingConfig`: the second version and the share of calls it gets.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfig {
    #[serde(default)]
    pub additional_version_weights: std::collections::BTreeMap<String, f64>,
}

/// One page of ListAliases.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesPage {
    #[serde(default)]
    pub aliases: Vec<AliasConfiguration>,
    pub next_marker: Option<String>,
}

/// GetFunction's answer: the configuration (and the code location, tags, … which the CLI ignores).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionOutput {
    pub configuration: FunctionConfiguration,
}

/// FilterLogEvents's answer: one page of events, and where to continue.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsPage {
    #[serde(default)]
    pub events: Vec<LogEvent>,
    /// Set when there may be more: the id of the last event, to pass back as `nextToken`.
    pub next_token: Option<String>,
}

/// One log line of FilterLogEvents (the fields the CLI reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub message: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// An increasing number (as a string); a follower passes the last one as `nextToken`.
    pub event_id: String,
}

/// One call of Invoke.
#[derive(Debug, Clone)]
pub struct InvokeRequest<'a> {
    /// Function name or ARN.
    pub name: &'a str,
    /// `Qualifier` (a version or alias).
    pub qualifier: Option<&'a str>,
    /// `RequestResponse` or `DryRun`.
    pub invocation_type: &'a str,
    /// Ask for the log tail (`X-Amz-Log-Type: Tail`).
    pub log_tail: bool,
    /// The event; `None` sends no body (the server then passes `{}`).
    pub payload: Option<Vec<u8>>,
}

/// Invoke's answer.
#[derive(Debug, Clone)]
pub struct InvokeOutput {
    /// 200 for a call that ran (even when the function failed), 204 for a dry run.
    pub status: u16,
    /// The function's output, or its error JSON.
    pub payload: Bytes,
    /// `X-Amz-Function-Error` (`Unhandled`) when the function failed.
    pub function_error: Option<String>,
    /// `X-Amz-Log-Result`: base64 of the last 4 KB of the call's log.
    pub log_result: Option<String>,
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_configuration_reads_lambdas_shape() {
        let alias: AliasConfiguration = serde_json::from_str(
            r#"{"AliasArn":"arn:aws:lambda:us-east-1:1:function:f:live","Name":"live",
                "FunctionVersion":"1","Description":"","RevisionId":"r",
                "RoutingConfig":{"AdditionalVersionWeights":{"2":0.1}}}"#,
        )
        .expect("decodes");
        assert_eq!(alias.function_version, "1");
        assert_eq!(
            alias.weights().collect::<Vec<_>>(),
            [(&"2".to_owned(), &0.1)]
        );
        let bare: AliasConfiguration =
            serde_json::from_str(r#"{"Name":"a","FunctionVersion":"$LATEST"}"#).expect("decodes");
        assert_eq!(bare.weights().count(), 0);
    }
}
