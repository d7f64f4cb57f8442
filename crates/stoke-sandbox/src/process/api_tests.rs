//! Tests of the Runtime API's state machine (served through the router alone; the bounds
//! on real sockets are tested in `api_bounds`).

#![allow(clippy::unwrap_used)]
use super::*;

async fn call(router: &Router, req: http::Request<Body>) -> Response {
    use tower::ServiceExt as _;
    router.clone().oneshot(req).await.unwrap()
}

async fn collect(resp: Response) -> Bytes {
    axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
}

fn req(method: &str, path: &str, body: &'static str) -> http::Request<Body> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body))
        .unwrap()
}

fn event(id: &str) -> (Event, oneshot::Receiver<Reply>) {
    let (tx, rx) = oneshot::channel();
    (
        Event {
            request_id: id.into(),
            payload: Bytes::from_static(b"{\"a\":1}"),
            deadline_ms: 123,
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            trace_id: "Root=1-2-3".into(),
            client_context: Some(base64::engine::general_purpose::STANDARD.encode("{}")),
            reply: tx,
        },
        rx,
    )
}

#[tokio::test]
async fn a_call_goes_through_next_and_response() {
    let api = RuntimeApi::new(16, RuntimeApiLimits::default());
    let r = api.router();
    assert_eq!(*api.init.borrow(), InitState::Running);
    let (ev, rx) = event("id-1");
    api.events.send(ev).await.unwrap();
    let resp = call(&r, req("GET", "/2018-06-01/runtime/invocation/next", "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(*api.init.borrow(), InitState::Ready);
    let h = resp.headers();
    assert_eq!(h["lambda-runtime-aws-request-id"], "id-1");
    assert_eq!(h["lambda-runtime-deadline-ms"], "123");
    assert_eq!(h["lambda-runtime-trace-id"], "Root=1-2-3");
    assert_eq!(h["lambda-runtime-client-context"], "{}");
    assert!(h.contains_key("lambda-runtime-invoked-function-arn"));
    assert_eq!(collect(resp).await, "{\"a\":1}");

    // Before answering, `next` is not allowed.
    let resp = call(&r, req("GET", "/2018-06-01/runtime/invocation/next", "")).await;
    assert_eq!(resp.status(), 403);
    // Another id is refused.
    let resp = call(
        &r,
        req("POST", "/2018-06-01/runtime/invocation/other/response", "1"),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(String::from_utf8_lossy(&collect(resp).await).contains("InvalidRequestID"));

    let resp = call(
        &r,
        req("POST", "/2018-06-01/runtime/invocation/id-1/response", "42"),
    )
    .await;
    assert_eq!(resp.status(), 202);
    match rx.await.unwrap() {
        Reply::Response(b) => assert_eq!(b, "42"),
        Reply::Error(e) => panic!("{e:?}"),
    }
    // A second answer is an invalid transition.
    let resp = call(
        &r,
        req("POST", "/2018-06-01/runtime/invocation/id-1/error", "{}"),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(String::from_utf8_lossy(&collect(resp).await).contains("InvalidStateTransition"));
    // Init errors after init are refused.
    let resp = call(&r, req("POST", "/2018-06-01/runtime/init/error", "{}")).await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn errors_and_oversized_responses() {
    let api = RuntimeApi::new(16, RuntimeApiLimits::default());
    let r = api.router();
    let (ev, rx) = event("e1");
    api.events.send(ev).await.unwrap();
    let _ = call(&r, req("GET", "/2018-06-01/runtime/invocation/next", "")).await;
    let request = http::Request::builder()
        .method("POST")
        .uri("/2018-06-01/runtime/invocation/e1/error")
        .header("LAMBDA-RUNTIME-FUNCTION-ERROR-TYPE", "Custom.Kind")
        .body(Body::from("not json"))
        .unwrap();
    assert_eq!(call(&r, request).await.status(), 202);
    match rx.await.unwrap() {
        Reply::Error(e) => {
            assert_eq!(e.error_type, "Custom.Kind");
            assert_eq!(e.message, "not json");
        }
        Reply::Response(_) => panic!("expected an error"),
    }

    let (ev, rx) = event("e2");
    api.events.send(ev).await.unwrap();
    let _ = call(&r, req("GET", "/2018-06-01/runtime/invocation/next", "")).await;
    let resp = call(
        &r,
        req(
            "POST",
            "/2018-06-01/runtime/invocation/e2/response",
            "0123456789abcdefXYZ",
        ),
    )
    .await;
    assert_eq!(resp.status(), 413);
    assert!(String::from_utf8_lossy(&collect(resp).await).contains("RequestEntityTooLarge"));
    match rx.await.unwrap() {
        Reply::Error(e) => assert_eq!(e.error_type, "Function.ResponseSizeTooLarge"),
        Reply::Response(_) => panic!("expected an error"),
    }

    let body = br#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}"#;
    let e = posted_error(&HeaderMap::new(), body);
    assert_eq!(e.error_type, "ValueError");
    assert_eq!(e.message, "boom");
    assert_eq!(&e.body[..], body);
}

#[tokio::test]
async fn init_error_fails_init() {
    let api = RuntimeApi::new(1024, RuntimeApiLimits::default());
    let r = api.router();
    let resp = call(
        &r,
        req(
            "POST",
            "/2018-06-01/runtime/init/error",
            r#"{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}"#,
        ),
    )
    .await;
    assert_eq!(resp.status(), 202);
    match &*api.init.borrow() {
        InitState::Failed(e) => assert_eq!(e.error_type, "Runtime.ImportModuleError"),
        other => panic!("{other:?}"),
    }
    let resp = call(&r, req("POST", "/2018-06-01/runtime/init/error", "{}")).await;
    assert_eq!(resp.status(), 403);
    let resp = call(&r, req("GET", "/2018-06-01/runtime/nope", "")).await;
    assert_eq!(resp.status(), 404);
}
