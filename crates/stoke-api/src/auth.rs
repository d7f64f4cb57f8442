//! AWS Signature Version 4, checked on every API request.
//!
//! The check recomputes the signature with the `aws-sigv4` crate (the signer the AWS SDKs
//! use) over exactly the headers the caller says it signed, at the time it says it signed, with
//! the secret of the access key it names, and compares. What fails gets the error AWS answers:
//! no `Authorization` at all is `MissingAuthenticationTokenException`, a malformed one
//! `IncompleteSignatureException`, an unknown key `UnrecognizedClientException`, a wrong or
//! expired (more than 5 minutes of skew) signature `InvalidSignatureException`; all 403.
//!
//! The check is split in two so that no body is read for a request that cannot be genuine:
//! [`Authenticator::check_headers`] checks all the headers can show (one `Authorization`, one
//! `X-Amz-Date`, one `Host`, the scope, a known key, the skew), and [`Claim::verify`]
//! recomputes the signature, which covers the body's hash, once the body is in. A request with
//! two `Authorization` headers (or two of another header every signature covers) is
//! ambiguous: it is refused as `IncompleteSignatureException`, never judged by its first.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use http::request::Parts;
use stoke_core::{AccountId, LambdaError};
use stoke_engine::accounts::Accounts;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The region and service a request must be signed for.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// Who made a request, once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: AccountId,
    pub access_key_id: String,
}

/// Checks signatures against the engine's access keys.
#[derive(Clone)]
pub struct Authenticator {
    accounts: Arc<Accounts>,
    max_skew: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, PartialEq, Eq)]
struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you \
    provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";

fn incomplete(msg: impl Into<String>) -> LambdaError {
    LambdaError::IncompleteSignature(msg.into())
}

fn parse_auth_header(value: &str) -> Result<AuthHeader<'_>, LambdaError> {
    let (algorithm, rest) = value.trim().split_once(' ').ok_or_else(|| {
        incomplete(format!(
            "Authorization header requires 'Credential', 'SignedHeaders' and \
                            'Signature' parameters. Authorization={value}"
        ))
    })?;
    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let slot = match part.trim().split_once('=') {
            Some(("Credential", v)) => (&mut credential, v),
            Some(("SignedHeaders", v)) => (&mut signed, v),
            Some(("Signature", v)) => (&mut signature, v),
            _ => continue,
        };
        if slot.0.replace(slot.1).is_some() {
            return Err(incomplete(format!(
                "Authorization header has a parameter more than once. Authorization={value}"
            )));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(format!(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
             parameters. Authorization={value}"
        )));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid region and service: {credential}"
        )));
    };
    Ok(AuthHeader {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').filter(|h| !h.is_empty()).collect(),
        signature,
    })
}

fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn amz_date(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(&fmt).unwrap_or_default()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    pub fn new(accounts: Arc<Accounts>) -> Self {
        Self {
            accounts,
            max_skew: Duration::from_secs(300),
        }
    }

    /// Checks the request's signature at time `now`; answers who signed it.
    pub async fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
        scope: Scope<'_>,
    ) -> Result<Caller, LambdaError> {
        let claim = self.check_headers(parts, now, scope).await?;
        claim.verify(parts, body)
    }

    /// Checks everything the headers alone can show, before a byte of the body is read: one
    /// well-formed `Authorization`, one `X-Amz-Date` within the skew, the scope's region and
    /// service, and a known access key. What is left, the signature itself (it covers the
    /// body's hash), is [`Claim::verify`].
    pub async fn check_headers(
        &self,
        parts: &Parts,
        now: SystemTime,
        scope: Scope<'_>,
    ) -> Result<Claim, LambdaError> {
        let mut all = parts.headers.get_all(http::header::AUTHORIZATION).iter();
        let Some(header) = all.next() else {
            return Err(LambdaError::MissingAuthenticationToken(
                "Missing Authentication Token".into(),
            ));
        };
        if all.next().is_some() {
            return Err(incomplete(
                "The request must contain exactly one Authorization header.",
            ));
        }
        // The headers every signature covers: one of each, or the request is ambiguous.
        for name in [
            "x-amz-date",
            "host",
            "x-amz-content-sha256",
            "x-amz-security-token",
        ] {
            if parts.headers.get_all(name).iter().count() > 1 {
                return Err(incomplete(format!(
                    "The request must contain at most one {name} header."
                )));
            }
        }
        let header = header
            .to_str()
            .map_err(|_| incomplete("The Authorization header is not valid text."))?;
        let auth = parse_auth_header(header)?;

        if auth.region != scope.region {
            return Err(LambdaError::InvalidSignature(format!(
                "Credential should be scoped to a valid region. (got {}, this server is {})",
                auth.region, scope.region
            )));
        }
        if auth.service != scope.service {
            return Err(LambdaError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{}'. ",
                scope.service
            )));
        }

        let date_header = parts
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                incomplete(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header.",
                )
            })?;
        let signed_at = parse_amz_date(date_header)
            .ok_or_else(|| incomplete(format!("Invalid X-Amz-Date: {date_header}")))?;

        let found = self.accounts.access_key(auth.access_key_id).await;
        let Some(key) = found.map_err(LambdaError::from)? else {
            return Err(LambdaError::UnrecognizedClient(
                "The security token included in the request is invalid.".into(),
            ));
        };

        let now = OffsetDateTime::from(now);
        let skew = time::Duration::try_from(self.max_skew).unwrap_or(time::Duration::minutes(5));
        if signed_at < now - skew {
            return Err(LambdaError::InvalidSignature(format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                date_header,
                amz_date(now - skew),
                amz_date(now)
            )));
        }
        if signed_at > now + skew {
            return Err(LambdaError::InvalidSignature(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                date_header,
                amz_date(now + skew),
                amz_date(now)
            )));
        }
        if !date_header.starts_with(auth.date) || auth.date.len() != 8 {
            return Err(LambdaError::InvalidSignature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{}'.",
                auth.date,
                date_header.get(..8).unwrap_or(date_header),
                date_header
            )));
        }
        Ok(Claim {
            header: header.to_owned(),
            key,
            signed_at,
        })
    }
}

