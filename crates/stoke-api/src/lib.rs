//! Stoke's HTTP surface: the AWS Lambda API.
//!
//! # Layout
//! - [`router`]: the routes, with the paths AWS Lambda uses, behind SigV4 authentication;
//!   [`serve`] runs them on a listener the caller bound, until a shutdown future completes.
//! - [`auth`]: AWS Signature Version 4, recomputed with the `aws-sigv4` crate.
//! - [`functions`], [`versions`] (versions and aliases), [`tags`], [`invoke`]: one file per
//!   Lambda resource; a handler decodes the
//!   request, calls the control plane or the invoker and shapes the answer.
//! - [`concurrency`]: reserved concurrency (Put/Get/DeleteFunctionConcurrency).
//! - [`event_invoke`]: the event-invoke configurations of async invocation;
//!   [`dead_letters`]: Stoke's own (signed) API for the async dead letters.
//! - [`logs`]: function logs through the CloudWatch Logs API (`FilterLogEvents`).
//! - `/metrics`: Prometheus metrics (unauthenticated, as scrapers expect).
//! - [`wire`]: Lambda's JSON shapes.
//! - [`presign`]: GetFunction's short-lived `Code.Location` URLs.
//! - [`error`]: Lambda's error shape on the wire (`x-amzn-ErrorType`, `{"Type", "message"}`).
//!
//! Every answer carries `x-amzn-RequestId`.

pub mod auth;
pub mod concurrency;
pub mod dead_letters;
pub mod error;
pub mod event_invoke;
pub mod functions;
pub mod invoke;
pub mod logs;
pub mod presign;
pub mod tags;
pub mod versions;
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
use bytes::Bytes;
use stoke_core::LambdaError;
use stoke_core::function::limits;
use stoke_engine::{AsyncInvoker, ControlPlane, Invoker};
use tokio::net::TcpListener;

pub use auth::{Authenticator, Caller};
pub use error::ApiError;
pub use presign::Presigner;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub invoker: Arc<Invoker>,
    pub asyncq: Arc<AsyncInvoker>,
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
            "/2015-03-31/functions/{name}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(versions::publish).get(versions::list_versions),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            post(versions::create_alias).get(versions::list_aliases),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(versions::get_alias)
                .put(versions::update_alias)
                .delete(versions::delete_alias),
        )
        .route(
            "/stoke/2026-11-01/functions/{name}/aliases/{alias}/rollback",
            post(versions::rollback_alias),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async",
            post(invoke::invoke_async),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async/",
            post(invoke::invoke_async),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            put(event_invoke::put)
                .post(event_invoke::update)
                .get(event_invoke::get)
                .delete(event_invoke::delete),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(event_invoke::list),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(concurrency::put).delete(concurrency::delete),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(concurrency::get),
        )
        .route("/stoke/2026-11-01/dead-letters", get(dead_letters::list))
        .route(
            "/stoke/2026-11-01/dead-letters/{id}",
            get(dead_letters::show),
        )
        .route(
            "/stoke/2026-11-01/dead-letters/{id}/redrive",
            post(dead_letters::redrive),
        )
        .route("/", post(logs::dispatch))
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
        .method_not_allowed_fallback(unknown_operation)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));

    Router::new()
        // Presigned: the URL carries its own signature, so it sits outside SigV4.
        .route("/code/{sha}", get(functions::code_blob))
        .route("/metrics", get(metrics))
        .merge(api)
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
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

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.invoker.metrics().encode(),
    )
        .into_response()
}

async fn unknown_operation(req: Request) -> ApiError {
    ApiError(LambdaError::UnknownOperation(format!(
        "No operation matches {} {}",
        req.method(),
        req.uri().path()
    )))
}

/// How much of a too-large body is read (and dropped) so that the client, which is still
/// sending, sees the 413 instead of a reset connection; past this the connection is closed.
const DRAIN_LIMIT: usize = 4 * MAX_BODY;

/// Reads the body up to `limit`; past it, drains (a bounded amount, for a bounded time) and
/// answers `None`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ()> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let drain_until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let frame = match tokio::time::timeout_at(drain_until, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(_))) | Err(_) => return Err(()),
            Ok(None) => break,
        };
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                return Err(());
            }
        }
    }
    if seen > limit {
        Err(())
    } else {
        Ok(buf.freeze())
    }
}

/// Which signing service a path belongs to: the CloudWatch Logs API sits on `POST /`.
fn service_of(parts: &http::request::Parts) -> &'static str {
    if parts.uri.path() == "/" {
        "logs"
    } else {
        "lambda"
    }
}

/// Reads the body (up to the limit), checks the signature, and hands the handler the caller.
async fn authenticate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = read_body(body, MAX_BODY).await else {
        let mut resp = ApiError(LambdaError::RequestEntityTooLarge(format!(
            "Request must be smaller than {MAX_BODY} bytes for the {} operation",
            operation_name(&parts)
        )))
        .into_response();
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    };
    let scope = auth::Scope {
        region: app.control.region(),
        service: service_of(&parts),
    };
    match app
        .auth
        .verify(&parts, &bytes, SystemTime::now(), scope)
        .await
    {
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
        ("POST", p) if p.ends_with("/invocations") => "InvokeFunction",
        ("POST", p) if p.trim_end_matches('/').ends_with("/invoke-async") => "InvokeAsync",
        _ => "requested",
    }
}

/// Gives every answer an `x-amzn-RequestId`.
async fn request_id(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    // An invocation answers with its own request id (the one its logs carry).
    if !resp.headers().contains_key("x-amzn-RequestId")
        && let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
    {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}
