//! Reading a SigV4 claim out of a request: the `Authorization` header form and the presigned
//! query form (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
//! `X-Amz-SignedHeaders`, `X-Amz-Signature`, `X-Amz-Security-Token`), each to one [`Signed`].
//!
//! Nothing here trusts its input: every part is looked for, never indexed, and what is
//! malformed is `IncompleteSignatureException` with AWS's wording. The property tests in
//! `fuzz.rs` feed these functions random and mutated input.

use http::request::Parts;
use stoke_core::LambdaError;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The algorithm both forms name.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// AWS's bounds of a presigned request's `X-Amz-Expires`, in seconds (one week at most).
pub const MIN_EXPIRES: i64 = 1;
pub const MAX_EXPIRES: i64 = 604_800;
/// The longest `Authorization` header or query this reads: far above what an SDK sends,
/// and a bound on the work a request can ask for.
pub const MAX_AUTH_LEN: usize = 16 * 1024;

/// The query parameters of the presigned form.
pub const Q_ALGORITHM: &str = "X-Amz-Algorithm";
pub const Q_CREDENTIAL: &str = "X-Amz-Credential";
pub const Q_DATE: &str = "X-Amz-Date";
pub const Q_EXPIRES: &str = "X-Amz-Expires";
pub const Q_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
pub const Q_SIGNATURE: &str = "X-Amz-Signature";
pub const Q_TOKEN: &str = "X-Amz-Security-Token";
/// Every parameter of the presigned form: none is part of the signed operation's query.
pub const AUTH_PARAMS: [&str; 7] = [
    Q_ALGORITHM,
    Q_CREDENTIAL,
    Q_DATE,
    Q_EXPIRES,
    Q_SIGNED_HEADERS,
    Q_SIGNATURE,
    Q_TOKEN,
];

/// Where a request carries its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    Header,
    /// A presigned URL: the same in `X-Amz-*` query parameters, with `X-Amz-Expires`.
    Query,
}

/// A request's claim to be signed, in either form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub form: Form,
    pub access_key_id: String,
    /// The scope's `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date`, as sent.
    pub amz_date: String,
    /// The query form's validity, in seconds.
    pub expires: Option<i64>,
    /// `X-Amz-Security-Token`, if sent.
    pub token: Option<String>,
}

pub fn incomplete(msg: impl Into<String>) -> LambdaError {
    LambdaError::IncompleteSignature(msg.into())
}

/// The parts of a credential scope `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`.
pub fn parse_credential(credential: &str) -> Result<[&str; 4], LambdaError> {
    let scope: Vec<&str> = credential.split('/').collect();
    match scope.as_slice() {
        [key, date, region, service, "aws4_request"]
            if !key.is_empty() && !region.is_empty() && !service.is_empty() =>
        {
            Ok([*key, *date, *region, *service])
        }
        _ => Err(incomplete(format!(
            "Credential should be scoped to a valid region and service: {credential}"
        ))),
    }
}

fn signed_headers(list: &str) -> Vec<String> {
    list.split(';')
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses an `Authorization` header value.
pub fn parse_auth_header(value: &str) -> Result<Signed, LambdaError> {
    let requires = || {
        incomplete(format!(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
             parameters. Authorization={value}"
        ))
    };
    if value.len() > MAX_AUTH_LEN {
        return Err(incomplete("The Authorization header is too long."));
    }
    let (algorithm, rest) = value.trim().split_once(' ').ok_or_else(requires)?;
    if algorithm != ALGORITHM {
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
        return Err(requires());
    };
    let [key, date, region, service] = parse_credential(credential)?;
    Ok(Signed {
        form: Form::Header,
        access_key_id: key.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers(signed),
        signature: signature.to_owned(),
        amz_date: String::new(),
        expires: None,
        token: None,
    })
}

/// Whether a query carries the presigned form (any of its parameters).
pub fn has_query_auth(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| AUTH_PARAMS.contains(&k.as_ref()))
}

