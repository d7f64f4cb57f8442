//! Stoke's HTTP surface: the AWS Lambda API.
//!
//! # Layout
//! - [`router`]: the routes, with the paths AWS Lambda uses, behind SigV4 authentication;
//!   [`serve`] runs them on a listener the caller bound, until a shutdown future completes.
//! - [`auth`]: AWS Signature Version 4, recomputed with the `aws-sigv4` crate.
//! - [`functions`], [`tags`]: one file per Lambda resource; a handler decodes the request,
//!   calls the control plane and shapes the answer.
//! - [`wire`]: Lambda's JSON shapes.
//! - [`presign`]: GetFunction's short-lived `Code.Location` URLs.
//! - [`error`]: Lambda's error shape on the wire (`x-amzn-ErrorType`, `{"Type", "message"}`).
//!
//! Every answer carries `x-amzn-RequestId`.

pub mod auth;
pub mod error;
pub mod functions;
pub mod presign;
pub mod tags;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use stoke_core::LambdaError;
use stoke_core::function::limits;
use stoke_engine::ControlPlane;
use tokio::net::TcpListener;

pub use auth::{Authenticator, Caller};
pub use error::ApiError;
pub use presign::Presigner;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub auth: Authenticator,
    pub presigner: Presigner,
}

/// The largest request body any operation takes (CreateFunction's, with a base64 zip).
const MAX_BODY: usize = limits::MAX_CREATE_REQUEST_BYTES;

/// The Lambda API, authenticated.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/2015-03-31/functions",
            post(functions::create).get(functions::list),
        )
        .route(
            "/2015-03-31/functions/",
            post(functions::create).get(functions::list),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            put(functions::update_code),
        )
        .route(
            "/2016-08-19/account-settings",
            get(functions::account_settings),
        )
        .route(
            "/2016-08-19/account-settings/",
            get(functions::account_settings),
        )
        .route(
            "/2017-03-31/tags/{arn}",
            get(tags::list).post(tags::tag).delete(tags::untag),
        )
        .fallback(unknown_operation)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));

    Router::new()
        // Presigned: the URL carries its own signature, so it sits outside SigV4.
        .route("/code/{sha}", get(functions::code_blob))
        .merge(api)
        .fallback(unknown_operation)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests under way.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn unknown_operation(req: Request) -> ApiError {
    ApiError(LambdaError::UnknownOperation(format!(
        "No operation matches {} {}",
        req.method(),
        req.uri().path()
    )))
}

/// Reads the body (up to the limit), checks the signature, and hands the handler the caller.
async fn authenticate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError(LambdaError::RequestEntityTooLarge(format!(
                "Request must be smaller than {MAX_BODY} bytes for the {} operation",
                operation_name(&parts)
            )))
            .into_response();
        }
    };
    match app.auth.verify(&parts, &bytes, SystemTime::now()).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => ApiError(e).into_response(),
    }
}

fn operation_name(parts: &http::request::Parts) -> &'static str {
    let path = parts.uri.path();
    match (parts.method.as_str(), path) {
        ("POST", p) if p.trim_end_matches('/') == "/2015-03-31/functions" => "CreateFunction",
        ("PUT", p) if p.ends_with("/code") => "UpdateFunctionCode",
        ("PUT", p) if p.ends_with("/configuration") => "UpdateFunctionConfiguration",
        _ => "requested",
    }
}

/// Gives every answer an `x-amzn-RequestId`.
async fn request_id(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}
