//! # stoke-guest: Stoke WebAssembly functions as plain functions from JSON to JSON
//!
//! A Stoke function of runtime `wasm` is a WASI preview 1 command (`wasm32-wasip1`). Stoke runs
//! it once per call in a fresh instance: the event arrives on stdin, the result leaves on stdout,
//! logs go to stderr, and the context of the call (function name, request id, deadline, …) is in
//! environment variables. Exit code 0 is success; a non-zero exit is a function error, and if
//! stdout then holds a JSON object with `errorMessage` (and `errorType`), that object is the
//! error the caller sees (`X-Amz-Function-Error: Unhandled`).
//!
//! This crate wraps that contract:
//!
//! ```no_run
//! use stoke_guest::{Context, Error, Value, json};
//!
//! fn main() {
//!     stoke_guest::run(|event: Value, ctx: &Context| -> Result<Value, Error> {
//!         let name = event["name"].as_str().unwrap_or("world");
//!         stoke_guest::log!("request {} says hello to {name}", ctx.aws_request_id);
//!         Ok(json!({ "message": format!("Hello, {name}!") }))
//!     })
//! }
//! ```
//!
//! - [`run`] reads the event from stdin, deserialises it (any `serde` type, or [`Value`]), calls
//!   the handler with a [`Context`], writes the serialised result to stdout and exits 0. On
//!   `Err(`[`Error`]`)` it writes `{"errorMessage": …, "errorType": …}` and exits with code 1.
//!   A panic becomes the same kind of error (`errorType` `Panic`): on `wasm32-wasip1` a panic
//!   aborts (it cannot be caught), so [`run`] installs a panic hook that writes the error and
//!   exits 1 before the abort would turn into a trap.
//! - [`log!`] writes a line to stderr: it appears in the call's log (`LogType=Tail`, `stoke logs`,
//!   CloudWatch Logs' `FilterLogEvents`) between the `START` and `END` lines. Never print to
//!   stdout yourself: stdout is the result.
//! - [`invoke`] calls another function synchronously through the host imports of the `stoke`
//!   module (the trace context is carried along by the host) and returns its JSON answer, or an
//!   [`InvokeError`]: the callee failed ([`InvokeError::Function`]) or the call was refused
//!   ([`InvokeError::Refused`], e.g. `ResourceNotFoundException`).
//!
//! # Environment variables read into [`Context`]
//!
//! | field | variable |
//! |---|---|
//! | `function_name` | `AWS_LAMBDA_FUNCTION_NAME` |
//! | `function_version` | `AWS_LAMBDA_FUNCTION_VERSION` |
//! | `memory_limit_in_mb` | `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` |
//! | `region` | `AWS_REGION` |
//! | `log_group_name` | `AWS_LAMBDA_LOG_GROUP_NAME` |
//! | `log_stream_name` | `AWS_LAMBDA_LOG_STREAM_NAME` |
//! | `xray_trace_id` | `_X_AMZN_TRACE_ID` |
//! | `aws_request_id` | `STOKE_REQUEST_ID` |
//! | `deadline_ms` | `STOKE_DEADLINE_MS` (Unix time, milliseconds) |
//! | `invoked_function_arn` | `STOKE_INVOKED_FUNCTION_ARN` |
//! | `client_context` | `STOKE_CLIENT_CONTEXT` (the caller's `X-Amz-Client-Context`: base64 of JSON) |
//!
//! The `STOKE_*` variables carry what Lambda passes in the Runtime API's headers instead.
//!
//! # The host imports (module `stoke`)
//!
//! ```text
//! invoke(name_ptr: i32, name_len: i32, payload_ptr: i32, payload_len: i32) -> i64
//! result(ptr: i32, len: i32) -> i32
//! ```
//!
//! `invoke` answers `status << 32 | len`: status 0 (success: the bytes are the callee's result),
//! 1 (the callee failed: its error JSON) or 2 (the call was refused: `{"errorType",
//! "errorMessage"}` as Lambda's API answers). `result` then copies the `len` bytes of that answer
//! into guest memory and returns how many it copied (-1 if there is no answer). On any target
//! other than `wasm32` the imports do not exist, and [`invoke`] returns
//! [`InvokeError::Unavailable`], so code using this crate builds and unit-tests on the host.
//!
//! # Building
//!
//! ```text
//! rustup target add wasm32-wasip1
//! cargo build --release --target wasm32-wasip1
//! ```
//!
//! Zip the `.wasm` and deploy it with `Runtime` `wasm` and `Handler` set to the file's name in
//! the zip (see `examples/README.md`).

