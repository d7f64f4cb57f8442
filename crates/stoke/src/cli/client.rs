//! A small client for the Lambda REST API that `stoke serve` speaks (and for the CloudWatch Logs
//! API's `FilterLogEvents`, which it serves on `POST /`): one method per operation the CLI uses,
//! every request signed with AWS Signature V4 (service `lambda` or `logs`, header form, the
//! body's SHA-256 in the canonical request), and the error JSON (Lambda's `{"Type": …,
//! "message": …}` or JSON 1.1's `{"__type": …}`, the type in `x-amzn-ErrorType`) turned into an
//! [`ApiError`].
//!
//! Responses are kept as `serde_json::Value` where the CLI only prints them, and read through the
//! small typed [`FunctionConfiguration`] where it looks at fields.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream;
use indicatif::ProgressBar;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::credentials::Credentials;

/// The service name in the credential scope of the Lambda API.
const SIGNING_SERVICE: &str = "lambda";
/// The service name in the credential scope of the CloudWatch Logs API.
const LOGS_SIGNING_SERVICE: &str = "logs";
/// The API version prefix of every Lambda function path.
const API_PREFIX: &str = "/2015-03-31/functions";
/// The prefix of Stoke's own operations (beside Lambda's API), such as an alias's rollback.
const STOKE_PREFIX: &str = "/stoke/2026-11-01/functions";
/// The header that carries the error type of a failed call.
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";
/// Upload bodies are handed to the connection in chunks of this size, one progress tick each.
const UPLOAD_CHUNK: usize = 64 * 1024;
/// Items asked for per page of ListVersionsByFunction and ListAliases (Lambda's most).
const LIST_PAGE_SIZE: u32 = 50;
/// How long to wait for a TCP connection before reporting the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Characters escaped in a path segment or query value: all but RFC 3986's unreserved set.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An error answer of the Lambda API, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: u16,
    /// The Lambda error type (`ResourceNotFoundException`, …), from `x-amzn-ErrorType`.
    pub error_type: String,
    /// The human-readable message from the body.
    pub message: String,
}

impl ApiError {
    /// True for the error GetFunction answers for a function that does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == 404 || self.error_type == "ResourceNotFoundException"
    }

    /// Reads an error answer: the type from `x-amzn-ErrorType` (dropping any `:…` suffix AWS
    /// sometimes appends), else from the body's `__type`/`code`; the message from the body's
    /// `message`/`Message`, else the body text itself.
    pub fn from_response(status: u16, error_type_header: Option<&str>, body: &[u8]) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let field = |names: &[&str]| {
            names.iter().find_map(|n| {
                json.as_ref()
                    .and_then(|j| j.get(*n))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        };
        let error_type = error_type_header
            .map(|h| h.split(':').next().unwrap_or(h).trim().to_owned())
            .filter(|t| !t.is_empty())
            .or_else(|| field(&["__type", "code", "Code"]))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = field(&["message", "Message"]).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut short: String = text.chars().take(300).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            short
        });
        Self {
            status,
            error_type,
            message,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{} (HTTP {})", self.error_type, self.status)
        } else {
            write!(f, "{}: {}", self.error_type, self.message)
        }
    }
}

