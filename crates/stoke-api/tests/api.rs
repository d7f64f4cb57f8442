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
use stoke_api::{AppState, Authenticator, Presigner};
use stoke_engine::prepare::HandlerCheck;
use stoke_engine::{ControlPlane, Layout};
use stoke_store::{AccessKey, Blobs, SqliteStore, Store};
use tower::ServiceExt;

struct Api {
    router: Router,
    key: AccessKey,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    error_type: Option<String>,
    body: Value,
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let (key, _) = store.ensure_default_account().await.unwrap();
        let control = ControlPlane::new(
            Arc::clone(&store),
            Blobs::open(dir.path().join("blobs")).unwrap(),
            Layout::under(dir.path()),
            "us-east-1",
            Arc::new(HandlerCheck),
        )
        .unwrap();
        let state = AppState {
            control,
            auth: Authenticator::new(store),
            presigner: Presigner::new(b"test-key".to_vec()),
        };
        Self {
            router: stoke_api::router(state),
            key,
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

fn wasm_zip() -> Vec<u8> {
    zip_of(&[("f.wasm", b"\0asm\x01\0\0\0")])
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
    let zip2 = zip_of(&[("f.wasm", b"\0asm\x01\0\0\0"), ("extra", b"2")]);
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
