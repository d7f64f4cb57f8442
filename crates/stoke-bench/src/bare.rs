//! A bare hyper HTTP/1.1 server in the bench's process, on its own tokio runtime and port,
//! that reads each request whole and answers a canned copy of a real Stoke answer (status,
//! headers, body): the floor under any HTTP API on this machine.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The answer the bare server repeats.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Canned {
    /// A copy of a real answer, without the headers hyper writes itself.
    pub fn from_answer(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Self {
        let mut headers = headers.clone();
        for name in [
            http::header::CONTENT_LENGTH,
            http::header::DATE,
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
        ] {
            headers.remove(name);
        }
        Self {
            status,
            headers,
            body,
        }
    }

    fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// A bare hyper server on its own runtime; stops when dropped.
pub struct BareServer {
    /// Where it listens.
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for BareServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl BareServer {
    /// Starts the server with `threads` worker threads, answering `canned` to every request.
    pub fn start(canned: Canned, threads: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("bench-bare-server")
            .enable_io()
            .enable_time()
            .build()
            .context("starting the bare server's runtime")?;
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            let _inside = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let canned = Arc::new(canned);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, most likely: let some close.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let canned = Arc::clone(&canned);
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let canned = Arc::clone(&canned);
                            async move {
                                // Read the request whole, as Stoke does before it checks the signature.
                                request.into_body().collect().await?;
                                Ok::<_, hyper::Error>(canned.response())
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            runtime: Some(runtime),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answers_drop_the_headers_hyper_writes() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, "2".parse().expect("value"));
        headers.insert(http::header::DATE, "x".parse().expect("value"));
        headers.insert("x-amz-executed-version", "$LATEST".parse().expect("value"));
        let canned = Canned::from_answer(StatusCode::OK, &headers, Bytes::from_static(b"{}"));
        assert_eq!(canned.headers.len(), 1);
        let response = canned.response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-amz-executed-version"], "$LATEST");
    }

    #[tokio::test]
    async fn the_bare_server_answers_the_canned_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-requestid", "r-1".parse().expect("value"));
        let server = BareServer::start(
            Canned::from_answer(StatusCode::OK, &headers, Bytes::from_static(b"{\"a\":1}")),
            1,
        )
        .expect("starts");
        let mut conn = crate::load::Conn::open(server.addr)
            .await
            .expect("connects");
        for _ in 0..2 {
            let request = http::Request::post("/x")
                .header("host", "localhost")
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("request");
            let answer = conn.send(request).await.expect("answer");
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.headers["x-amzn-requestid"], "r-1");
            assert_eq!(answer.body, Bytes::from_static(b"{\"a\":1}"));
        }
    }
}
