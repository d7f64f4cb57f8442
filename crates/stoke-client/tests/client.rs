//! The client against a real server: Stoke's API router (the engine, an in-memory SQLite
//! store, the wasm backend) served on a loopback listener, as `stoke serve` serves it, and
//! called over TCP with signed requests: create, wait until Active, invoke, list, delete; and
//! the errors a caller sees (a function that is gone, a key the server refuses).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Url;
use serde_json::json;
use stoke_api::{AppState, Budget, ListenConfig, Presigner};
use stoke_client::{ClientError, Credentials, InvokeRequest, LambdaClient};
use stoke_engine::pool::FixedKeepAlive;
use stoke_engine::{Backends, Engine, EngineConfig};
use stoke_sandbox::wasm::{WasmBackend, WasmConfig};
use stoke_store::{AccessKey, FsBlobStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const REGION: &str = "us-east-1";

/// The API on a loopback port, stopped when dropped.
struct TestServer {
    endpoint: Url,
    key: AccessKey,
    _stop: oneshot::Sender<()>,
    /// The engine and its background tasks, kept for the server's life.
    _engine: Engine,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = SqliteStore::in_memory().await.expect("store");
        let store: Arc<dyn Store> = Arc::new(sqlite.clone());
        let (key, _) = store.ensure_default_account().await.expect("account");
        let mut wasm_config = WasmConfig::new(dir.path().join("compiled"));
        // A small pool: the test makes one function.
        wasm_config.pool_slots = 4;
        let wasm: Arc<dyn stoke_sandbox::Backend> =
            Arc::new(WasmBackend::new(wasm_config).expect("wasm backend"));
        let mut config = EngineConfig::new(
            store,
            Arc::new(sqlite),
            Arc::new(FsBlobStore::open(dir.path().join("blobs")).expect("blobs")),
            Backends {
                wasm,
                process: None,
            },
            dir.path(),
        );
        config.keep_alive = Arc::new(FixedKeepAlive(Duration::from_secs(60)));
        let engine = Engine::start(config).await.expect("engine");
        let state = AppState::new(
            &engine,
            Presigner::new(b"client-test".to_vec()),
            Budget::default(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint =
            Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(stoke_api::serve(
            listener,
            state,
            ListenConfig::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            endpoint,
            key,
            _stop: stop,
            _engine: engine,
            _dir: dir,
        }
    }

    /// A client signing with `secret` for the server's access key.
    fn client_with(&self, secret: &str) -> LambdaClient {
        let credentials = Credentials {
            access_key_id: self.key.access_key_id.clone(),
            secret_access_key: secret.to_owned(),
            session_token: None,
            source: "the test".to_owned(),
        };
        LambdaClient::new(self.endpoint.clone(), REGION.to_owned(), credentials).expect("client")
    }

    fn client(&self) -> LambdaClient {
        self.client_with(&self.key.secret)
    }
}

/// The tests' echo guest (its event back on stdout), zipped as `echo.wasm`.
fn echo_zip() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/guests/echo.wat");
    let wasm = wat::parse_file(path).expect("echo.wat compiles");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("echo.wasm", zip::write::SimpleFileOptions::default())
        .expect("zip entry");
    zip.write_all(&wasm).expect("zip write");
    let bytes = zip.finish().expect("zip").into_inner();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn creates_invokes_lists_and_deletes_a_function() {
    let server = TestServer::start().await;
    let client = server.client();
    let created = client
        .create_function(
            &json!({
                "FunctionName": "echo",
                "Runtime": "wasm",
                "Role": stoke_client::DEFAULT_ROLE,
                "Handler": "echo.wasm",
                "Code": { "ZipFile": echo_zip() },
            }),
            None,
        )
        .await
        .expect("CreateFunction");
    assert_eq!(created.function_name, "echo");
    assert!(
        created.function_arn.ends_with(":function:echo"),
        "{created:?}"
    );

    let ready = stoke_client::wait_ready(&client, "echo")
        .await
        .expect("becomes Active");
    assert_eq!(ready.state.as_deref(), Some("Active"));

    let output = client
        .invoke(&InvokeRequest {
            name: "echo",
            qualifier: None,
            invocation_type: "RequestResponse",
            log_tail: true,
            payload: Some(br#"{"hello":"client"}"#.to_vec()),
        })
        .await
        .expect("Invoke");
    assert_eq!(output.status, 200);
    assert_eq!(output.function_error, None);
    assert_eq!(&output.payload[..], br#"{"hello":"client"}"#);
    let tail = output.log_result.expect("a log tail was asked for");
    let log = base64::engine::general_purpose::STANDARD
        .decode(tail)
        .expect("base64");
    assert!(
        String::from_utf8_lossy(&log).contains("REPORT RequestId:"),
        "the tail ends with the REPORT line"
    );

    let page = client.list_functions(None, None).await.expect("List");
    let names: Vec<&str> = page
        .functions
        .iter()
        .map(|f| f.function_name.as_str())
        .collect();
    assert_eq!(names, ["echo"]);

    client
        .delete_function("echo")
        .await
        .expect("DeleteFunction");
    let gone = client.get_function("echo").await.expect_err("deleted");
    let api = gone.api().expect("an API error");
    assert!(api.is_not_found(), "{api:?}");
    assert_eq!(api.error_type, "ResourceNotFoundException");
    assert_eq!(api.status, 404);
}

#[tokio::test]
async fn a_refused_key_is_named_in_the_error() {
    let server = TestServer::start().await;
    let error = server
        .client_with("not-the-secret")
        .list_functions(None, None)
        .await
        .expect_err("refused");
    let ClientError::Api { error, hint } = &error else {
        panic!("not an API error: {error:?}");
    };
    assert_eq!(error.status, 403);
    let hint = hint.as_deref().expect("a hint on a 403");
    assert!(
        hint.contains(&server.key.access_key_id) && hint.contains("the test"),
        "{hint}"
    );
}
