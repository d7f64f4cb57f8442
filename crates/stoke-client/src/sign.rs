//! AWS Signature Version 4 for the client's requests, with the `aws-sigv4` crate: header form,
//! every header sent signed, the body's SHA-256 in the canonical request (no
//! `x-amz-content-sha256` header, as boto3 does it). [`sign`] is public so that a load generator
//! (the bench) signs its own requests exactly as the client does.

use std::time::SystemTime;

use reqwest::Url;

use crate::credentials::Credentials;
use crate::error::ClientError;

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
    use std::time::Duration;

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
    fn host_header_omits_the_default_port() {
        let url = Url::parse("http://example.test/x").expect("url");
        assert_eq!(host_header(&url).expect("host"), "example.test");
        let url = Url::parse("http://[::1]:8080/x").expect("url");
        assert_eq!(host_header(&url).expect("host"), "[::1]:8080");
    }
}