/// What can go wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a Lambda error.
    #[error("{error}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Api {
        error: ApiError,
        /// Set on authentication errors: which key was used, so the user can tell it is the
        /// wrong one.
        hint: Option<String>,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the Stoke server at {endpoint}")]
    Http {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// The endpoint URL cannot be used.
    #[error("invalid endpoint URL {url}: {reason}")]
    Endpoint { url: String, reason: String },
    /// The request could not be signed.
    #[error("signing the request failed: {0}")]
    Signing(String),
    /// A 2xx answer whose body is not what the API promises.
    #[error("unexpected answer from the server")]
    Decode(#[source] serde_json::Error),
}

impl ClientError {
    /// The Lambda error, when the server sent one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

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

/// A request before signing.
struct ApiRequest<'a> {
    method: Method,
    path_and_query: &'a str,
    /// The signing service: `lambda`, or `logs`.
    service: &'a str,
    /// Headers sent (and signed) besides `host` and the signature's own.
    headers: Vec<(&'a str, &'a str)>,
    body: Option<Vec<u8>>,
    /// A progress bar message for the upload, if one should be drawn.
    progress: Option<&'a str>,
}

/// A 2xx answer.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

/// A signing client for one endpoint, region and access key.
#[derive(Debug, Clone)]
pub struct LambdaClient {
    /// The connection pool.
    http: reqwest::Client,
    /// Base URL (scheme, host, port and an optional path prefix) that API paths are appended to.
    endpoint: Url,
    /// Region of the credential scope; the server checks it against its own.
    region: String,
    /// The access key every request is signed with.
    credentials: Credentials,
}

impl LambdaClient {
    /// A client for `endpoint`. Only `http://` is supported: this build carries no TLS stack.
    pub fn new(
        endpoint: Url,
        region: String,
        credentials: Credentials,
    ) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::Endpoint {
            url: endpoint.to_string(),
            reason: reason.to_owned(),
        };
        match endpoint.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported by this build of stoke; use http:// (or a local \
                     TLS-terminating proxy)",
                ));
            }
            _ => return Err(bad("the scheme must be http")),
        }
        if endpoint.host_str().is_none() {
            return Err(bad("it has no host"));
        }
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(bad("it must not have a query or a fragment"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("stoke-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Http {
                endpoint: endpoint.to_string(),
                source,
            })?;
        Ok(Self {
            http,
            endpoint,
            region,
            credentials,
        })
    }

    /// CreateFunction: `POST /2015-03-31/functions` with the request JSON; answers 201. With
    /// `progress`, a bar with that message shows the upload.
    pub async fn create_function(
        &self,
        request: &Value,
        progress: Option<&str>,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(Method::POST, API_PREFIX, Some(body), progress)
            .await?;
        decode(&answer)
    }

    /// GetFunction: `GET /2015-03-31/functions/{name}`.
    pub async fn get_function(&self, name: &str) -> Result<GetFunctionOutput, ClientError> {
        let answer = self
            .send(Method::GET, &function_path(name, ""), None, None)
            .await?;
        decode(&answer)
    }

    /// GetFunctionConfiguration: `GET /2015-03-31/functions/{name}/configuration`, as raw JSON.
    pub async fn get_function_configuration(&self, name: &str) -> Result<Value, ClientError> {
        let answer = self
            .send(
                Method::GET,
                &function_path(name, "/configuration"),
                None,
                None,
            )
            .await?;
        decode(&answer)
    }

    /// UpdateFunctionCode: `PUT /2015-03-31/functions/{name}/code` with `{"ZipFile": …}`.
    pub async fn update_function_code(
        &self,
        name: &str,
        request: &Value,
        progress: Option<&str>,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(
                Method::PUT,
                &function_path(name, "/code"),
                Some(body),
                progress,
            )
            .await?;
        decode(&answer)
    }

    /// UpdateFunctionConfiguration: `PUT /2015-03-31/functions/{name}/configuration`.
    pub async fn update_function_configuration(
        &self,
        name: &str,
        request: &Value,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(
                Method::PUT,
                &function_path(name, "/configuration"),
                Some(body),
                None,
            )
            .await?;
        decode(&answer)
    }

    /// ListFunctions: one page of `GET /2015-03-31/functions/?Marker=&MaxItems=`.
    pub async fn list_functions(
        &self,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListFunctionsPage, ClientError> {
        let answer = self
            .send(Method::GET, &list_path(marker, max_items), None, None)
            .await?;
        decode(&answer)
    }

    /// DeleteFunction: `DELETE /2015-03-31/functions/{name}`; answers 204.
    pub async fn delete_function(&self, name: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &function_path(name, ""), None, None)
            .await?;
        Ok(())
    }

    /// PublishVersion: `POST /2015-03-31/functions/{name}/versions` with `{"CodeSha256",
    /// "Description", "RevisionId"}` (each optional); answers 201 with the version's
    /// configuration (or the latest version's, when nothing changed since it).
    pub async fn publish_version(
        &self,
        name: &str,
        request: &Value,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(
                Method::POST,
                &function_path(name, "/versions"),
                Some(body),
                None,
            )
            .await?;
        decode(&answer)
    }

    /// ListVersionsByFunction: one page of `GET /2015-03-31/functions/{name}/versions`.
    pub async fn list_versions_by_function(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListVersionsPage, ClientError> {
        let path = with_query(
            function_path(name, "/versions"),
            &[
                ("Marker", marker),
                ("MaxItems", max_items.map(|m| m.to_string()).as_deref()),
            ],
        );
        let answer = self.send(Method::GET, &path, None, None).await?;
        decode(&answer)
    }

    /// Every version of a function, all pages of ListVersionsByFunction.
    pub async fn list_all_versions(
        &self,
        name: &str,
    ) -> Result<Vec<FunctionConfiguration>, ClientError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .list_versions_by_function(name, marker.as_deref(), Some(LIST_PAGE_SIZE))
                .await?;
            out.extend(page.versions);
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// CreateAlias: `POST /2015-03-31/functions/{name}/aliases` with `{"Name",
    /// "FunctionVersion", "Description", "RoutingConfig"}`; answers 201.
    pub async fn create_alias(
        &self,
        name: &str,
        request: &Value,
    ) -> Result<AliasConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(
                Method::POST,
                &function_path(name, "/aliases"),
                Some(body),
                None,
            )
            .await?;
        decode(&answer)
    }

    /// UpdateAlias: `PUT /2015-03-31/functions/{name}/aliases/{alias}` with the fields to change
    /// (and `RevisionId`, to refuse the change if the alias changed since it was read).
    pub async fn update_alias(
        &self,
        name: &str,
        alias: &str,
        request: &Value,
    ) -> Result<AliasConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(Method::PUT, &alias_path(name, alias), Some(body), None)
            .await?;
        decode(&answer)
    }

    /// GetAlias: `GET /2015-03-31/functions/{name}/aliases/{alias}`.
    pub async fn get_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<AliasConfiguration, ClientError> {
        let answer = self
            .send(Method::GET, &alias_path(name, alias), None, None)
            .await?;
        decode(&answer)
    }

    /// DeleteAlias: `DELETE /2015-03-31/functions/{name}/aliases/{alias}`; answers 204.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &alias_path(name, alias), None, None)
            .await?;
        Ok(())
    }

    /// ListAliases: one page of `GET /2015-03-31/functions/{name}/aliases`, optionally only the
    /// aliases of one version.
    pub async fn list_aliases(
        &self,
        name: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListAliasesPage, ClientError> {
        let path = with_query(
            function_path(name, "/aliases"),
            &[
                ("FunctionVersion", function_version),
                ("Marker", marker),
                ("MaxItems", max_items.map(|m| m.to_string()).as_deref()),
            ],
        );
        let answer = self.send(Method::GET, &path, None, None).await?;
        decode(&answer)
    }

    /// Every alias of a function, all pages of ListAliases.
    pub async fn list_all_aliases(
        &self,
        name: &str,
    ) -> Result<Vec<AliasConfiguration>, ClientError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .list_aliases(name, None, marker.as_deref(), Some(LIST_PAGE_SIZE))
                .await?;
            out.extend(page.aliases);
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// Stoke's rollback of an alias: `POST
    /// /stoke/2026-11-01/functions/{name}/aliases/{alias}/rollback` (empty body) moves the alias
    /// back to its previous target and answers its configuration; `ResourceConflictException`
    /// when it has none.
    pub async fn rollback_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<AliasConfiguration, ClientError> {
        let path = format!(
            "{STOKE_PREFIX}/{}/aliases/{}/rollback",
            utf8_percent_encode(name, COMPONENT),
            utf8_percent_encode(alias, COMPONENT)
        );
        let answer = self.send(Method::POST, &path, None, None).await?;
        decode(&answer)
    }

    /// Invoke: `POST /2015-03-31/functions/{name}/invocations[?Qualifier=]` with the payload as
    /// the body. A function error is still a success here (200 with `X-Amz-Function-Error`);
    /// the caller looks at [`InvokeOutput::function_error`].
    pub async fn invoke(&self, request: &InvokeRequest<'_>) -> Result<InvokeOutput, ClientError> {
        let path = invoke_path(request.name, request.qualifier);
        let mut headers = vec![("x-amz-invocation-type", request.invocation_type)];
        if request.log_tail {
            headers.push(("x-amz-log-type", "Tail"));
        }
        if request.payload.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let answer = self
            .send_request(ApiRequest {
                method: Method::POST,
                path_and_query: &path,
                service: SIGNING_SERVICE,
                headers,
                body: request.payload.clone(),
                progress: None,
            })
            .await?;
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(InvokeOutput {
            status: answer.status.as_u16(),
            function_error: header("x-amz-function-error"),
            log_result: header("x-amz-log-result"),
            payload: answer.body,
        })
    }

    /// A call to Stoke's own API (`/stoke/...`, signed as the Lambda API): answers the JSON.
    pub async fn stoke_call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let answer = self.send(method, path_and_query, body, None).await?;
        decode(&answer)
    }

    /// FilterLogEvents of the CloudWatch Logs API: `POST /` with `X-Amz-Target:
    /// Logs_20140328.FilterLogEvents`, JSON 1.1, signed for the service `logs`.
    pub async fn filter_log_events(
        &self,
        request: &Value,
    ) -> Result<FilterLogEventsPage, ClientError> {
        let answer = self
            .send_request(ApiRequest {
                method: Method::POST,
                path_and_query: "/",
                service: LOGS_SIGNING_SERVICE,
                headers: vec![
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", "Logs_20140328.FilterLogEvents"),
                ],
                body: Some(request.to_string().into_bytes()),
                progress: None,
            })
            .await?;
        decode(&answer.body)
    }

    /// Signs and sends one request of the Lambda API; returns the body of a 2xx answer, or the
    /// API error. With `progress`, the body is streamed in chunks under a progress bar with that
    /// message.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        progress: Option<&str>,
    ) -> Result<Bytes, ClientError> {
        let headers = if body.is_some() {
            vec![("content-type", "application/json")]
        } else {
            Vec::new()
        };
        let answer = self
            .send_request(ApiRequest {
                method,
                path_and_query,
                service: SIGNING_SERVICE,
                headers,
                body,
                progress,
            })
            .await?;
        Ok(answer.body)
    }

    /// Signs and sends one request; answers a 2xx answer whole, or the API error.
    async fn send_request(&self, request: ApiRequest<'_>) -> Result<Answer, ClientError> {
        let ApiRequest {
            method,
            path_and_query,
            service,
            headers,
            body,
            progress,
        } = request;
        let url = self.url(path_and_query)?;
        let has_body = body.is_some();
        let body = Bytes::from(body.unwrap_or_default());
        let scope = SigningScope {
            credentials: &self.credentials,
            region: &self.region,
            service,
        };
        let signed = sign(
            method.as_str(),
            &url,
            &headers,
            &body,
            &scope,
            SystemTime::now(),
        )?;
        tracing::debug!(%method, %url, bytes = body.len(), "request");

        let mut request = self.http.request(method, url);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let mut bar = None;
        if let Some(message) = progress.filter(|_| !body.is_empty()) {
            let upload = super::bytes_bar(message, body.len() as u64);
            bar = Some(upload.clone());
            request = request
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(reqwest::Body::wrap_stream(progress_stream(body, upload)));
        } else if has_body {
            request = request.body(body);
        }

        let http_error = |source| ClientError::Http {
            endpoint: self.endpoint.to_string(),
            source,
        };
        let response = request.send().await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let response = response.map_err(http_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let error_type = headers
            .get(ERROR_TYPE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(http_error)?;
        if status.is_success() {
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        let error = ApiError::from_response(status.as_u16(), error_type.as_deref(), &body);
        let hint = (status == StatusCode::FORBIDDEN).then(|| {
            format!(
                "signed with access key {} from {}",
                self.credentials.access_key_id, self.credentials.source
            )
        });
        Err(ClientError::Api { error, hint })
    }

    /// The endpoint with `path_and_query` (which starts with `/`) appended to its path.
    fn url(&self, path_and_query: &str) -> Result<Url, ClientError> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path_and_query}")).map_err(|e| ClientError::Endpoint {
            url: self.endpoint.to_string(),
            reason: e.to_string(),
        })
    }
}

