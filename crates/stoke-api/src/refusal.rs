//! Names a function's session in the refusals its calls get, as AWS names the assumed-role
//! session that signed (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION`) rather than the
//! account's root.
//!
//! The engine decides a refusal knowing only the calling account, so its
//! `AccessDeniedException` says `User: arn:aws:iam::ACCOUNT:root …`; the API, which knows
//! which credentials signed, puts the session's ARN in their place on the way out. Only that
//! one refusal, with that exact opening, is touched.

use axum::response::{IntoResponse, Response};
use stoke_core::LambdaError;

use crate::auth::{Caller, Principal};
use crate::error::ApiError;

/// The most of a refusal's body read back (a refusal is a short JSON object).
const MAX_REFUSAL: usize = 64 * 1024;

/// `resp`, with the session of `caller` named in an `AccessDeniedException` that names its
/// account's root (any other answer, or a caller that signed with an account key, as it is).
pub async fn name_the_session(caller: &Caller, resp: Response) -> Response {
    if caller.principal == Principal::AccountKey
        || resp
            .headers()
            .get("x-amzn-ErrorType")
            .is_none_or(|t| t.as_bytes() != b"AccessDeniedException")
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REFUSAL).await else {
        return (parts.status, "").into_response();
    };
    let root = format!("User: arn:aws:iam::{}:root ", caller.account);
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("Message")?.as_str().map(str::to_owned));
    let Some(rest) = message.as_deref().and_then(|m| m.strip_prefix(&root)) else {
        return Response::from_parts(parts, bytes.into());
    };
    let session = crate::sts::identity(caller).0;
    let mut out =
        ApiError(LambdaError::AccessDenied(format!("User: {session} {rest}"))).into_response();
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}
