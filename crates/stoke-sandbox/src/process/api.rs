//! The Lambda Runtime API (`/2018-06-01/runtime/...`) that one sandbox's runtime talks to.
//!
//! One [`RuntimeApi`] per execution environment, served on a listening socket created inside
//! the sandbox's own network namespace (see `launch.rs`), so only that sandbox can reach it.
//!
//! The state machine, as AWS documents it:
//! - **Init**: until the runtime first calls `GET /runtime/invocation/next` (init done) or
//!   posts `/runtime/init/error` (init failed). `init/error` after init is
//!   `403 InvalidStateTransition`.
//! - **Idle**: `next` waits (long poll) until the host gives an event, then answers it with
//!   the `Lambda-Runtime-*` headers; the call is then **Busy**.
//! - **Busy**: `POST /runtime/invocation/{id}/response` or `/error` ends the call (`202`). An
//!   id that is not the current call's is `400 InvalidRequestID`; a second answer for the same
//!   call, or `next` before answering, is `403 InvalidStateTransition`; a response over the
//!   limit is `413 RequestEntityTooLarge` (and the call fails with
//!   `Function.ResponseSizeTooLarge`, as on Lambda).
//!
//! An answer is checked against the state before its body is read (a refused one is not
//! read at all), and bodies are read within the bounds of `api_bounds` (capped, timed, and
//! counted against the sandbox's budget); a body that does not arrive in time is
//! `408 RequestTimeout` and leaves the call unanswered.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::api_bounds::{self, BodyError, RuntimeApiLimits};
use super::api_conn::{self, Watch};
use crate::FunctionError;

/// One call handed to the runtime.
#[derive(Debug)]
pub(crate) struct Event {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    /// Base64 JSON, as the caller sent it (the runtime gets it decoded).
    pub client_context: Option<String>,
    pub reply: oneshot::Sender<Reply>,
}

/// What the runtime answered for a call.
#[derive(Debug)]
pub(crate) enum Reply {
    Response(Bytes),
    Error(FunctionError),
}

/// Where Init stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InitState {
    Running,
    /// The runtime asked for its first event.
    Ready,
    /// The runtime reported an init error.
    Failed(FunctionError),
}

#[derive(Default)]
struct Current {
    initialized: bool,
    init_failed: bool,
    /// The call in progress: its id and, until answered, where its answer goes.
    busy: Option<(String, Option<oneshot::Sender<Reply>>)>,
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    current: Mutex<Current>,
    init: watch::Sender<InitState>,
    max_payload: usize,
    limits: RuntimeApiLimits,
    /// Body bytes held at once, over all connections.
    budget: Arc<Semaphore>,
}

/// The host's side of one sandbox's Runtime API.
pub(crate) struct RuntimeApi {
    pub events: mpsc::Sender<Event>,
    pub init: watch::Receiver<InitState>,
    router: Router,
    limits: RuntimeApiLimits,
    #[cfg(test)]
    budget: Arc<Semaphore>,
}

impl RuntimeApi {
    /// A new API; `max_payload` is the largest response body (Lambda: 6 MB).
    pub fn new(max_payload: usize, limits: RuntimeApiLimits) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let (init_tx, init_rx) = watch::channel(InitState::Running);
        // Room for the largest body of every operation, whatever the configuration says.
        let budget = limits
            .body_budget_bytes
            .max(max_payload)
            .max(limits.max_error_bytes)
            .min(Semaphore::MAX_PERMITS);
        let budget = Arc::new(Semaphore::new(budget));
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(rx),
            current: Mutex::new(Current::default()),
            init: init_tx,
            max_payload,
            limits: limits.clone(),
            budget: Arc::clone(&budget),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(not_found)
            .with_state(shared);
        Self {
            events: tx,
            init: init_rx,
            router,
            limits,
            #[cfg(test)]
            budget,
        }
    }

    /// Serves the API on `listener`, within its limits, until the task is aborted.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        api_conn::serve(listener, self.router.clone(), self.limits.clone())
    }

    /// The budget's free bytes.
    #[cfg(test)]
    pub fn budget_available(&self) -> usize {
        self.budget.available_permits()
    }

    /// The router alone (tests serve it on a plain socket).
    #[cfg(test)]
    pub fn router(&self) -> Router {
        self.router.clone()
    }
}

fn lock(m: &Mutex<Current>) -> std::sync::MutexGuard<'_, Current> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(http::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "NotFound", "Not Found")
}

fn invalid_transition() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        "State transition is not allowed",
    )
}

async fn next(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let conn = req.extensions().get::<Arc<Watch>>().cloned();
    drop(req);
    {
        let mut cur = lock(&s.current);
        if matches!(&cur.busy, Some((_, Some(_)))) {
            return invalid_transition();
        }
        cur.busy = None;
        if !cur.initialized {
            cur.initialized = true;
            if !cur.init_failed {
                s.init.send_replace(InitState::Ready);
            }
        }
    }
    let event = {
        let mut events = s.events.lock().await;
        events.recv().await
    };
    let Some(event) = event else {
        // The environment is going away: nothing will ever come.
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "The execution environment is shutting down.",
        );
    };
    let mut resp = Response::new(Body::from(event.payload));
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("content-type", "application/json");
    put("lambda-runtime-aws-request-id", &event.request_id);
    put("lambda-runtime-deadline-ms", &event.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &event.function_arn);
    put("lambda-runtime-trace-id", &event.trace_id);
    if let Some(cc) = &event.client_context {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(cc)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| cc.clone());
        put("lambda-runtime-client-context", &decoded);
    }
    // The runtime answers on this connection once the function has run: no idle timeout
    // for it until the call's deadline.
    if let Some(conn) = conn {
        conn.hold_until(instant_of(event.deadline_ms));
    }
    lock(&s.current).busy = Some((event.request_id, Some(event.reply)));
    resp
}