/// `/2015-03-31/functions/{name}{suffix}`, the name percent-encoded as one path segment.
fn function_path(name: &str, suffix: &str) -> String {
    format!(
        "{API_PREFIX}/{}{suffix}",
        utf8_percent_encode(name, COMPONENT)
    )
}

/// The Invoke path, with `?Qualifier=` when one is given.
pub fn invoke_path(name: &str, qualifier: Option<&str>) -> String {
    let path = function_path(name, "/invocations");
    match qualifier {
        Some(q) => format!("{path}?Qualifier={}", utf8_percent_encode(q, COMPONENT)),
        None => path,
    }
}

/// `/2015-03-31/functions/{name}/aliases/{alias}`, both percent-encoded.
fn alias_path(name: &str, alias: &str) -> String {
    function_path(
        name,
        &format!("/aliases/{}", utf8_percent_encode(alias, COMPONENT)),
    )
}

/// `path` with the given query parameters (those that are `Some`), values percent-encoded.
fn with_query(path: String, params: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", utf8_percent_encode(v, COMPONENT))))
        .collect();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// The ListFunctions path with its query.
fn list_path(marker: Option<&str>, max_items: Option<u32>) -> String {
    let mut query = Vec::new();
    if let Some(marker) = marker {
        query.push(format!("Marker={}", utf8_percent_encode(marker, COMPONENT)));
    }
    if let Some(max) = max_items {
        query.push(format!("MaxItems={max}"));
    }
    if query.is_empty() {
        format!("{API_PREFIX}/")
    } else {
        format!("{API_PREFIX}/?{}", query.join("&"))
    }
}

/// Parses a 2xx body.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(ClientError::Decode)
}