#![warn(missing_docs)]

use std::fmt;
use std::io::{Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use serde_json::{self, Value, json};

/// The `errorType` of a panic.
pub const PANIC_ERROR_TYPE: &str = "Panic";
/// The `errorType` when the event does not deserialise into the handler's type.
pub const UNMARSHAL_ERROR_TYPE: &str = "Runtime.UnmarshalError";
/// The `errorType` when the handler's result does not serialise.
pub const MARSHAL_ERROR_TYPE: &str = "Runtime.MarshalError";
/// The longest function name (or ARN, with qualifier) the host accepts in [`invoke`].
pub const MAX_INVOKE_NAME_BYTES: usize = 256;
/// The largest payload the host accepts in [`invoke`] (Lambda's 6 MB).
pub const MAX_INVOKE_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Writes a line to the function's log (stderr): `log!("x = {x}")` is `eprintln!("x = {x}")`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        ::std::eprintln!($($arg)*)
    };
}

// ---------------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------------

/// The context of one call, as Lambda's: read from the environment by [`Context::from_env`].
///
/// Missing or malformed variables leave a field empty (or zero); see the crate documentation
/// for the variable behind each field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
    /// The version that runs, e.g. `$LATEST` (`AWS_LAMBDA_FUNCTION_VERSION`).
    pub function_version: String,
    /// The function's `MemorySize` in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub memory_limit_in_mb: u32,
    /// The ARN the caller invoked (`STOKE_INVOKED_FUNCTION_ARN`).
    pub invoked_function_arn: String,
    /// This call's request id (`STOKE_REQUEST_ID`): the id of its `START`/`REPORT` log lines.
    pub aws_request_id: String,
    /// When the call times out, in Unix milliseconds (`STOKE_DEADLINE_MS`).
    pub deadline_ms: u64,
    /// The function's log group, `/aws/lambda/NAME` (`AWS_LAMBDA_LOG_GROUP_NAME`).
    pub log_group_name: String,
    /// The sandbox's log stream (`AWS_LAMBDA_LOG_STREAM_NAME`).
    pub log_stream_name: String,
    /// The trace header of the call (`_X_AMZN_TRACE_ID`), if there is one.
    pub xray_trace_id: Option<String>,
    /// The caller's client context (`X-Amz-Client-Context`, passed base64-encoded in
    /// `STOKE_CLIENT_CONTEXT`), decoded, if the caller sent one.
    pub client_context: Option<Value>,
    /// The region (`AWS_REGION`).
    pub region: String,
}