/// Parses the presigned form out of a query string.
pub fn parse_query_auth(query: &str) -> Result<Signed, LambdaError> {
    if query.len() > MAX_AUTH_LEN * 4 {
        return Err(incomplete("The query string is too long."));
    }
    let mut found: [Option<String>; 7] = Default::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let Some(i) = AUTH_PARAMS.iter().position(|p| *p == k.as_ref()) else {
            continue;
        };
        if found[i].replace(v.into_owned()).is_some() {
            return Err(incomplete(format!(
                "The query parameter {k} is given more than once."
            )));
        }
    }
    let [
        algorithm,
        credential,
        amz_date,
        expires,
        signed,
        signature,
        token,
    ] = found;
    let (
        Some(algorithm),
        Some(credential),
        Some(amz_date),
        Some(expires),
        Some(signed),
        Some(signature),
    ) = (algorithm, credential, amz_date, expires, signed, signature)
    else {
        return Err(incomplete(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', \
             'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', and 'X-Amz-Expires'. \
             Re-examine the query-string parameters.",
        ));
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let expires = parse_expires(&expires)?;
    let [key, date, region, service] = parse_credential(&credential)?;
    Ok(Signed {
        form: Form::Query,
        access_key_id: key.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers(&signed),
        signature,
        amz_date,
        expires: Some(expires),
        token,
    })
}

/// `X-Amz-Expires`: whole seconds, 1 to 604800 (a week), as AWS bounds it.
pub fn parse_expires(v: &str) -> Result<i64, LambdaError> {
    let n: i64 = v
        .parse()
        .map_err(|_| incomplete("X-Amz-Expires should be a number"))?;
    if n < 0 {
        return Err(incomplete("X-Amz-Expires must be non-negative"));
    }
    if n < MIN_EXPIRES {
        return Err(incomplete("X-Amz-Expires must be at least 1 second"));
    }
    if n > MAX_EXPIRES {
        return Err(incomplete(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    Ok(n)
}

/// The claim a request makes, in whichever form it uses; `None` if it makes none. Headers
/// every signature covers must not be repeated, and only one form may be used.
pub fn claim_of(parts: &Parts) -> Result<Option<Signed>, LambdaError> {
    let mut all = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let header = all.next();
    if all.next().is_some() {
        return Err(incomplete(
            "The request must contain exactly one Authorization header.",
        ));
    }
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
    let query = parts.uri.query().filter(|q| has_query_auth(q));
    match (header, query) {
        (Some(_), Some(_)) => Err(incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the \
             Authorization header should be specified",
        )),
        (None, None) => Ok(None),
        (None, Some(q)) => parse_query_auth(q).map(Some),
        (Some(h), None) => {
            let h = h
                .to_str()
                .map_err(|_| incomplete("The Authorization header is not valid text."))?;
            let mut signed = parse_auth_header(h)?;
            signed.amz_date = parts
                .headers
                .get("x-amz-date")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    incomplete(
                        "Authorization header requires existence of either a 'X-Amz-Date' or \
                         a 'Date' header.",
                    )
                })?
                .to_owned();
            signed.token = parts
                .headers
                .get("x-amz-security-token")
                .map(|v| {
                    v.to_str().map(str::to_owned).map_err(|_| {
                        incomplete("The X-Amz-Security-Token header is not valid text.")
                    })
                })
                .transpose()?;
            Ok(Some(signed))
        }
    }
}

/// The signing service a request claims, for routing, without judging anything else.
pub fn claimed_service(parts: &Parts) -> Option<String> {
    claim_of(parts).ok().flatten().map(|s| s.service)
}

pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

pub fn amz_date(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(&fmt).unwrap_or_default()
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
            (a.date.as_str(), a.region.as_str(), a.service.as_str()),
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

    #[test]
    fn parses_a_presigned_query() {
        let q = "Action=GetCallerIdentity&X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=AKID%2F20150830%2Fus-east-1%2Fsts%2Faws4_request\
                 &X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host\
                 &X-Amz-Signature=abc";
        let s = parse_query_auth(q).unwrap();
        assert_eq!(s.form, Form::Query);
        assert_eq!((s.service.as_str(), s.expires), ("sts", Some(60)));
        assert_eq!(s.amz_date, "20150830T123600Z");
        assert_eq!(s.token, None);
    }

    #[test]
    fn expires_is_bounded_as_aws_bounds_it() {
        assert_eq!(parse_expires("1"), Ok(1));
        assert_eq!(parse_expires("604800"), Ok(604_800));
        for (v, msg) in [
            (
                "604801",
                "X-Amz-Expires must be less than a week (in seconds) that is 604800",
            ),
            ("-1", "X-Amz-Expires must be non-negative"),
            ("0", "X-Amz-Expires must be at least 1 second"),
            ("soon", "X-Amz-Expires should be a number"),
        ] {
            assert_eq!(parse_expires(v).unwrap_err().message(), msg, "{v}");
        }
    }
}