/// The request body as a stream of chunks that advances `bar` as the connection takes each one.
fn progress_stream(
    body: Bytes,
    bar: ProgressBar,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Bytes> = (0..body.len())
        .step_by(UPLOAD_CHUNK)
        .map(|start| body.slice(start..(start + UPLOAD_CHUNK).min(body.len())))
        .collect();
    stream::iter(chunks.into_iter().map(move |chunk| {
        bar.inc(chunk.len() as u64);
        Ok(chunk)
    }))
}

/// The `Host` value a client sends for `url`: the host, and the port unless it is the default.
fn host_header(url: &Url) -> Result<String, ClientError> {
    let host = url.host_str().ok_or_else(|| ClientError::Endpoint {
        url: url.to_string(),
        reason: "it has no host".to_owned(),
    })?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Who signs a request, and for which region and service (the credential scope).
#[derive(Debug, Clone, Copy)]
pub struct SigningScope<'a> {
    /// The access key that signs.
    pub credentials: &'a Credentials,
    /// The region of the scope; the server checks it against its own.
    pub region: &'a str,
    /// `lambda`, or `logs` for the CloudWatch Logs API.
    pub service: &'a str,
}

/// Signs a request with SigV4 and returns the headers to send: `host`, the given `headers`
/// (content type, `x-amz-target`, …), `x-amz-date`, `authorization` and, with a session token,
/// `x-amz-security-token`. Every header sent is signed; the body hash is part of the canonical
/// request (no `x-amz-content-sha256` header, as boto3 does it).
pub fn sign(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
    scope: &SigningScope<'_>,
    time: SystemTime,
) -> Result<Vec<(String, String)>, ClientError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4::SigningParams;

    let host = host_header(url)?;
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 1);
    all.push(("host", host.as_str()));
    all.extend_from_slice(headers);

    let credentials = scope.credentials;
    let identity = aws_credential_types::Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "stoke-cli",
    )
    .into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| ClientError::Signing(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url.as_str(),
        all.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| ClientError::Signing(e.to_string()))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| ClientError::Signing(e.to_string()))?
        .into_parts();

    let mut out: Vec<(String, String)> = all
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
            source: "test".into(),
        }
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key size");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
    }

    /// 2024-01-02T03:04:05Z
    fn fixed_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645)
    }

    /// Recomputes the signature from the SigV4 specification, independently of aws-sigv4, as the
    /// server does when it verifies a request.
    #[test]
    fn signature_matches_an_independent_sigv4_computation() {
        let url = Url::parse("http://127.0.0.1:9000/2015-03-31/functions/?Marker=b%3Ac&MaxItems=5")
            .expect("url");
        let body = br#"{"FunctionName":"hello"}"#;
        let credentials = credentials(None);
        let scope = SigningScope {
            credentials: &credentials,
            region: "us-east-1",
            service: "lambda",
        };
        let headers = sign(
            "POST",
            &url,
            &[("content-type", "application/json")],
            body,
            &scope,
            fixed_time(),
        )
        .expect("signed");

        assert_eq!(header(&headers, "host"), "127.0.0.1:9000");
        assert_eq!(header(&headers, "x-amz-date"), "20240102T030405Z");
        assert!(!headers.iter().any(|(k, _)| k == "x-amz-content-sha256"));

        let canonical_request = format!(
            "POST\n/2015-03-31/functions/\nMarker=b%3Ac&MaxItems=5\n\
             content-type:application/json\nhost:127.0.0.1:9000\nx-amz-date:20240102T030405Z\n\n\
             content-type;host;x-amz-date\n{}",
            hex::encode(Sha256::digest(body))
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20240102T030405Z\n20240102/us-east-1/lambda/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let secret = format!("AWS4{}", credentials.secret_access_key);
        let key = hmac(secret.as_bytes(), "20240102");
        let key = hmac(&key, "us-east-1");
        let key = hmac(&key, "lambda");
        let key = hmac(&key, "aws4_request");
        let signature = hex::encode(hmac(&key, &string_to_sign));

        assert_eq!(
            header(&headers, "authorization"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
            )
        );
    }

    #[test]
    fn session_token_is_sent_and_signed() {
        let url = Url::parse("http://localhost:9000/2015-03-31/functions/f").expect("url");
        let credentials = credentials(Some("TOKEN"));
        let scope = SigningScope {
            credentials: &credentials,
            region: "eu-west-1",
            service: "lambda",
        };
        let headers = sign("GET", &url, &[], b"", &scope, fixed_time()).expect("signed");
        assert_eq!(header(&headers, "x-amz-security-token"), "TOKEN");
        let auth = header(&headers, "authorization");
        assert!(
            auth.contains("/eu-west-1/lambda/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="),
            "{auth}"
        );
        assert!(!headers.iter().any(|(k, _)| k == "content-type"));
    }

    #[test]
    fn logs_requests_sign_the_target_for_the_logs_service() {
        let url = Url::parse("http://127.0.0.1:9000/").expect("url");
        let credentials = credentials(None);
        let scope = SigningScope {
            credentials: &credentials,
            region: "us-east-1",
            service: "logs",
        };
        let headers = sign(
            "POST",
            &url,
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "Logs_20140328.FilterLogEvents"),
            ],
            b"{}",
            &scope,
            fixed_time(),
        )
        .expect("signed");
        assert_eq!(
            header(&headers, "x-amz-target"),
            "Logs_20140328.FilterLogEvents"
        );
        let auth = header(&headers, "authorization");
        assert!(
            auth.contains(
                "/us-east-1/logs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target,"
            ),
            "{auth}"
        );
    }

    #[test]
    fn invoke_path_carries_the_qualifier() {
        assert_eq!(
            invoke_path("f", None),
            "/2015-03-31/functions/f/invocations"
        );
        assert_eq!(
            invoke_path("f", Some("$LATEST")),
            "/2015-03-31/functions/f/invocations?Qualifier=%24LATEST"
        );
    }

    #[test]
    fn host_header_omits_the_default_port() {
        let url = Url::parse("http://example.test/x").expect("url");
        assert_eq!(host_header(&url).expect("host"), "example.test");
        let url = Url::parse("http://[::1]:8080/x").expect("url");
        assert_eq!(host_header(&url).expect("host"), "[::1]:8080");
    }

    #[test]
    fn api_error_reads_the_lambda_error_shape() {
        let e = ApiError::from_response(
            404,
            Some("ResourceNotFoundException"),
            br#"{"Type":"User","message":"Function not found: arn:aws:lambda:us-east-1:1:function:x"}"#,
        );
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:1:function:x"
        );

        let e = ApiError::from_response(
            400,
            Some("ValidationException:http://internal.amazon.com/"),
            br#"{"Message":"1 validation error detected"}"#,
        );
        assert_eq!(e.error_type, "ValidationException");
        assert_eq!(e.message, "1 validation error detected");

        let e = ApiError::from_response(502, None, b"<html>\n bad   gateway </html>");
        assert_eq!(e.to_string(), "HTTP 502: <html> bad gateway </html>");
    }

    #[test]
    fn paths_encode_names_and_markers() {
        assert_eq!(
            function_path("arn:aws:lambda:us-east-1:1:function:f", "/code"),
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/code"
        );
        assert_eq!(list_path(None, None), "/2015-03-31/functions/");
        assert_eq!(
            list_path(Some("a b/c"), Some(50)),
            "/2015-03-31/functions/?Marker=a%20b%2Fc&MaxItems=50"
        );
    }

    #[test]
    fn alias_and_version_paths_encode_names_and_queries() {
        assert_eq!(
            alias_path("f", "live"),
            "/2015-03-31/functions/f/aliases/live"
        );
        assert_eq!(
            with_query(
                function_path("f", "/aliases"),
                &[
                    ("FunctionVersion", Some("$LATEST")),
                    ("Marker", None),
                    ("MaxItems", Some("50"))
                ]
            ),
            "/2015-03-31/functions/f/aliases?FunctionVersion=%24LATEST&MaxItems=50"
        );
        assert_eq!(
            with_query(function_path("f", "/versions"), &[("Marker", None)]),
            "/2015-03-31/functions/f/versions"
        );
    }

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

    #[test]
    fn client_refuses_https_and_joins_a_path_prefix() {
        let https = Url::parse("https://example.test").expect("url");
        assert!(matches!(
            LambdaClient::new(https, "us-east-1".into(), credentials(None)),
            Err(ClientError::Endpoint { .. })
        ));
        let base = Url::parse("http://example.test:9000/prefix/").expect("url");
        let client =
            LambdaClient::new(base, "us-east-1".into(), credentials(None)).expect("client");
        assert_eq!(
            client.url("/2015-03-31/functions/f").expect("url").as_str(),
            "http://example.test:9000/prefix/2015-03-31/functions/f"
        );
    }
}
