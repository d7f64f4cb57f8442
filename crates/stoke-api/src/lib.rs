//! Stoke's HTTP surface: the AWS Lambda API.
//!
//! # Layout
//! - [`router`]: the routes, with the paths AWS Lambda uses, behind SigV4 authentication;
//!   [`serve`] runs them on a listener the caller bound, until a shutdown future completes.
//! - [`listen`]: the accept loop and HTTP/1.1 connections with their timeouts and caps.
//! - [`auth`]: AWS Signature Version 4, recomputed with the `aws-sigv4` crate: the headers
//!   first, then (once the body is in) the signature.
//! - [`body`]: request bodies, bounded by operation and by a global budget before they are
//!   buffered.
//! - [`functions`], [`versions`] (versions and aliases), [`tags`], [`invoke`]: one file per
//!   Lambda resource; a handler decodes the
//!   request, calls the control plane or the invoker and shapes the answer.
//! - [`permissions`]: resource-based policies (AddPermission, RemovePermission, GetPolicy).
//! - [`concurrency`]: reserved concurrency (Put/Get/DeleteFunctionConcurrency).
//! - [`event_invoke`]: the event-invoke configurations of async invocation;
//!   [`dead_letters`]: Stoke's own (signed) API for the async dead letters.
//! - [`mappings`]: event source mappings (Create/Get/Update/Delete/ListEventSourceMappings).
//! - [`admin`]: Stoke's admin API (accounts, access keys, limits), for the admin account only.
//! - [`logs`]: function logs through the CloudWatch Logs API (`FilterLogEvents`).
//! - [`sts`]: STS `GetCallerIdentity` (query protocol, XML), on `/` when the signing scope's
//!   service is `sts`.
//! - [`scheduler`]: EventBridge Scheduler's schedules and groups (REST-JSON at `/schedules` and
//!   `/schedule-groups`, signed for `scheduler`).
//! - [`refusal`]: a refusal of a call a function's session signed names that session.
//! - [`forward`]: the cluster's internal channel: synchronous calls forwarded to the node with
//!   the version's warm sandboxes (h2c on this port, MAC'd with the cluster key), and its
//!   internal route.
//! - `/metrics`: Prometheus metrics (unauthenticated, as scrapers expect).
//! - [`wire`]: Lambda's JSON shapes.
//! - [`presign`]: GetFunction's short-lived `Code.Location` URLs.
//! - [`error`]: Lambda's error shape on the wire (`x-amzn-ErrorType` and the body AWS answers each
//!   type with: `{"Type", "Message"}`, `{"Type", "message"}` or the front door's `{"message"}`).
//!
//! Every answer carries `x-amzn-RequestId`.

pub mod admin;
pub mod auth;
pub mod body;
pub mod concurrency;
pub mod dead_letters;
pub mod error;
pub mod event_invoke;
pub mod forward;
pub mod functions;
pub mod invoke;
pub mod listen;
pub mod logs;
pub mod mappings;
pub mod permissions;
pub mod presign;
pub mod refusal;
pub mod scheduler;
pub mod sts;
pub mod tags;
pub mod versions;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use stoke_core::LambdaError;
use stoke_core::function::limits;
use stoke_engine::logs::Logs;
use stoke_engine::{AsyncInvoker, ControlPlane, Engine, Invoker};
use tokio::net::TcpListener;

pub use auth::{Authenticator, Caller};
pub use body::{BodyConfig, Budget};
pub use error::ApiError;
pub use listen::ListenConfig;
pub use presign::Presigner;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub invoker: Arc<Invoker>,
    pub asyncq: Arc<AsyncInvoker>,
    /// Stored log lines (the CloudWatch Logs API).
    pub logs: Arc<Logs>,
    pub auth: Authenticator,
    /// Accounts, keys and limits (the admin API).
    pub accounts: Arc<stoke_engine::accounts::Accounts>,
    pub presigner: Presigner,
    /// The budget of request bodies being buffered, and how long a body may stall.
    pub bodies: Budget,
    /// EventBridge Scheduler's schedules.
    pub schedules: Arc<stoke_engine::schedules::Schedules>,
    /// Event source mappings.
    pub mappings: Arc<stoke_engine::sources::Mappings>,
    /// The node registry (the admin API's ListNodes).
    pub nodes: Arc<stoke_engine::nodes::Nodes>,
    /// Where synchronous calls run in a cluster (off: all here).
    pub forward: Arc<forward::Forwarder>,
}

