//! Calls that are not Lambda's resource operations: Invoke (synchronous, dry run or event),
//! FilterLogEvents of the CloudWatch Logs API (`POST /`, JSON 1.1, signed for `logs`), and any
//! call of Stoke's own signed API (`/stoke/...`).

use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiRequest, LambdaClient, SIGNING_SERVICE, decode};
use crate::error::ClientError;
use crate::model::{FilterLogEventsPage, InvokeOutput, InvokeRequest};
use crate::paths::invoke_path;

/// The service name in the credential scope of the CloudWatch Logs API.
const LOGS_SIGNING_SERVICE: &str = "logs";

impl LambdaClient {
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
}
