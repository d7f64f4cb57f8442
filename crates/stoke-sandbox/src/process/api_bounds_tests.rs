//! Tests of the Runtime API's bounds on real sockets: the connection cap, the head, idle and
//! body timeouts (and the exemption of a pending `next` and of the call's connection), the
//! shared body budget, and bodies answered unread.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

use super::super::api::{Event, Reply, RuntimeApi};
use super::*;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

async fn start(limits: RuntimeApiLimits, max: usize) -> (RuntimeApi, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = RuntimeApi::new(max, limits);
    // Ends with the test's runtime.
    let _serving = api.serve(listener);
    (api, addr)
}

fn event(id: &str, in_ms: u64) -> (Event, oneshot::Receiver<Reply>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let (tx, rx) = oneshot::channel();
    let ev = Event {
        request_id: id.into(),
        payload: Bytes::from_static(b"{}"),
        deadline_ms: u64::try_from(now.as_millis()).unwrap() + in_ms,
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
        trace_id: "Root=1-2-3".into(),
        client_context: None,
        reply: tx,
    };
    (ev, rx)
}

async fn connect(addr: SocketAddr, head: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    c
}

fn post(path: &str, length: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n")
}

const NEXT: &str = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";

/// One answer's head (and as much of its body as came with it), within `within`.
async fn answer(c: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    match tokio::time::timeout(within, read).await {
        Ok(true) => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

/// Whether the server closes the connection within `within`.
async fn closed(c: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    let until = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, c.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn status(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let limits = RuntimeApiLimits {
        max_connections: 2,
        ..RuntimeApiLimits::default()
    };
    let (_api, addr) = start(limits, 1024).await;
    let nope = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut a = connect(addr, nope).await;
    let mut b = connect(addr, nope).await;
    let s = Duration::from_secs(2);
    assert_eq!(status(&answer(&mut a, s).await.unwrap()), "404");
    assert_eq!(status(&answer(&mut b, s).await.unwrap()), "404");
    let mut c = connect(addr, nope).await;
    assert!(closed(&mut c, s).await, "a third connection is closed");
    // Once one goes, another is served.
    drop(a);
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let mut d = connect(addr, nope).await;
        if let Some(head) = answer(&mut d, s).await {
            assert_eq!(status(&head), "404");
            break;
        }
        assert!(Instant::now() < until, "no slot came free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn partial_heads_and_idle_connections_time_out_but_a_pending_next_does_not() {
    let limits = RuntimeApiLimits {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..RuntimeApiLimits::default()
    };
    let (api, addr) = start(limits, 1024).await;
    let s = Duration::from_secs(3);
    let mut partial = connect(addr, "GET /2018-06-01/runt").await;
    let mut idle = connect(addr, "").await;
    let mut runtime = connect(addr, NEXT).await;
    assert!(closed(&mut partial, s).await, "a partial head times out");
    assert!(closed(&mut idle, s).await, "an idle connection times out");
    // The long poll outlived both timeouts; now an event comes.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (ev, rx) = event("id-1", 10_000);
    api.events.send(ev).await.unwrap();
    let head = answer(&mut runtime, s).await.unwrap();
    assert_eq!(status(&head), "200", "{head}");
    assert!(
        head.contains("lambda-runtime-aws-request-id: id-1"),
        "{head}"
    );
    // The function runs past the idle timeout: the runtime's connection stays open.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let path = "/2018-06-01/runtime/invocation/id-1/response";
    runtime.write_all(post(path, 2).as_bytes()).await.unwrap();
    runtime.write_all(b"42").await.unwrap();
    let head = answer(&mut runtime, s).await.unwrap();
    assert_eq!(status(&head), "202", "{head}");
    match rx.await.unwrap() {
        Reply::Response(b) => assert_eq!(b, "42"),
        Reply::Error(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn a_slow_body_is_408_and_leaves_the_call_unanswered() {
    let limits = RuntimeApiLimits {
        body_timeout: Duration::from_millis(300),
        ..RuntimeApiLimits::default()
    };
    let (api, addr) = start(limits, 1024).await;
    let s = Duration::from_secs(3);
    let (ev, rx) = event("id-2", 10_000);
    api.events.send(ev).await.unwrap();
    let mut runtime = connect(addr, NEXT).await;
    assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "200");
    let path = "/2018-06-01/runtime/invocation/id-2/response";
    let mut slow = connect(addr, &post(path, 100)).await;
    slow.write_all(b"0123456789").await.unwrap();
    let head = answer(&mut slow, s).await.unwrap();
    assert_eq!(status(&head), "408", "{head}");
    assert!(closed(&mut slow, s).await);
    // The call can still be answered.
    runtime.write_all(post(path, 1).as_bytes()).await.unwrap();
    runtime.write_all(b"7").await.unwrap();
    assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "202");
    assert!(matches!(rx.await.unwrap(), Reply::Response(b) if b == "7"));
}

#[tokio::test]
async fn bodies_wait_for_room_in_the_sandboxs_budget() {
    let limits = RuntimeApiLimits {
        body_budget_bytes: 1500,
        max_error_bytes: 500,
        ..RuntimeApiLimits::default()
    };
    let (api, addr) = start(limits, 1000).await;
    let s = Duration::from_secs(3);
    let (ev, rx) = event("id-3", 10_000);
    api.events.send(ev).await.unwrap();
    let mut runtime = connect(addr, NEXT).await;
    assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "200");
    let path = "/2018-06-01/runtime/invocation/id-3/response";
    let mut hog = connect(addr, &post(path, 1000)).await;
    hog.write_all(&[b'x'; 999]).await.unwrap();
    let until = Instant::now() + s;
    while api.budget_available() != 500 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        api.budget_available(),
        500,
        "its declared 1000 bytes reserved"
    );
    // 600 more do not fit: the body waits.
    let mut second = connect(addr, &post(path, 600)).await;
    second.write_all(&[b'y'; 600]).await.unwrap();
    assert!(
        answer(&mut second, Duration::from_millis(300))
            .await
            .is_none()
    );
    assert!(api.budget_available() <= 500);
    // The hog goes: its room is given back and the second body goes through.
    drop(hog);
    assert_eq!(status(&answer(&mut second, s).await.unwrap()), "202");
    match rx.await.unwrap() {
        Reply::Response(b) => assert_eq!(b.len(), 600),
        Reply::Error(e) => panic!("{e:?}"),
    }
    assert_eq!(api.budget_available(), 1500, "handed on: nothing counted");
}

#[tokio::test]
async fn oversized_and_refused_bodies_are_answered_unread() {
    let (api, addr) = start(RuntimeApiLimits::default(), 1000).await;
    let s = Duration::from_secs(3);
    let (ev, rx) = event("id-4", 10_000);
    api.events.send(ev).await.unwrap();
    let mut runtime = connect(addr, NEXT).await;
    assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "200");
    // Another id, with a large body that is never sent: refused at once.
    let other = "/2018-06-01/runtime/invocation/other/response";
    let mut c = connect(addr, &post(other, 5_000_000)).await;
    let head = answer(&mut c, s).await.unwrap();
    assert_eq!(status(&head), "400", "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // Declared over the limit: 413 without reading, and the call fails as on Lambda.
    let path = "/2018-06-01/runtime/invocation/id-4/response";
    let mut c = connect(addr, &post(path, 7000)).await;
    assert_eq!(status(&answer(&mut c, s).await.unwrap()), "413");
    match rx.await.unwrap() {
        Reply::Error(e) => assert_eq!(e.error_type, "Function.ResponseSizeTooLarge"),
        Reply::Response(_) => panic!("expected an error"),
    }
    assert_eq!(api.budget_available(), 1024 * 1024 * 13);
}