impl AppState {
    /// The API over `engine`'s services.
    pub fn new(engine: &Engine, presigner: Presigner, bodies: Budget) -> Self {
        Self {
            control: Arc::clone(&engine.control),
            invoker: Arc::clone(&engine.invoker),
            asyncq: Arc::clone(&engine.asyncq),
            logs: Arc::clone(&engine.logs),
            auth: Authenticator::new(
                Arc::clone(&engine.accounts),
                Arc::clone(&engine.credentials),
            ),
            accounts: Arc::clone(&engine.accounts),
            presigner,
            bodies,
            schedules: Arc::clone(&engine.schedules),
            mappings: Arc::clone(&engine.mappings),
            nodes: Arc::clone(&engine.nodes),
            forward: Arc::new(forward::Forwarder::off(Arc::clone(&engine.membership))),
        }
    }

    /// Forwards synchronous calls through `forwarder` (see [`forward`]).
    pub fn with_forwarding(mut self, forwarder: forward::Forwarder) -> Self {
        self.forward = Arc::new(forwarder);
        self
    }
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
        // Resource-based policies (issue 13).
        .route(
            "/2015-03-31/functions/{name}/policy",
            post(permissions::add).get(permissions::get),
        )
        .route(
            "/2015-03-31/functions/{name}/policy/{sid}",
            axum::routing::delete(permissions::remove),
        )
        // Event source mappings (issue 15).
        .route(
            "/2015-03-31/event-source-mappings",
            post(mappings::create).get(mappings::list),
        )
        .route(
            "/2015-03-31/event-source-mappings/",
            post(mappings::create).get(mappings::list),
        )
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(mappings::get)
                .put(mappings::update)
                .delete(mappings::delete),
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
        // `/` is CloudWatch Logs' (JSON 1.1) and STS's (query protocol): the signing scope's
        // service says which.
        .route("/", post(root).get(root))
        // The admin API (accounts, keys, limits): the admin account only.
        .route(
            "/stoke/admin/2026-11-01/accounts",
            post(admin::create).get(admin::list),
        )
        .route(
            "/stoke/admin/2026-11-01/accounts/{account}",
            get(admin::show).delete(admin::delete),
        )
        .route(
            "/stoke/admin/2026-11-01/accounts/{account}/limits",
            put(admin::set_limits),
        )
        .route(
            "/stoke/admin/2026-11-01/accounts/{account}/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route(
            "/stoke/admin/2026-11-01/accounts/{account}/keys/{key}",
            axum::routing::delete(admin::revoke_key),
        )
        // The admin API's node registry (issue 14): every node of the cluster and its state.
        .route("/stoke/admin/2026-11-01/nodes", get(admin::list_nodes))
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
        // EventBridge Scheduler (issue 15): its own paths, signed for `scheduler`.
        .route("/schedules", get(scheduler::list))
        .route(
            "/schedules/{name}",
            post(scheduler::create)
                .get(scheduler::get)
                .put(scheduler::update)
                .delete(scheduler::delete),
        )
        .route("/schedule-groups", get(scheduler::list_groups))
        .route(
            "/schedule-groups/{name}",
            post(scheduler::create_group)
                .get(scheduler::get_group)
                .delete(scheduler::delete_group),
        )
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));

    Router::new()
        // Presigned: the URL carries its own signature, so it sits outside SigV4.
        .route("/code/{sha}", get(functions::code_blob))
        .route("/metrics", get(metrics))
        // The cluster's internal channel (issue 14): MAC'd by the cluster key, not SigV4.
        .route(forward::INTERNAL_INVOKE, post(forward::internal::invoke))
        .merge(api)
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(error::lambda_shape))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests under way.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    config: ListenConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, router(state), config, shutdown).await
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