impl Context {
    /// The context of the running call, from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// A context from any source of variables (`get` answers a variable's value).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let text = |k: &str| get(k).unwrap_or_default();
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        Self {
            function_name: text("AWS_LAMBDA_FUNCTION_NAME"),
            function_version: text("AWS_LAMBDA_FUNCTION_VERSION"),
            memory_limit_in_mb: text("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .trim()
                .parse()
                .unwrap_or(0),
            invoked_function_arn: text("STOKE_INVOKED_FUNCTION_ARN"),
            aws_request_id: text("STOKE_REQUEST_ID"),
            deadline_ms: text("STOKE_DEADLINE_MS").trim().parse().unwrap_or(0),
            log_group_name: text("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream_name: text("AWS_LAMBDA_LOG_STREAM_NAME"),
            xray_trace_id: nonempty("_X_AMZN_TRACE_ID"),
            client_context: nonempty("STOKE_CLIENT_CONTEXT")
                .and_then(|v| decode_client_context(&v)),
            region: text("AWS_REGION"),
        }
    }

    /// Milliseconds left before the call times out (0 once it has passed, or if the deadline
    /// is unknown).
    pub fn remaining_time_in_millis(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.remaining_time_at(now)
    }

    /// Milliseconds left at the Unix time `now_ms`.
    pub fn remaining_time_at(&self, now_ms: u64) -> u64 {
        self.deadline_ms.saturating_sub(now_ms)
    }
}

/// `X-Amz-Client-Context` is base64 of a JSON object; JSON passed as is is accepted too.
fn decode_client_context(raw: &str) -> Option<Value> {
    let raw = raw.trim();
    if raw.starts_with('{') {
        return serde_json::from_str(raw).ok();
    }
    serde_json::from_slice(&base64_decode(raw)?).ok()
}

/// Standard base64 (`+/`, with or without `=` padding); `None` if `s` is not base64.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A function error: written to stdout as Lambda's `{"errorMessage": …, "errorType": …}`.
///
/// Any error converts with `?`: a `std::error::Error` gets its type's name as `errorType`
/// (as Lambda's Rust runtime does), a string becomes `errorType` `Error`, and an
/// [`InvokeError`] keeps the callee's `errorType` and message. For a type of your own, use
/// [`Error::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Lambda's `errorType`.
    pub error_type: String,
    /// Lambda's `errorMessage`.
    pub error_message: String,
}

impl Error {
    /// An error with this `errorType` and `errorMessage`.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }

    /// An error of `errorType` `Error`.
    pub fn msg(error_message: impl Into<String>) -> Self {
        Self::new("Error", error_message)
    }

    /// The JSON a failing function writes: `{"errorMessage": …, "errorType": …}`.
    pub fn to_json(&self) -> Value {
        json!({ "errorMessage": self.error_message, "errorType": self.error_type })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl<E> From<E> for Error
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(e: E) -> Self {
        let type_name = std::any::type_name::<E>();
        let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
        if let Some(ie) = boxed.downcast_ref::<InvokeError>() {
            return ie.to_error();
        }
        let error_type = match type_name {
            "&str" | "alloc::string::String" | "alloc::borrow::Cow<'_, str>" => "Error",
            t if t.starts_with("alloc::boxed::Box<dyn ") => "Error",
            t => t,
        };
        Self::new(error_type, boxed.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// The handler loop (one call per instance)
// ---------------------------------------------------------------------------------------------

/// Runs a handler for the current call and exits: 0 with the result on stdout, or 1 with the
/// error JSON on stdout (see the crate documentation). Installs the panic hook first.
pub fn run<E, R, F>(handler: F) -> !
where
    E: DeserializeOwned,
    R: Serialize,
    F: FnOnce(E, &Context) -> Result<R, Error>,
{
    install_panic_hook();
    let ctx = Context::from_env();
    let mut input = Vec::new();
    let answer = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => handle(&input, &ctx, handler),
        Err(e) => Err(Error::new(
            "Runtime.StdinError",
            format!("could not read the event: {e}"),
        )),
    };
    let code = match answer {
        Ok(out) => {
            write_stdout(&out);
            0
        }
        Err(e) => {
            write_error(&e);
            1
        }
    };
    std::process::exit(code)
}

/// One call without the process around it: deserialises `input` (empty input is `null`), runs
/// the handler and serialises its result. [`run`] is this plus stdin, stdout and the exit code;
/// it is public so that handlers can be unit-tested on the host.
pub fn handle<E, R, F>(input: &[u8], ctx: &Context, handler: F) -> Result<Vec<u8>, Error>
where
    E: DeserializeOwned,
    R: Serialize,
    F: FnOnce(E, &Context) -> Result<R, Error>,
{
    let input: &[u8] = if input.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        input
    };
    let event: E = serde_json::from_slice(input).map_err(|e| {
        Error::new(
            UNMARSHAL_ERROR_TYPE,
            format!("could not deserialise the event: {e}"),
        )
    })?;
    let result = handler(event, ctx)?;
    serde_json::to_vec(&result).map_err(|e| {
        Error::new(
            MARSHAL_ERROR_TYPE,
            format!("could not serialise the result: {e}"),
        )
    })
}

fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

fn write_error(e: &Error) {
    let bytes = serde_json::to_vec(&e.to_json()).unwrap_or_else(|_| {
        br#"{"errorMessage":"the error could not be serialised","errorType":"Runtime.MarshalError"}"#
            .to_vec()
    });
    write_stdout(&bytes);
}

/// The error a panic becomes: its message and where it happened.
fn panic_error(info: &std::panic::PanicHookInfo<'_>) -> Error {
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned());
    match info.location() {
        Some(l) => Error::new(PANIC_ERROR_TYPE, format!("panicked at {l}: {msg}")),
        None => Error::new(PANIC_ERROR_TYPE, format!("panicked: {msg}")),
    }
}

/// Makes a panic a function error: the message goes to the log and, as error JSON, to stdout,
/// and the process exits 1. [`run`] calls this; call it yourself if you drive the contract by
/// hand. (On `wasm32-wasip1` panics abort; without the hook the guest would trap.)
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let e = panic_error(info);
        eprintln!("{}", e.error_message);
        write_error(&e);
        std::process::exit(1);
    }));
}

