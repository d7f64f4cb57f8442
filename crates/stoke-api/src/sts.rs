//! AWS STS on the API's port: `GetCallerIdentity`, which Terraform and many scripts call
//! first to learn who they are.
//!
//! STS speaks the query protocol: the operation and its parameters arrive as a form body
//! (`POST /`, `Action=GetCallerIdentity&Version=2011-06-15`) or, presigned, in the query of a
//! `GET /`; the answer is XML in STS's namespace, and so is every error
//! (`<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error>
//! <RequestId>…</RequestId></ErrorResponse>`), the signature's errors included
//! ([`auth_error`]). A request is STS's when its signing scope names the service `sts`.
//!
//! Who the caller is, as AWS answers it: an account's access key is the account itself
//! (root credentials: `arn:aws:iam::ACCOUNT:root`, `UserId` the account id); a function's
//! credentials are an assumed-role session of its execution role named after the function
//! (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION`, `UserId` `AROA…:FUNCTION`).

use axum::Extension;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use stoke_core::{AccountId, LambdaError};
use stoke_engine::credentials::aws_id;

use crate::auth::{Caller, Principal};

/// STS's XML namespace and API version.
pub const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const VERSION: &str = "2011-06-15";

/// Escapes text for an XML element.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-RequestId", v);
    }
    r
}

/// An error in STS's shape.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let fault = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{fault}</Type>\n    \
         <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
         <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        esc(code),
        esc(message)
    );
    xml(status, body, &request_id)
}

/// A refusal of the API's (a signature's, a body's) as STS words it.
pub fn auth_error(e: &LambdaError) -> Response {
    let (status, code, message) = match e {
        LambdaError::MissingAuthenticationToken(_) => (
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ),
        LambdaError::IncompleteSignature(m) => {
            (StatusCode::BAD_REQUEST, "IncompleteSignature", m.as_str())
        }
        LambdaError::UnrecognizedClient(m) => {
            (StatusCode::FORBIDDEN, "InvalidClientTokenId", m.as_str())
        }
        LambdaError::InvalidSignature(m) => {
            (StatusCode::FORBIDDEN, "SignatureDoesNotMatch", m.as_str())
        }
        LambdaError::ExpiredToken(m) => (StatusCode::FORBIDDEN, "ExpiredToken", m.as_str()),
        LambdaError::AccessDenied(m) => (StatusCode::FORBIDDEN, "AccessDenied", m.as_str()),
        LambdaError::TooManyRequests { message, .. } => {
            (StatusCode::BAD_REQUEST, "Throttling", message.as_str())
        }
        LambdaError::Service(m) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            m.as_str(),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            other.message(),
        ),
    };
    error(status, code, message)
}

/// The unique id of a role, `AROA` and 17 characters, derived from its account and name
/// (the same on every node).
fn role_id(account: &AccountId, role: &str) -> String {
    let digest = Sha256::digest(format!("{account}:{role}"));
    aws_id("AROA", digest.get(..17).unwrap_or_default())
}

/// `(Arn, UserId)` of a caller, as STS answers them.
pub fn identity(caller: &Caller) -> (String, String) {
    let account = &caller.account;
    match &caller.principal {
        Principal::AccountKey => (format!("arn:aws:iam::{account}:root"), account.to_string()),
        Principal::FunctionSession {
            function_name,
            role_name,
        } => (
            format!("arn:aws:sts::{account}:assumed-role/{role_name}/{function_name}"),
            format!("{}:{function_name}", role_id(account, role_name)),
        ),
    }
}

/// `POST /` (a form body) or `GET /` (a presigned query) signed for `sts`.
pub async fn dispatch(
    Extension(caller): Extension<Caller>,
    uri: http::Uri,
    body: Bytes,
) -> Response {
    let query = uri.query().unwrap_or_default().as_bytes();
    let params: Vec<(String, String)> = form_urlencoded::parse(query)
        .chain(form_urlencoded::parse(&body))
        .filter(|(k, _)| !k.starts_with("X-Amz-"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(action) = param("Action") else {
        return error(StatusCode::BAD_REQUEST, "MissingAction", "Missing Action");
    };
    if action != "GetCallerIdentity" || param("Version") != Some(VERSION) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!(
                "Could not find operation {action} for version {}",
                param("Version").unwrap_or("NO_VERSION_SPECIFIED")
            ),
        );
    }
    let (arn, user_id) = identity(&caller);
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"{XMLNS}\">\n  <GetCallerIdentityResult>\n    \
         <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  \
         </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
         <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
         </GetCallerIdentityResponse>\n",
        esc(&arn),
        esc(&user_id),
        esc(caller.account.as_str())
    );
    xml(StatusCode::OK, body, &request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        AccountId::try_from("123456789012".to_owned()).unwrap()
    }

    #[test]
    fn an_account_key_is_the_root_and_a_function_an_assumed_role_session() {
        let key = Caller {
            account: account(),
            access_key_id: "AKIA".into(),
            principal: Principal::AccountKey,
        };
        assert_eq!(
            identity(&key),
            (
                "arn:aws:iam::123456789012:root".into(),
                "123456789012".into()
            )
        );
        let session = Caller {
            principal: Principal::FunctionSession {
                function_name: "fn".into(),
                role_name: "r".into(),
            },
            ..key
        };
        let (arn, user) = identity(&session);
        assert_eq!(arn, "arn:aws:sts::123456789012:assumed-role/r/fn");
        let (id, name) = user.split_once(':').unwrap();
        assert_eq!((id.len(), &id[..4], name), (21, "AROA", "fn"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<&>'\""), "a&lt;&amp;&gt;&apos;&quot;");
    }
}
