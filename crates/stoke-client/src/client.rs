//! [`LambdaClient`]: one endpoint, region and access key, and the one path every operation takes:
//! build the URL, sign (see [`crate::sign`]), send (streaming an upload under a progress bar
//! when asked), and turn a non-2xx answer into an [`ApiError`]. The operations themselves are
//! methods in [`crate::functions`], [`crate::aliases`] and [`crate::invoke`].

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::{Method, StatusCode, Url};

use crate::credentials::Credentials;
use crate::error::{ApiError, ClientError};
use crate::progress;
use crate::sign::{SigningScope, sign};

/// The service name in the credential scope of the Lambda API.
pub(crate) const SIGNING_SERVICE: &str = "lambda";
/// The header that carries the error type of a failed call.
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";
/// How long to wait for a TCP connection before reporting the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request before signing.
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: Method,
    pub(crate) path_and_query: &'a str,
    /// The signing service: `lambda`, or `logs`.
    pub(crate) service: &'a str,
    /// Headers sent (and signed) besides `host` and the signature's own.
    pub(crate) headers: Vec<(&'a str, &'a str)>,
    pub(crate) body: Option<Vec<u8>>,
    /// A progress bar message for the upload, if one should be drawn.
    pub(crate) progress: Option<&'a str>,
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Bytes,
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

    /// One JSON call of the Lambda API: `request` (if any) as the body, the 2xx answer decoded.
    /// With `progress`, the upload is shown under a bar with that message.
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        request: Option<&serde_json::Value>,
        progress: Option<&str>,
    ) -> Result<T, ClientError> {
        let body = request.map(|r| r.to_string().into_bytes());
        decode(&self.send(method, path_and_query, body, progress).await?)
    }

    /// Signs and sends one request of the Lambda API; returns the body of a 2xx answer, or the
    /// API error. With `progress`, the body is streamed in chunks under a progress bar with that
    /// message.
    pub(crate) async fn send(
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
    pub(crate) async fn send_request(
        &self,
        request: ApiRequest<'_>,
    ) -> Result<Answer, ClientError> {
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
            let upload = progress::bytes_bar(message, body.len() as u64);
            bar = Some(upload.clone());
            request = request
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(reqwest::Body::wrap_stream(progress::progress_stream(
                    body, upload,
                )));
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
    pub(crate) fn url(&self, path_and_query: &str) -> Result<Url, ClientError> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path_and_query}")).map_err(|e| ClientError::Endpoint {
            url: self.endpoint.to_string(),
            reason: e.to_string(),
        })
    }
}

/// Every item of a paged list: `page(marker)` answers one page's items and its next marker;
/// pages are asked for until there is no next marker (or it repeats).
pub(crate) async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, ClientError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), ClientError>>,
{
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let (items, next) = page(marker.clone()).await?;
        out.extend(items);
        match next.filter(|m| !m.is_empty()) {
            Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
            _ => return Ok(out),
        }
    }
}

/// Parses a 2xx body.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(ClientError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: None,
            source: "test".into(),
        }
    }

    #[test]
    fn client_refuses_https_and_joins_a_path_prefix() {
        let https = Url::parse("https://example.test").expect("url");
        assert!(matches!(
            LambdaClient::new(https, "us-east-1".into(), credentials()),
            Err(ClientError::Endpoint { .. })
        ));
        let base = Url::parse("http://example.test:9000/prefix/").expect("url");
        let client = LambdaClient::new(base, "us-east-1".into(), credentials()).expect("client");
        assert_eq!(
            client.url("/2015-03-31/functions/f").expect("url").as_str(),
            "http://example.test:9000/prefix/2015-03-31/functions/f"
        );
    }
}
