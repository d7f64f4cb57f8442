//! A wasi:http proxy component that answers every request with `200` and the request's body:
//! the same work as the bench's echo function (read the event, write it back), served by
//! `wasmtime serve` so that `stoke bench` can put Wasmtime's own HTTP server beside Stoke's
//! warm wasm call.

use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

wasi::http::proxy::export!(Echo);

struct Echo;

impl wasi::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let Some(body) = read_body(&request) else {
            let response = OutgoingResponse::new(Fields::new());
            let _ = response.set_status_code(400);
            ResponseOutparam::set(out, Ok(response));
            return;
        };
        // A length, as Stoke's answer has, rather than a chunked body.
        let headers = Fields::new();
        let _ = headers.set("content-length", &[body.len().to_string().into_bytes()]);
        let response = OutgoingResponse::new(headers);
        let Ok(outgoing) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = outgoing.write() {
            // At most 4096 bytes per blocking write, as the streams interface allows.
            for chunk in body.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    return;
                }
            }
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

/// The whole request body, or `None` when it cannot be read.
fn read_body(request: &IncomingRequest) -> Option<Vec<u8>> {
    let incoming = request.consume().ok()?;
    let mut body = Vec::new();
    {
        let stream = incoming.stream().ok()?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(bytes) => body.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(_)) => return None,
            }
        }
    }
    IncomingBody::finish(incoming);
    Some(body)
}
