//! The signature a request should carry, recomputed with the `aws-sigv4` crate (the signer
//! the AWS SDKs use) over exactly what the caller says it signed: the method, the path, the
//! query (without the presigned form's own parameters, which the signer puts back as it
//! signs them), the headers it lists and the body's SHA-256.

use std::borrow::Cow;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use http::request::Parts;
use time::OffsetDateTime;

use super::parse::{AUTH_PARAMS, Form, Signed};

/// The query of `parts` without the presigned form's parameters, encoded as it came.
fn operation_query(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            let key: Cow<'_, str> = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            !pair.is_empty() && !AUTH_PARAMS.contains(&key.as_ref())
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The signature the caller should have sent, or `None` if the request cannot be signed as
/// it stands (a header it claims to have signed is missing, a host that is no URI, ...).
pub fn expected_signature(
    parts: &Parts,
    body: &[u8],
    claim: &Signed,
    secret: &str,
    signed_at: OffsetDateTime,
) -> Option<String> {
    let mut headers: Vec<(&str, String)> = Vec::with_capacity(claim.signed_headers.len());
    for name in &claim.signed_headers {
        let values: Vec<&str> = parts
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return None;
        }
        headers.push((name, values.join(",")));
    }
    let host = parts.headers.get(http::header::HOST)?.to_str().ok()?;
    let path = parts.uri.path();
    let uri = match (claim.form, parts.uri.query()) {
        (Form::Query, Some(q)) => {
            let q = operation_query(q);
            if q.is_empty() {
                format!("http://{host}{path}")
            } else {
                format!("http://{host}{path}?{q}")
            }
        }
        (Form::Header, Some(q)) => format!("http://{host}{path}?{q}"),
        (_, None) => format!("http://{host}{path}"),
    };

    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    // Sign exactly what the caller listed, no more and no less.
    settings.excluded_headers = None;
    // The header form's token is one of the listed headers (if the caller signed it); the
    // query form's is a parameter the signer adds back.
    let token = match claim.form {
        Form::Header => {
            settings.signature_location = SignatureLocation::Headers;
            None
        }
        Form::Query => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.session_token_mode = SessionTokenMode::Include;
            settings.expires_in = Some(std::time::Duration::from_secs(
                u64::try_from(claim.expires?).ok()?,
            ));
            claim.token.clone()
        }
    };

    let identity = Credentials::new(&claim.access_key_id, secret, token, None, "stoke").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&claim.region)
        .name(&claim.service)
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
    use super::super::parse::parse_amz_date;
    use super::*;

    fn claim(form: Form) -> Signed {
        Signed {
            form,
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "service".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: String::new(),
            amz_date: "20150830T123600Z".into(),
            expires: None,
            token: None,
        }
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
        let at = parse_amz_date("20150830T123600Z").unwrap();
        let sig = expected_signature(
            &parts,
            b"",
            &claim(Form::Header),
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            at,
        )
        .unwrap();
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn the_operation_query_drops_only_the_presigned_parameters() {
        assert_eq!(
            operation_query(
                "Action=GetCallerIdentity&X-Amz-Signature=ab&Version=2011-06-15&X-Amz-Date=1"
            ),
            "Action=GetCallerIdentity&Version=2011-06-15"
        );
        assert_eq!(operation_query("X-Amz-Expires=1&&"), "");
    }
}