// ---------------------------------------------------------------------------------------------
// Invoking other functions
// ---------------------------------------------------------------------------------------------

/// Why [`invoke`] returned no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeError {
    /// The callee ran and failed (status 1); `body` is its error JSON.
    Function {
        /// The callee's `errorType`.
        error_type: String,
        /// The callee's `errorMessage`.
        error_message: String,
        /// The whole error JSON the callee answered.
        body: Value,
    },
    /// The call was refused before anything ran (status 2): Lambda's error, e.g.
    /// `ResourceNotFoundException` or `TooManyRequestsException`.
    Refused {
        /// Lambda's error type.
        error_type: String,
        /// Lambda's error message.
        error_message: String,
    },
    /// The payload did not serialise, or the callee's answer is not JSON.
    Json(String),
    /// Not running on a Stoke host (a non-wasm build), or the host answered something this
    /// library does not understand.
    Unavailable(String),
}

impl InvokeError {
    /// The error's type: the callee's or Lambda's `errorType`, else a `Stoke.*` name.
    pub fn error_type(&self) -> &str {
        match self {
            Self::Function { error_type, .. } | Self::Refused { error_type, .. } => error_type,
            Self::Json(_) => "Stoke.InvokeJsonError",
            Self::Unavailable(_) => "Stoke.InvokeUnavailable",
        }
    }

    /// The error's message.
    pub fn error_message(&self) -> &str {
        match self {
            Self::Function { error_message, .. } | Self::Refused { error_message, .. } => {
                error_message
            }
            Self::Json(m) | Self::Unavailable(m) => m,
        }
    }

    /// This error as a function error (the same type and message), for passing a callee's
    /// failure on to this function's caller.
    pub fn to_error(&self) -> Error {
        Error::new(self.error_type(), self.error_message())
    }
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type(), self.error_message())
    }
}

impl std::error::Error for InvokeError {}

/// Invokes the function `function_name` (a name, a partial or full ARN, optionally with a
/// `:qualifier`) synchronously with `payload` serialised as JSON, and returns its JSON answer
/// (`null` if it answered nothing).
pub fn invoke<P: Serialize + ?Sized>(
    function_name: &str,
    payload: &P,
) -> Result<Value, InvokeError> {
    let payload = serde_json::to_vec(payload)
        .map_err(|e| InvokeError::Json(format!("could not serialise the payload: {e}")))?;
    let answer = invoke_raw(function_name, &payload)?;
    if answer.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&answer)
        .map_err(|e| InvokeError::Json(format!("the answer of {function_name} is not JSON: {e}")))
}