/// A request whose headers checked out: a known key, a fresh date, the right scope. Only the
/// signature, which covers the body, is left to check.
#[derive(Clone)]
pub struct Claim {
    header: String,
    key: stoke_store::AccessKey,
    signed_at: OffsetDateTime,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("access_key_id", &self.key.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Claim {
    /// Recomputes the signature over the request and its body; answers who signed it.
    pub fn verify(self, parts: &Parts, body: &[u8]) -> Result<Caller, LambdaError> {
        let auth = parse_auth_header(&self.header)?;
        let expected = expected_signature(parts, body, &auth, &self.key.secret, self.signed_at)
            .ok_or_else(|| LambdaError::InvalidSignature(MISMATCH.into()))?;
        if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
            return Err(LambdaError::InvalidSignature(MISMATCH.into()));
        }
        Ok(Caller {
            account: self.key.account,
            access_key_id: self.key.access_key_id,
        })
    }
}

/// The signature the caller should have sent, or `None` if the request cannot be signed as
/// it stands (a header it claims to have signed is missing, say).
fn expected_signature(
    parts: &Parts,
    body: &[u8],
    auth: &AuthHeader<'_>,
    secret: &str,
    signed_at: OffsetDateTime,
) -> Option<String> {
    let mut headers: Vec<(&str, String)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let values: Vec<&str> = parts
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return None;
        }
        headers.push((name, values.join(",")));
    }
    let host = parts.headers.get(http::header::HOST)?.to_str().ok()?;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = format!("http://{host}{path_and_query}");

    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.signature_location = SignatureLocation::Headers;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    // Sign exactly what the caller listed, no more and no less.
    settings.excluded_headers = None;

    let identity = Credentials::new(auth.access_key_id, secret, None, None, "stoke").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(signed_at.into())
        .settings(settings)
        .build()
        .ok()?
        .into();
    let request = SignableRequest::new(
        parts.method.as_str(),
        uri.as_str(),
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body),
    )
    .ok()?;
    let (_, signature) = sign(request, &params).ok()?.into_parts();
    Some(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_sdk_authorization_header() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc123";
        let a = parse_auth_header(h).unwrap();
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            (a.date, a.region, a.service),
            ("20150830", "us-east-1", "lambda")
        );
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(a.signature, "abc123");
    }

    #[test]
    fn refuses_other_algorithms_and_missing_parts() {
        for h in [
            "AWS AKID:sig",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request",
            "Bearer x",
        ] {
            assert_eq!(
                parse_auth_header(h).unwrap_err().type_name(),
                "IncompleteSignatureException"
            );
        }
    }

    #[test]
    fn refuses_a_parameter_given_twice() {
        let h = "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc, Signature=def";
        assert_eq!(
            parse_auth_header(h).unwrap_err().type_name(),
            "IncompleteSignatureException"
        );
    }

    /// The "get-vanilla" case of AWS's SigV4 test suite: a known signature, recomputed.
    #[test]
    fn recomputes_the_aws_test_suite_signature() {
        let req = http::Request::builder()
            .method("GET")
            .uri("/")
            .header("host", "example.amazonaws.com")
            .header("x-amz-date", "20150830T123600Z")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let auth = AuthHeader {
            access_key_id: "AKIDEXAMPLE",
            date: "20150830",
            region: "us-east-1",
            service: "service",
            signed_headers: vec!["host", "x-amz-date"],
            signature: "",
        };
        let at = parse_amz_date("20150830T123600Z").unwrap();
        let sig = expected_signature(
            &parts,
            b"",
            &auth,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            at,
        )
        .unwrap();
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }
}
