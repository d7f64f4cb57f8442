//! The Lambda API through the router, with no socket: every request signed with SigV4 as an
//! SDK would sign it, every answer checked for Lambda's shape.

#![allow(clippy::unwrap_used)] // a test that cannot set up should stop loudly

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use stoke_api::{AppState, Presigner};
use stoke_engine::pool::FixedKeepAlive;
use stoke_engine::{Backends, Engine, EngineConfig, InvokerConfig};
use stoke_sandbox::wasm::{WasmBackend, WasmConfig};
use stoke_store::{AccessKey, FsBlobStore, SqliteStore, Store};
use tower::ServiceExt;

struct Api {
    router: Router,
    key: AccessKey,
    /// Kept for the test's length: its background tasks run with it.
    _engine: Engine,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    error_type: Option<String>,
    body: Value,
}

impl Api {
    async fn new() -> Self {
        Self::with_async(stoke_engine::AsyncConfig::default()).await
    }

    async fn with_async(async_config: stoke_engine::AsyncConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::in_memory().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite.clone());
        let (key, _) = store.ensure_default_account().await.unwrap();
        let mut wasm_config = WasmConfig::new(dir.path().join("compiled"));
        wasm_config.pool_slots = 8;
        let wasm: Arc<dyn stoke_sandbox::Backend> =
            Arc::new(WasmBackend::new(wasm_config).unwrap());
        let mut config = EngineConfig::new(
            store,
            Arc::new(sqlite),
            Arc::new(FsBlobStore::open(dir.path().join("blobs")).unwrap()),
            Backends {
                wasm,
                process: None,
            },
            dir.path(),
        );
        config.invoker = InvokerConfig {
            account_concurrency: 4,
            function_concurrency: 4,
            ..InvokerConfig::default()
        };
        config.keep_alive = Arc::new(FixedKeepAlive(Duration::from_secs(60)));
        config.async_queue = async_config;
        let engine = Engine::start(config).await.unwrap();
        let state = AppState::new(
            &engine,
            Presigner::new(b"test-key".to_vec()),
            stoke_api::Budget::default(),
        );
        Self {
            router: stoke_api::router(state),
            key,
            _engine: engine,
            _dir: dir,
        }
    }

    fn signed(
        &self,
        method: &str,
        uri: &str,
        body: Vec<u8>,
        at: SystemTime,
        secret: &str,
    ) -> Request<Body> {
        let identity = Credentials::new(&self.key.access_key_id, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("lambda")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let full = format!("http://localhost{uri}");
        let headers = [("host", "localhost"), ("content-type", "application/json")];
        let signable = SignableRequest::new(
            method,
            full.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        instructions.apply_to_request_http1x(&mut req);
        req
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        assert!(
            resp.headers().contains_key("x-amzn-RequestId"),
            "every answer has a request id"
        );
        let error_type = resp
            .headers()
            .get("x-amzn-ErrorType")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Answer {
            status,
            error_type,
            body,
        }
    }

    async fn call(&self, method: &str, uri: &str, body: Value) -> Answer {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let secret = self.key.secret.clone();
        self.send(self.signed(method, uri, bytes, SystemTime::now(), &secret))
            .await
    }

    async fn create(&self, name: &str, zip: &[u8]) -> Answer {
        self.call(
            "POST",
            "/2015-03-31/functions",
            json!({
                "FunctionName": name,
                "Runtime": "wasm",
                "Role": "arn:aws:iam::123456789012:role/r",
                "Handler": "f.wasm",
                "Code": { "ZipFile": b64(zip) },
            }),
        )
        .await
    }

    /// Waits (by polling, as boto3's waiter does) until the function leaves Pending/InProgress.
    async fn settled(&self, name: &str) -> Value {
        for _ in 0..200 {
            let a = self
                .call(
                    "GET",
                    &format!("/2015-03-31/functions/{name}/configuration"),
                    Value::Null,
                )
                .await;
            if a.body["State"] != "Pending" && a.body["LastUpdateStatus"] != "InProgress" {
                return a.body;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never settled");
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn guest(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/guests/{name}.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    wat::parse_file(path).unwrap()
}

/// The echo guest as `f.wasm`.
fn wasm_zip() -> Vec<u8> {
    zip_of(&[("f.wasm", &guest("echo"))])
}

#[tokio::test]
async fn create_answers_pending_then_the_function_becomes_active() {
    let api = Api::new().await;
    let a = api.create("hello", &wasm_zip()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["State"], "Pending");
    assert_eq!(a.body["StateReasonCode"], "Creating");
    assert_eq!(
        a.body["FunctionArn"],
        format!(
            "arn:aws:lambda:us-east-1:{}:function:hello",
            api.key.account
        )
    );
    let digest = sha2_b64(&wasm_zip());
    assert_eq!(a.body["CodeSha256"], digest);
    let c = api.settled("hello").await;
    assert_eq!(c["State"], "Active");
    assert_eq!(c["LastUpdateStatus"], "Successful");
    assert_ne!(
        c["RevisionId"], a.body["RevisionId"],
        "a state change is a new revision"
    );
}

fn sha2_b64(b: &[u8]) -> String {
    use sha2::Digest;
    b64(&sha2::Sha256::digest(b))
}

#[tokio::test]
async fn a_wasm_handler_missing_from_the_zip_fails_the_function_with_a_reason() {
    let api = Api::new().await;
    let zip = zip_of(&[("other.txt", b"x")]);
    assert_eq!(
        api.create("nohandler", &zip).await.status,
        StatusCode::CREATED
    );
    let c = api.settled("nohandler").await;
    assert_eq!(c["State"], "Failed");
    assert!(c["StateReason"].as_str().unwrap().contains("f.wasm"));
}

#[tokio::test]
async fn a_duplicate_is_a_conflict_and_a_missing_function_is_not_found() {
    let api = Api::new().await;
    api.create("dup", &wasm_zip()).await;
    let a = api.create("dup", &wasm_zip()).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.error_type.as_deref(), Some("ResourceConflictException"));
    assert_eq!(a.body["Type"], "User");
    let a = api
        .call("GET", "/2015-03-31/functions/nope", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error_type.as_deref(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn bad_input_is_refused_with_lambdas_types_and_leaves_nothing_behind() {
    let api = Api::new().await;
    let base = json!({
        "FunctionName": "f", "Runtime": "wasm", "Handler": "f.wasm",
        "Role": "arn:aws:iam::123456789012:role/r", "Code": { "ZipFile": b64(&wasm_zip()) },
    });
    let cases: Vec<(Value, &str)> = vec![
        (json!({"MemorySize": 127}), "ValidationException"),
        (json!({"Timeout": 901}), "ValidationException"),
        (json!({"Architectures": ["sparc"]}), "ValidationException"),
        (json!({"Role": "nope"}), "ValidationException"),
        (json!({"FunctionName": "bad name!"}), "ValidationException"),
        (
            json!({"Runtime": "cobol1"}),
            "InvalidParameterValueException",
        ),
        (
            json!({"Code": {"ZipFile": b64(b"not a zip")}}),
            "InvalidParameterValueException",
        ),
        (
            json!({"Code": {"ZipFile": b64(&zip_of(&[("../evil", b"x")]))}}),
            "InvalidParameterValueException",
        ),
        (
            json!({"Environment": {"Variables": {"BIG": "x".repeat(5000)}}}),
            "InvalidParameterValueException",
        ),
    ];
    for (patch, expected) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let a = api.call("POST", "/2015-03-31/functions", body).await;
        assert_eq!(
            a.error_type.as_deref(),
            Some(expected),
            "{patch}: {:?}",
            a.body
        );
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        if expected == "ValidationException" {
            assert!(
                a.body["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("1 validation error detected: ")
            );
        }
    }
    let list = api.call("GET", "/2015-03-31/functions/", Value::Null).await;
    assert_eq!(list.body["Functions"], json!([]), "nothing was created");
}

#[tokio::test]
async fn malformed_json_gets_lambdas_error_shape() {
    let api = Api::new().await;
    let secret = api.key.secret.clone();
    let req = api.signed(
        "POST",
        "/2015-03-31/functions",
        b"{not json".to_vec(),
        SystemTime::now(),
        &secret,
    );
    let a = api.send(req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.error_type.as_deref(),
        Some("InvalidRequestContentException")
    );
    assert!(a.body["message"].is_string());
}

#[tokio::test]
async fn signatures_are_checked() {
    let api = Api::new().await;
    let unsigned = Request::get("/2015-03-31/functions/")
        .body(Body::empty())
        .unwrap();
    let a = api.send(unsigned).await;
    assert_eq!(
        (a.status, a.error_type.as_deref()),
        (
            StatusCode::FORBIDDEN,
            Some("MissingAuthenticationTokenException")
        )
    );

    let wrong = api.signed(
        "GET",
        "/2015-03-31/functions/",
        vec![],
        SystemTime::now(),
        "wrong-secret",
    );
    let a = api.send(wrong).await;
    assert_eq!(
        (a.status, a.error_type.as_deref()),
        (StatusCode::FORBIDDEN, Some("InvalidSignatureException"))
    );

    let secret = api.key.secret.clone();
    let old = SystemTime::now() - Duration::from_secs(600);
    let a = api
        .send(api.signed("GET", "/2015-03-31/functions/", vec![], old, &secret))
        .await;
    assert_eq!(a.error_type.as_deref(), Some("InvalidSignatureException"));
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired")
    );

    // A body changed after signing no longer matches.
    let mut req = api.signed(
        "POST",
        "/2015-03-31/functions",
        b"{}".to_vec(),
        SystemTime::now(),
        &secret,
    );
    *req.body_mut() = Body::from("{\"FunctionName\":\"x\"}");
    assert_eq!(
        api.send(req).await.error_type.as_deref(),
        Some("InvalidSignatureException")
    );
}

/// A body that says how long it is and never sends a byte.
struct Endless(u64);

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::task::Poll::Pending
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0)
    }
}

#[tokio::test]
async fn ambiguous_or_oversized_requests_are_refused_from_their_headers() {
    let api = Api::new().await;
    let secret = api.key.secret.clone();
    // Two Authorization headers: refused, whichever of them is genuine.
    let mut req = api.signed(
        "GET",
        "/2015-03-31/functions/",
        vec![],
        SystemTime::now(),
        &secret,
    );
    let genuine = req.headers()["authorization"].clone();
    req.headers_mut().append("authorization", genuine);
    let a = api.send(req).await;
    assert_eq!(
        (a.status, a.error_type.as_deref()),
        (StatusCode::FORBIDDEN, Some("IncompleteSignatureException"))
    );
    // Two X-Amz-Date headers: the same.
    let mut req = api.signed(
        "GET",
        "/2015-03-31/functions/",
        vec![],
        SystemTime::now(),
        &secret,
    );
    req.headers_mut().append(
        "x-amz-date",
        http::HeaderValue::from_static("20200101T000000Z"),
    );
    let a = api.send(req).await;
    assert_eq!(
        a.error_type.as_deref(),
        Some("IncompleteSignatureException")
    );

    // A signed invoke whose declared length is over 6 MB is refused before its body is read:
    // the body here never ends, so reading it would hang the test.
    let mut req = api.signed(
        "POST",
        "/2015-03-31/functions/f/invocations",
        vec![],
        SystemTime::now(),
        &secret,
    );
    *req.body_mut() = Body::new(Endless(7 * 1024 * 1024));
    let a = tokio::time::timeout(Duration::from_secs(5), api.send(req))
        .await
        .expect("answered at once");
    assert_eq!(
        (a.status, a.error_type.as_deref()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("RequestTooLargeException")
        )
    );
}

#[tokio::test]
async fn list_pages_with_marker_and_max_items() {
    let api = Api::new().await;
    for n in ["a", "b", "c", "d", "e"] {
        assert_eq!(api.create(n, &wasm_zip()).await.status, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let uri = match &marker {
            Some(m) => format!("/2015-03-31/functions/?MaxItems=2&Marker={m}"),
            None => "/2015-03-31/functions/?MaxItems=2".to_owned(),
        };
        let a = api.call("GET", &uri, Value::Null).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        for f in a.body["Functions"].as_array().unwrap() {
            names.push(f["FunctionName"].as_str().unwrap().to_owned());
        }
        match a.body["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    let a = api
        .call("GET", "/2015-03-31/functions/?MaxItems=0", Value::Null)
        .await;
    assert_eq!(a.error_type.as_deref(), Some("ValidationException"));
}

#[tokio::test]
async fn updates_change_code_and_configuration_and_tags_round_trip() {
    let api = Api::new().await;
    api.create("u", &wasm_zip()).await;
    api.settled("u").await;
    let zip2 = zip_of(&[("f.wasm", &guest("echo")), ("extra", b"2")]);
    let a = api
        .call(
            "PUT",
            "/2015-03-31/functions/u/code",
            json!({"ZipFile": b64(&zip2)}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["LastUpdateStatus"], "InProgress");
    assert_eq!(a.body["CodeSha256"], sha2_b64(&zip2));
    api.settled("u").await;

    let a = api
        .call(
            "PUT",
            "/2015-03-31/functions/u/configuration",
            json!({"Timeout": 30, "RevisionId": "stale"}),
        )
        .await;
    assert_eq!(a.error_type.as_deref(), Some("PreconditionFailedException"));
    let a = api
        .call(
            "PUT",
            "/2015-03-31/functions/u/configuration",
            json!({"Timeout": 30}),
        )
        .await;
    assert_eq!(
        (a.body["Timeout"].as_i64(), a.body["MemorySize"].as_i64()),
        (Some(30), Some(128))
    );
    api.settled("u").await;

    let arn = format!("arn:aws:lambda:us-east-1:{}:function:u", api.key.account);
    let path = format!("/2017-03-31/tags/{}", arn.replace(':', "%3A"));
    let a = api
        .call("POST", &path, json!({"Tags": {"team": "a", "env": "dev"}}))
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let a = api
        .call("DELETE", &format!("{path}?tagKeys=env"), Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = api.call("GET", &path, Value::Null).await;
    assert_eq!(a.body["Tags"], json!({"team": "a"}));

    let a = api
        .call("DELETE", "/2015-03-31/functions/u", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = api
        .call("GET", "/2016-08-19/account-settings/", Value::Null)
        .await;
    assert_eq!(a.body["AccountUsage"]["FunctionCount"], 0);
    let _ = BTreeMap::<String, String>::new();
}

#[tokio::test]
async fn the_code_location_serves_the_zip_without_sigv4_until_tampered_with() {
    let api = Api::new().await;
    api.create("loc", &wasm_zip()).await;
    let a = api
        .call("GET", "/2015-03-31/functions/loc", Value::Null)
        .await;
    let url = a.body["Code"]["Location"].as_str().unwrap().to_owned();
    let path = url.strip_prefix("http://localhost").unwrap().to_owned();
    let resp = api
        .router
        .clone()
        .oneshot(Request::get(&path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .as_ref(),
        wasm_zip().as_slice()
    );
    let last = if path.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &path[..path.len() - 1]);
    let resp = api
        .router
        .clone()
        .oneshot(Request::get(&tampered).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

async fn invoke(
    api: &Api,
    name: &str,
    payload: &[u8],
    headers: &[(&'static str, &str)],
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let secret = api.key.secret.clone();
    let mut req = api.signed(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        payload.to_vec(),
        SystemTime::now(),
        &secret,
    );
    for (k, v) in headers {
        // Unsigned extra headers are fine: SigV4 covers only the ones listed.
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let resp = api.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn deploy(api: &Api, name: &str, guest_name: &str, timeout: u32) {
    let a = api
        .call(
            "POST",
            "/2015-03-31/functions",
            json!({
                "FunctionName": name, "Runtime": "wasm", "Handler": "f.wasm", "Timeout": timeout,
                "Code": { "ZipFile": b64(&zip_of(&[("f.wasm", &guest(guest_name))])) },
            }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(api.settled(name).await["State"], "Active");
}

#[tokio::test]
async fn invoke_returns_the_output_the_log_tail_and_the_request_id() {
    let api = Api::new().await;
    deploy(&api, "echo", "echo", 3).await;
    let (status, h, body) =
        invoke(&api, "echo", br#"{"a":1}"#, &[("x-amz-log-type", "Tail")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, br#"{"a":1}"#);
    assert_eq!(h["X-Amz-Executed-Version"], "$LATEST");
    assert!(!h.contains_key("X-Amz-Function-Error"));
    let id = h["x-amzn-RequestId"].to_str().unwrap().to_owned();
    let tail = base64::engine::general_purpose::STANDARD
        .decode(h["X-Amz-Log-Result"].as_bytes())
        .unwrap();
    let tail = String::from_utf8(tail).unwrap();
    assert!(tail.starts_with(&format!("START RequestId: {id} Version: $LATEST\necho log line\nEND RequestId: {id}\nREPORT RequestId: {id}\tDuration: ")), "{tail}");
    assert!(
        tail.contains("Init Duration: "),
        "the first call is cold: {tail}"
    );
    let (_, h, _) = invoke(&api, "echo", b"{}", &[("x-amz-log-type", "Tail")]).await;
    let tail = base64::engine::general_purpose::STANDARD
        .decode(h["X-Amz-Log-Result"].as_bytes())
        .unwrap();
    assert!(
        !String::from_utf8(tail).unwrap().contains("Init Duration"),
        "the second call is warm"
    );
}

#[tokio::test]
async fn function_errors_answer_200_with_unhandled_and_lambdas_error_body() {
    let api = Api::new().await;
    deploy(&api, "trap", "trap", 3).await;
    deploy(&api, "loop", "loop", 1).await;
    let (status, h, body) = invoke(&api, "trap", b"{}", &[]).await;
    assert_eq!(
        (status, h["X-Amz-Function-Error"].to_str().unwrap()),
        (StatusCode::OK, "Unhandled")
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["errorType"], "Runtime.UnreachableCodeReached");
    let (status, _, body) = invoke(&api, "loop", b"{}", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Task timed out after 1.00 seconds"),
        "{v}"
    );
}

#[tokio::test]
async fn bad_payloads_and_missing_functions_are_refused_as_lambda_refuses_them() {
    let api = Api::new().await;
    deploy(&api, "echo", "echo", 3).await;
    let (status, h, _) = invoke(&api, "echo", b"{not json", &[]).await;
    assert_eq!(
        (status, h["x-amzn-ErrorType"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "InvalidRequestContentException")
    );
    let (status, h, _) = invoke(&api, "echo", &[0xff, 0xfe], &[]).await;
    assert_eq!(
        (status, h["x-amzn-ErrorType"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "InvalidRequestContentException")
    );
    let big = format!("\"{}\"", "x".repeat(6 * 1024 * 1024));
    let (status, h, _) = invoke(&api, "echo", big.as_bytes(), &[]).await;
    assert_eq!(
        (status, h["x-amzn-ErrorType"].to_str().unwrap()),
        (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException")
    );
    let (status, h, _) = invoke(&api, "nope", b"{}", &[]).await;
    assert_eq!(
        (status, h["x-amzn-ErrorType"].to_str().unwrap()),
        (StatusCode::NOT_FOUND, "ResourceNotFoundException")
    );
    let (status, _, _) = invoke(&api, "echo", b"{}", &[("x-amz-invocation-type", "DryRun")]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, h, _) = invoke(
        &api,
        "echo",
        b"{}",
        &[("x-amz-invocation-type", "Sideways")],
    )
    .await;
    assert_eq!(
        (status, h["x-amzn-ErrorType"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "ValidationException")
    );
}

#[tokio::test]
async fn calls_over_the_concurrency_limit_are_throttled_with_429() {
    let api = Api::new().await;
    // Spinners that hold their slots for 5 s: longer than four cold starts take on a loaded
    // machine (a 2 s timeout let the fifth call through in CI once).
    deploy(&api, "loop", "loop", 5).await;
    deploy(&api, "echo", "echo", 3).await;
    // The test server admits 4 calls at once.
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let api_router = api.router.clone();
            let secret = api.key.secret.clone();
            let req = api.signed(
                "POST",
                "/2015-03-31/functions/loop/invocations",
                b"{}".to_vec(),
                SystemTime::now(),
                &secret,
            );
            tokio::spawn(async move { api_router.oneshot(req).await.unwrap().status() })
        })
        .collect();
    // The spinners hold their slots for their 5 s timeout; on a loaded machine they may take a
    // while to be admitted, so the fifth call is retried (each try that gets in lets its slot go
    // at once) until one finds the four slots taken.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(4000);
    let (status, h, body) = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = invoke(&api, "echo", b"{}", &[]).await;
        if answer.0 == StatusCode::TOO_MANY_REQUESTS || tokio::time::Instant::now() > deadline {
            break answer;
        }
    };
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["x-amzn-ErrorType"], "TooManyRequestsException");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["Reason"], "ConcurrentInvocationLimitExceeded");
    for s in spinners {
        assert_eq!(s.await.unwrap(), StatusCode::OK);
    }
    let (status, _, _) = invoke(&api, "echo", b"{}", &[]).await;
    assert_eq!(status, StatusCode::OK, "the slots came back");
    let metrics = api
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        metrics
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("stoke_throttles_total{account="), "{text}");
    assert!(text.contains("outcome=\"timeout\""), "{text}");
}

/// A module that answers `"<text>"` (a JSON string) whatever the event.
fn answering(text: &str) -> Vec<u8> {
    let out = format!("\"{text}\"");
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{out}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        out = out.replace('"', "\\\""),
        len = out.len()
    );
    wat::parse_str(wat).unwrap()
}

async fn update_code(api: &Api, name: &str, module: &[u8], publish: bool) -> Answer {
    api.call(
        "PUT",
        &format!("/2015-03-31/functions/{name}/code"),
        json!({ "ZipFile": b64(&zip_of(&[("f.wasm", module)])), "Publish": publish }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_under_calls_never_fail_and_a_bad_one_leaves_the_old_code_serving() {
    let api = Arc::new(Api::new().await);
    let a = api
        .call(
            "POST",
            "/2015-03-31/functions",
            json!({
                "FunctionName": "live", "Runtime": "wasm", "Handler": "f.wasm",
                "Code": { "ZipFile": b64(&zip_of(&[("f.wasm", &answering("v0"))])) },
            }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    api.settled("live").await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..3 {
        let (api, stop) = (Arc::clone(&api), Arc::clone(&stop));
        callers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, h, body) = invoke(&api, "live", b"{}", &[]).await;
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
                assert!(!h.contains_key("X-Amz-Function-Error"));
                answers.push(String::from_utf8(body).unwrap());
            }
            answers
        }));
    }
    for v in ["v1", "v2"] {
        let a = update_code(&api, "live", &answering(v), false).await;
        assert_eq!(a.body["LastUpdateStatus"], "InProgress", "{:?}", a.body);
        assert_eq!(api.settled("live").await["LastUpdateStatus"], "Successful");
        let (_, _, body) = invoke(&api, "live", b"{}", &[]).await;
        assert_eq!(
            body,
            format!("\"{v}\"").as_bytes(),
            "settled means the new code answers"
        );
    }
    // Code that does not compile: the update fails, the old code keeps answering.
    update_code(&api, "live", b"\0asm\x01\0\0\0garbage", false).await;
    let settled = api.settled("live").await;
    assert_eq!(settled["LastUpdateStatus"], "Failed", "{settled:?}");
    assert!(settled["LastUpdateStatusReason"].as_str().unwrap() != "");
    let (status, _, body) = invoke(&api, "live", b"{}", &[]).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"\"v2\""[..]));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for c in callers {
        for answer in c.await.unwrap() {
            assert!(
                ["\"v0\"", "\"v1\"", "\"v2\""].contains(&answer.as_str()),
                "{answer}"
            );
            total += 1;
        }
    }
    assert!(total > 10, "the callers ran ({total} calls)");
}

#[tokio::test]
async fn versions_are_immutable_and_aliases_route_by_weight() {
    let api = Api::new().await;
    deploy(&api, "ver", "echo", 3).await;
    let v1 = api
        .call("POST", "/2015-03-31/functions/ver/versions", json!({}))
        .await;
    assert_eq!(v1.status, StatusCode::CREATED, "{:?}", v1.body);
    assert_eq!(v1.body["Version"], "1");
    assert!(v1.body["FunctionArn"].as_str().unwrap().ends_with(":ver:1"));
    // Nothing changed: the same version again.
    let again = api
        .call("POST", "/2015-03-31/functions/ver/versions", json!({}))
        .await;
    assert_eq!(again.body["Version"], "1");

    let a = update_code(&api, "ver", &answering("two"), true).await;
    assert_eq!(a.body["Version"], "2", "{:?}", a.body);
    api.settled("ver").await;
    let v2 = api
        .call(
            "GET",
            "/2015-03-31/functions/ver/configuration?Qualifier=2",
            Value::Null,
        )
        .await;
    assert_eq!(v2.body["State"], "Active", "{:?}", v2.body);

    let (_, h, body) = invoke(&api, "ver:1", br#"{"x":1}"#, &[]).await;
    assert_eq!(
        (
            h["X-Amz-Executed-Version"].to_str().unwrap(),
            body.as_slice()
        ),
        ("1", &br#"{"x":1}"#[..])
    );

    let bad = api
        .call(
            "POST",
            "/2015-03-31/functions/ver/aliases",
            json!({ "Name": "live", "FunctionVersion": "1",
                    "RoutingConfig": { "AdditionalVersionWeights": { "2": 0.5, "3": 0.1 } } }),
        )
        .await;
    assert_eq!(
        bad.error_type.as_deref(),
        Some("InvalidParameterValueException")
    );
    let created = api
        .call(
            "POST",
            "/2015-03-31/functions/ver/aliases",
            json!({ "Name": "live", "FunctionVersion": "1",
                    "RoutingConfig": { "AdditionalVersionWeights": { "2": 0.25 } } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let mut ran_2 = 0;
    for _ in 0..400 {
        let (status, h, _) = invoke(&api, "ver:live", b"{}", &[]).await;
        assert_eq!(status, StatusCode::OK);
        if h["X-Amz-Executed-Version"] == "2" {
            ran_2 += 1;
        }
    }
    assert!((60..=140).contains(&ran_2), "{ran_2} of 400 ran version 2");

    let in_use = api
        .call(
            "DELETE",
            "/2015-03-31/functions/ver?Qualifier=1",
            Value::Null,
        )
        .await;
    assert_eq!(
        in_use.error_type.as_deref(),
        Some("ResourceConflictException")
    );
    let rolled = api
        .call(
            "PUT",
            "/2015-03-31/functions/ver/aliases/live",
            json!({ "FunctionVersion": "2", "RoutingConfig": {} }),
        )
        .await;
    assert_eq!(rolled.body["FunctionVersion"], "2", "{:?}", rolled.body);
    let back = api
        .call(
            "POST",
            "/stoke/2026-11-01/functions/ver/aliases/live/rollback",
            Value::Null,
        )
        .await;
    assert_eq!(back.body["FunctionVersion"], "1", "{:?}", back.body);
    assert_eq!(
        back.body["RoutingConfig"]["AdditionalVersionWeights"]["2"],
        0.25
    );
}

#[tokio::test]
async fn an_event_is_accepted_with_202_and_a_failing_one_reaches_the_dead_letters() {
    let api = Api::new().await;
    deploy(&api, "exit1", "exit1", 3).await;
    let (status, _, _) = invoke(&api, "nope", b"{}", &[("x-amz-invocation-type", "Event")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let big = vec![b' '; 1024 * 1024 + 1];
    let (status, h, _) = invoke(&api, "exit1", &big, &[("x-amz-invocation-type", "Event")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h["x-amzn-ErrorType"], "RequestTooLargeException");

    // No retries: the first failure is the last, and with no destination it is a dead letter.
    let a = api
        .call(
            "PUT",
            "/2019-09-25/functions/exit1/event-invoke-config",
            json!({ "MaximumRetryAttempts": 0 }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["MaximumRetryAttempts"], 0);
    let (status, h, body) =
        invoke(&api, "exit1", b"{}", &[("x-amz-invocation-type", "Event")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body.is_empty());
    let id = h["x-amzn-RequestId"].to_str().unwrap().to_owned();
    let mut letters = Value::Null;
    for _ in 0..200 {
        letters = api
            .call("GET", "/stoke/2026-11-01/dead-letters", Value::Null)
            .await
            .body;
        if letters["DeadLetters"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let l = &letters["DeadLetters"][0];
    assert_eq!(l["RequestId"], id.as_str(), "{letters}");
    assert_eq!(l["Condition"], "RetriesExhausted");
    assert_eq!(l["ApproximateInvokeCount"], 1);
    assert_eq!(l["ErrorType"], "Runtime.ExitError");
}

#[tokio::test]
async fn a_throttled_event_backs_off_until_its_age_runs_out() {
    // One second of MaximumEventAgeInSeconds lasts 5 ms: the minimum age (60) is 300 ms.
    let api = Api::with_async(stoke_engine::AsyncConfig {
        age_unit: Duration::from_millis(5),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        ..stoke_engine::AsyncConfig::default()
    })
    .await;
    deploy(&api, "echo", "echo", 3).await;
    let a = api
        .call(
            "PUT",
            "/2017-10-31/functions/echo/concurrency",
            json!({ "ReservedConcurrentExecutions": 0 }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let a = api
        .call(
            "PUT",
            "/2019-09-25/functions/echo/event-invoke-config",
            json!({ "MaximumEventAgeInSeconds": 60 }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let started = std::time::Instant::now();
    let (status, h, _) = invoke(&api, "echo", b"{}", &[("x-amz-invocation-type", "Event")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = h["x-amzn-RequestId"].to_str().unwrap().to_owned();
    let mut letters = Value::Null;
    for _ in 0..300 {
        letters = api
            .call("GET", "/stoke/2026-11-01/dead-letters", Value::Null)
            .await
            .body;
        if letters["DeadLetters"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "dead before its age ran out"
    );
    let l = &letters["DeadLetters"][0];
    assert_eq!(l["RequestId"], id.as_str(), "{letters}");
    assert_eq!(l["Condition"], "EventAgeExceeded");
    // Throttled and retried several times (backoff 10, 20, 40, 40 … ms), never run.
    assert!(l["ApproximateInvokeCount"].as_u64().unwrap() >= 3, "{l}");
    assert!(l["ErrorType"].is_null());

    // Show and redrive; with the throttle gone it runs and leaves the dead letters.
    let n = l["Id"].as_i64().unwrap();
    let shown = api
        .call(
            "GET",
            &format!("/stoke/2026-11-01/dead-letters/{n}"),
            Value::Null,
        )
        .await;
    assert_eq!(shown.body["Payload"], "{}");
    let gone = api
        .call("GET", "/stoke/2026-11-01/dead-letters/x", Value::Null)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let a = api
        .call(
            "DELETE",
            "/2017-10-31/functions/echo/concurrency",
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let r = api
        .call(
            "POST",
            &format!("/stoke/2026-11-01/dead-letters/{n}/redrive"),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["RequestId"], id.as_str());
    let again = api
        .call(
            "POST",
            &format!("/stoke/2026-11-01/dead-letters/{n}/redrive"),
            Value::Null,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}