/// [`invoke`] with the payload and the answer as bytes (the payload must be JSON).
pub fn invoke_raw(function_name: &str, payload: &[u8]) -> Result<Vec<u8>, InvokeError> {
    if function_name.is_empty() || function_name.len() > MAX_INVOKE_NAME_BYTES {
        return Err(InvokeError::Refused {
            error_type: "InvalidParameterValueException".into(),
            error_message: format!(
                "The function name must have 1 to {MAX_INVOKE_NAME_BYTES} bytes; it has {}.",
                function_name.len()
            ),
        });
    }
    if payload.len() > MAX_INVOKE_PAYLOAD_BYTES {
        return Err(InvokeError::Refused {
            error_type: "RequestTooLargeException".into(),
            error_message: format!(
                "Request must be smaller than {MAX_INVOKE_PAYLOAD_BYTES} bytes for the \
                 InvokeFunction operation"
            ),
        });
    }
    let (status, bytes) = host::invoke(function_name.as_bytes(), payload)?;
    decode_answer(status, bytes)
}

/// Turns the host's `(status, bytes)` into an answer or an [`InvokeError`].
fn decode_answer(status: u32, bytes: Vec<u8>) -> Result<Vec<u8>, InvokeError> {
    let error_json = |bytes: &[u8]| -> (String, String, Value) {
        let body: Value = serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
        let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let error_type = field("errorType")
            .or_else(|| field("Type"))
            .unwrap_or_else(|| "Error".into());
        let message = field("errorMessage")
            .or_else(|| field("message"))
            .or_else(|| field("Message"))
            .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
        (error_type, message, body)
    };
    match status {
        0 => Ok(bytes),
        1 => {
            let (error_type, error_message, body) = error_json(&bytes);
            Err(InvokeError::Function {
                error_type,
                error_message,
                body,
            })
        }
        2 => {
            let (error_type, error_message, _) = error_json(&bytes);
            Err(InvokeError::Refused {
                error_type,
                error_message,
            })
        }
        other => Err(InvokeError::Unavailable(format!(
            "the host answered an unknown status {other} to stoke.invoke"
        ))),
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::InvokeError;

    #[link(wasm_import_module = "stoke")]
    unsafe extern "C" {
        #[link_name = "invoke"]
        fn stoke_invoke(name_ptr: i32, name_len: i32, payload_ptr: i32, payload_len: i32) -> i64;
        #[link_name = "result"]
        fn stoke_result(ptr: i32, len: i32) -> i32;
    }

    /// Calls `stoke.invoke`, then fetches the answer with `stoke.result`.
    pub(crate) fn invoke(name: &[u8], payload: &[u8]) -> Result<(u32, Vec<u8>), InvokeError> {
        // On wasm32, pointers and these lengths (checked by the caller) fit in an i32.
        // SAFETY: both slices are live for the call; the host only reads them.
        let answer = unsafe {
            stoke_invoke(
                name.as_ptr() as i32,
                name.len() as i32,
                payload.as_ptr() as i32,
                payload.len() as i32,
            )
        };
        let status = (answer >> 32) as u32;
        let len = (answer & 0xffff_ffff) as usize;
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` has `len` writable bytes; the host writes at most `len`.
        let n = unsafe { stoke_result(buf.as_mut_ptr() as i32, len as i32) };
        if n < 0 {
            return Err(InvokeError::Unavailable(
                "stoke.result had no answer after stoke.invoke".into(),
            ));
        }
        buf.truncate(n as usize);
        Ok((status, buf))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    use super::InvokeError;

    /// Outside a Stoke wasm sandbox there is nothing to call.
    pub(crate) fn invoke(_name: &[u8], _payload: &[u8]) -> Result<(u32, Vec<u8>), InvokeError> {
        Err(InvokeError::Unavailable(
            "stoke_guest::invoke needs the Stoke wasm host (build for wasm32-wasip1 and run on Stoke)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn context_reads_lambda_and_stoke_variables() {
        let ctx = Context::from_vars(vars(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "hello"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/hello"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/01/[$LATEST]abc"),
            (
                "_X_AMZN_TRACE_ID",
                "Root=1-5759e988-bd862e3fe1be46a994272793",
            ),
            ("STOKE_REQUEST_ID", "8f5e7c2a-0000-4000-8000-000000000000"),
            ("STOKE_DEADLINE_MS", "1700000003000"),
            (
                "STOKE_INVOKED_FUNCTION_ARN",
                "arn:aws:lambda:us-east-1:123456789012:function:hello",
            ),
            // base64 of {"custom":{"k":"v"}}
            ("STOKE_CLIENT_CONTEXT", "eyJjdXN0b20iOnsiayI6InYifX0="),
        ]));
        assert_eq!(ctx.function_name, "hello");
        assert_eq!(ctx.function_version, "$LATEST");
        assert_eq!(ctx.memory_limit_in_mb, 256);
        assert_eq!(ctx.region, "us-east-1");
        assert_eq!(ctx.log_group_name, "/aws/lambda/hello");
        assert_eq!(ctx.log_stream_name, "2024/01/01/[$LATEST]abc");
        assert_eq!(
            ctx.xray_trace_id.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(ctx.aws_request_id, "8f5e7c2a-0000-4000-8000-000000000000");
        assert_eq!(ctx.deadline_ms, 1_700_000_003_000);
        assert_eq!(
            ctx.invoked_function_arn,
            "arn:aws:lambda:us-east-1:123456789012:function:hello"
        );
        assert_eq!(ctx.client_context, Some(json!({"custom": {"k": "v"}})));
        assert_eq!(ctx.remaining_time_at(1_700_000_000_500), 2_500);
        assert_eq!(ctx.remaining_time_at(1_800_000_000_000), 0);
    }

    #[test]
    fn context_tolerates_missing_and_empty_variables() {
        let ctx = Context::from_vars(vars(&[
            ("_X_AMZN_TRACE_ID", ""),
            ("STOKE_CLIENT_CONTEXT", ""),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots"),
        ]));
        assert_eq!(ctx, Context::default());
        assert_eq!(ctx.remaining_time_in_millis(), 0);
    }

    #[test]
    fn client_context_as_plain_json_or_garbage() {
        assert_eq!(decode_client_context(r#"{"a":1}"#), Some(json!({"a": 1})));
        assert_eq!(decode_client_context("not base64!"), None);
        assert_eq!(decode_client_context("bm90IGpzb24="), None); // "not json"
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64_decode("Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(base64_decode("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(base64_decode("Zm9vYmFy").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(
            base64_decode("+/+/").as_deref(),
            Some(&[0xfb, 0xff, 0xbf][..])
        );
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9*"), None);
    }

    #[test]
    fn handle_runs_a_value_handler() {
        let ctx = Context {
            aws_request_id: "r1".into(),
            ..Context::default()
        };
        let out = handle(
            br#"{"name":"Ada"}"#,
            &ctx,
            |e: Value, c: &Context| -> Result<Value, Error> {
                Ok(json!({"hi": e["name"], "id": c.aws_request_id}))
            },
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"hi": "Ada", "id": "r1"})
        );
    }

    #[test]
    fn handle_runs_a_typed_handler() {
        #[derive(serde::Deserialize)]
        struct In {
            a: i64,
            b: i64,
        }
        #[derive(serde::Serialize)]
        struct Out {
            sum: i64,
        }
        let add = |e: In, _: &Context| -> Result<Out, Error> { Ok(Out { sum: e.a + e.b }) };
        let out = handle(br#"{"a":2,"b":3}"#, &Context::default(), add).unwrap();
        assert_eq!(out, br#"{"sum":5}"#);
        let err = handle(br#"{"a":2}"#, &Context::default(), add).unwrap_err();
        assert_eq!(err.error_type, UNMARSHAL_ERROR_TYPE);
        assert!(err.error_message.contains("missing field `b`"), "{err}");
    }

    #[test]
    fn handle_treats_empty_input_as_null() {
        let out = handle(
            b" \n",
            &Context::default(),
            |e: Value, _: &Context| -> Result<Value, Error> {
                Ok(json!({"was_null": e.is_null()}))
            },
        )
        .unwrap();
        assert_eq!(out, br#"{"was_null":true}"#);
    }

    #[test]
    fn handle_passes_errors_through() {
        let err = handle(
            b"{}",
            &Context::default(),
            |_: Value, _: &Context| -> Result<Value, Error> {
                Err(Error::new("MyError", "it broke"))
            },
        )
        .unwrap_err();
        assert_eq!(err, Error::new("MyError", "it broke"));
        assert_eq!(
            err.to_json(),
            json!({"errorMessage": "it broke", "errorType": "MyError"})
        );
    }

    #[test]
    fn question_mark_converts_errors() {
        fn parse(s: &str) -> Result<i64, Error> {
            Ok(s.parse::<i64>()?)
        }
        let e = parse("x").unwrap_err();
        assert_eq!(e.error_type, "core::num::error::ParseIntError");
        assert_eq!(e.error_message, "invalid digit found in string");

        fn text() -> Result<(), Error> {
            Err("plain words")?
        }
        assert_eq!(text().unwrap_err(), Error::new("Error", "plain words"));
        fn owned() -> Result<(), Error> {
            Err(String::from("owned words"))?
        }
        assert_eq!(owned().unwrap_err(), Error::new("Error", "owned words"));

        fn callee() -> Result<(), Error> {
            Err(InvokeError::Refused {
                error_type: "ResourceNotFoundException".into(),
                error_message: "Function not found: x".into(),
            })?
        }
        assert_eq!(
            callee().unwrap_err(),
            Error::new("ResourceNotFoundException", "Function not found: x")
        );
    }

    #[test]
    fn answers_decode_by_status() {
        assert_eq!(
            decode_answer(0, b"{\"ok\":1}".to_vec()).unwrap(),
            b"{\"ok\":1}"
        );
        let failed = decode_answer(1, br#"{"errorMessage":"no","errorType":"Bad"}"#.to_vec());
        assert_eq!(
            failed.unwrap_err(),
            InvokeError::Function {
                error_type: "Bad".into(),
                error_message: "no".into(),
                body: json!({"errorMessage": "no", "errorType": "Bad"}),
            }
        );
        let refused = decode_answer(
            2,
            br#"{"errorType":"ResourceNotFoundException","errorMessage":"Function not found"}"#
                .to_vec(),
        )
        .unwrap_err();
        assert_eq!(refused.error_type(), "ResourceNotFoundException");
        assert_eq!(refused.error_message(), "Function not found");
        let odd = decode_answer(1, b"not json".to_vec()).unwrap_err();
        assert_eq!(
            (odd.error_type(), odd.error_message()),
            ("Error", "not json")
        );
        assert!(matches!(
            decode_answer(7, vec![]),
            Err(InvokeError::Unavailable(_))
        ));
    }

    #[test]
    fn invoke_on_the_host_is_unavailable() {
        let e = invoke("hello", &json!({})).unwrap_err();
        assert!(matches!(e, InvokeError::Unavailable(_)), "{e:?}");
        assert_eq!(e.error_type(), "Stoke.InvokeUnavailable");
    }

    #[test]
    fn invoke_checks_limits_before_calling_the_host() {
        let long = "f".repeat(MAX_INVOKE_NAME_BYTES + 1);
        let e = invoke(&long, &json!({})).unwrap_err();
        assert_eq!(e.error_type(), "InvalidParameterValueException");
        let e = invoke("", &json!({})).unwrap_err();
        assert_eq!(e.error_type(), "InvalidParameterValueException");
        let big = vec![b' '; MAX_INVOKE_PAYLOAD_BYTES + 1];
        let e = invoke_raw("f", &big).unwrap_err();
        assert_eq!(e.error_type(), "RequestTooLargeException");
    }
}