/// The instant of a Unix time in milliseconds (at most an hour away).
fn instant_of(unix_ms: u64) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let ahead = std::time::Duration::from_millis(unix_ms.saturating_sub(now_ms).min(3_600_000));
    tokio::time::Instant::now() + ahead
}

/// Reads a body within the sandbox's bounds.
async fn read_body(
    s: &Shared,
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Bytes, BodyError> {
    api_bounds::read_body(body, headers, max, &s.budget, s.limits.body_timeout).await
}

/// The connection ends after this answer (its request body was not read to the end).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn too_large(max: usize) -> Response {
    closing(api_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({max} bytes)."),
    ))
}

/// A body that did not arrive in time (or broke off): the call is left as it was.
fn body_failed(e: BodyError) -> Response {
    let (status, kind, message) = match e {
        BodyError::TimedOut => (
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "The request body was not received in time.",
        ),
        BodyError::Broken => (
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The request body could not be read.",
        ),
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Exceeded maximum allowed payload size.",
        ),
    };
    closing(api_error(status, kind, message))
}

/// Why an answer was refused.
enum Refusal {
    UnknownId,
    AlreadyAnswered,
}

impl Refusal {
    fn response(self) -> Response {
        // The body of a refused answer is not read.
        closing(match self {
            Refusal::UnknownId => api_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "Invalid request ID",
            ),
            Refusal::AlreadyAnswered => invalid_transition(),
        })
    }
}

/// Whether call `id` can be answered now (nothing is taken).
fn check_reply(s: &Shared, id: &str) -> Result<(), Refusal> {
    match &lock(&s.current).busy {
        Some((current, Some(_))) if current == id => Ok(()),
        Some((current, None)) if current == id => Err(Refusal::AlreadyAnswered),
        _ => Err(Refusal::UnknownId),
    }
}

/// Takes the reply channel of call `id`.
fn take_reply(s: &Shared, id: &str) -> Result<oneshot::Sender<Reply>, Refusal> {
    let mut cur = lock(&s.current);
    match &mut cur.busy {
        Some((current, reply)) if current == id => reply.take().ok_or(Refusal::AlreadyAnswered),
        _ => Err(Refusal::UnknownId),
    }
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, req: Request) -> Response {
    if let Err(refusal) = check_reply(&s, &id) {
        return refusal.response();
    }
    let (parts, body) = req.into_parts();
    let body = read_body(&s, &parts.headers, body, s.max_payload).await;
    if let Err(e @ (BodyError::TimedOut | BodyError::Broken)) = body {
        return body_failed(e);
    }
    let reply = match take_reply(&s, &id) {
        Ok(r) => r,
        Err(refusal) => return refusal.response(),
    };
    match body {
        Ok(b) => {
            let _ = reply.send(Reply::Response(b));
            accepted()
        }
        Err(_) => {
            let _ = reply.send(Reply::Error(FunctionError::new(
                "Function.ResponseSizeTooLarge",
                format!(
                    "Response payload size exceeded maximum allowed payload size ({} bytes).",
                    s.max_payload
                ),
            )));
            too_large(s.max_payload)
        }
    }
}

/// The error a runtime posted: its JSON object as the body the caller gets, the type from the
/// object or the `Lambda-Runtime-Function-Error-Type` header.
pub(crate) fn posted_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => {
            let error_type = o
                .get("errorType")
                .and_then(|t| t.as_str())
                .or(header_type)
                .unwrap_or("Unhandled")
                .to_owned();
            let message = o
                .get("errorMessage")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_owned();
            FunctionError {
                error_type,
                message,
                body: Bytes::copy_from_slice(body),
            }
        }
        _ => FunctionError::new(
            header_type.unwrap_or("Unhandled"),
            String::from_utf8_lossy(body).into_owned(),
        ),
    }
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, req: Request) -> Response {
    if let Err(refusal) = check_reply(&s, &id) {
        return refusal.response();
    }
    let (parts, body) = req.into_parts();
    let max = s.limits.max_error_bytes;
    let body = read_body(&s, &parts.headers, body, max).await;
    if let Err(e @ (BodyError::TimedOut | BodyError::Broken)) = body {
        return body_failed(e);
    }
    let reply = match take_reply(&s, &id) {
        Ok(r) => r,
        Err(refusal) => return refusal.response(),
    };
    match body {
        Ok(b) => {
            let _ = reply.send(Reply::Error(posted_error(&parts.headers, &b)));
            accepted()
        }
        Err(_) => {
            let _ = reply.send(Reply::Error(FunctionError::new(
                "Function.ResponseSizeTooLarge",
                "The error payload was larger than the maximum allowed payload size.",
            )));
            too_large(max)
        }
    }
}

async fn init_error(State(s): State<Arc<Shared>>, req: Request) -> Response {
    {
        let cur = lock(&s.current);
        if cur.initialized || cur.init_failed {
            return closing(invalid_transition());
        }
    }
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    // An error too large to keep is reported by its type alone (from the header).
    let (body, unread) = match read_body(&s, &headers, body, s.limits.max_error_bytes).await {
        Ok(b) => (b, false),
        Err(BodyError::TooLarge) => (Bytes::new(), true),
        Err(e) => return body_failed(e),
    };
    {
        let mut cur = lock(&s.current);
        if cur.initialized || cur.init_failed {
            return invalid_transition();
        }
        cur.init_failed = true;
    }
    s.init
        .send_replace(InitState::Failed(posted_error(&headers, &body)));
    if unread {
        closing(accepted())
    } else {
        accepted()
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