/// The service a request is for: `/` is CloudWatch Logs' or STS's as the signing scope says
/// (another scope is Lambda's, which has nothing there); with no readable claim, the
/// protocol's marker says (`X-Amz-Target`: Logs; a form body or an `Action` query: STS).
/// `/schedules…` and `/schedule-groups…` are EventBridge Scheduler's. Every other path is
/// Lambda's. The scope is then checked against it.
fn service_of(parts: &http::request::Parts) -> &'static str {
    let path = parts.uri.path();
    if path == "/schedules"
        || path == "/schedule-groups"
        || path.starts_with("/schedules/")
        || path.starts_with("/schedule-groups/")
    {
        return "scheduler";
    }
    if path != "/" {
        return "lambda";
    }
    let form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    let action = parts
        .uri
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "Action"));
    match auth::claimed_service(parts).as_deref() {
        Some("logs") => "logs",
        Some("sts") => "sts",
        Some(_) => "lambda",
        None if parts.headers.contains_key("x-amz-target") => "logs",
        None if form || action => "sts",
        None => "lambda",
    }
}

/// The signing service of an authenticated request, for the handlers of `/`.
#[derive(Debug, Clone, Copy)]
struct SignedFor(&'static str);

/// `/`: CloudWatch Logs (`POST`) or STS, by the request's signing service.
async fn root(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(SignedFor(service)): Extension<SignedFor>,
    method: http::Method,
    headers: http::HeaderMap,
    uri: http::Uri,
    body: bytes::Bytes,
) -> Response {
    match service {
        "sts" => sts::dispatch(Extension(caller), uri, body).await,
        "logs" if method == http::Method::POST => {
            logs::dispatch(State(app), Extension(caller), headers, body)
                .await
                .into_response()
        }
        _ => ApiError(LambdaError::UnknownOperation(format!(
            "No operation matches {method} /"
        )))
        .into_response(),
    }
}

/// A refusal in the shape of the request's service (STS's XML, or Lambda's JSON).
fn shaped_error(service: &str, e: LambdaError) -> Response {
    if service == "sts" {
        sts::auth_error(&e)
    } else {
        ApiError(e).into_response()
    }
}

/// Checks the headers' claim (before reading a byte of body), reads the body within its
/// operation's limit and the global budget, checks the signature, and hands the handler the
/// caller. The budget share is held until the handler has answered.
async fn authenticate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let service = service_of(&parts);
    let scope = auth::Scope {
        region: app.control.region(),
        service,
    };
    let op = body::Operation::of(&parts);
    let claim = match app
        .auth
        .check_headers(&parts, SystemTime::now(), scope)
        .await
    {
        Ok(claim) => claim,
        Err(e) => {
            let e = shaped_error(service, e);
            return refuse(&app, &parts, body, body::DRAIN_UNSIGNED, e);
        }
    };
    if body::declared_length(&body).is_some_and(|n| n > op.limit as u64) {
        return refuse(
            &app,
            &parts,
            body,
            body::DRAIN_SIGNED,
            shaped_error(service, op.too_large()),
        );
    }
    let (bytes, share) = match body::read(&app.bodies, body, op.limit).await {
        Ok(read) => read,
        Err(e) => {
            let resp = match e {
                body::BodyError::TooLarge => ApiError(op.too_large()).into_response(),
                body::BodyError::Stalled => {
                    error::request_timeout(app.bodies.config().stall_timeout)
                }
                body::BodyError::Budget => ApiError(LambdaError::TooManyRequests {
                    reason: "CallerRateLimitExceeded".into(),
                    message: "Rate exceeded: the server is receiving too many request bodies \
                              at once; retry shortly."
                        .into(),
                })
                .into_response(),
                body::BodyError::Broken => ApiError(LambdaError::InvalidRequestContent(
                    "The request body could not be read.".into(),
                ))
                .into_response(),
            };
            return closing(resp);
        }
    };
    match claim.verify(&parts, &bytes) {
        Ok(caller) => {
            parts.extensions.insert(caller.clone());
            parts.extensions.insert(SignedFor(service));
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            drop(share);
            // A refusal names the function's session that signed, as AWS's does.
            refusal::name_the_session(&caller, resp).await
        }
        Err(e) => shaped_error(service, e),
    }
}

/// Answers a request refused before its body was read. A body still to come is drained (read
/// and dropped, up to `drain` bytes) so that the client sees the answer, and the connection
/// closes after it; a body too large to drain is not read at all.
fn refuse(
    app: &AppState,
    parts: &http::request::Parts,
    body: Body,
    drain: u64,
    resp: Response,
) -> Response {
    if body::is_empty(&body) {
        return resp;
    }
    if body::drainable(parts, &body, drain) {
        body::drain(body, drain, app.bodies.config().stall_timeout);
    }
    closing(resp)
}

/// Marks an answer as the connection's last.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
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
