//! How a process sandbox's Init or runtime failed, in Lambda's words (the messages need the
//! call's request id, so they are made when a call is answered).

use std::time::Duration;

use crate::FunctionError;

/// Why Init failed (the message needs the call's request id).
#[derive(Debug, Clone)]
pub(super) enum InitFailure {
    Reported(FunctionError),
    Exited(i32),
    Entrypoint,
    OutOfMemory,
    Timeout(Duration),
}

/// Lambda's words for a runtime that exited with `code` (128 + n: killed by signal n).
pub(super) fn exit_words(code: i32) -> String {
    match code {
        137 => "signal: killed".into(),
        c if c > 128 => format!("signal: {}", c - 128),
        c => format!("exit status {c}"),
    }
}

impl InitFailure {
    pub(super) fn error(&self, request_id: &str, memory_mb: u32) -> FunctionError {
        match self {
            Self::Reported(e) => e.clone(),
            Self::Exited(code) => FunctionError::new(
                "Runtime.ExitError",
                format!(
                    "RequestId: {request_id} Error: Runtime exited with error: {}",
                    exit_words(*code)
                ),
            ),
            Self::Entrypoint => FunctionError::new(
                "Runtime.InvalidEntrypoint",
                format!(
                    "RequestId: {request_id} Error: Couldn't find valid bootstrap(s): \
                     [/var/task/bootstrap /opt/bootstrap]"
                ),
            ),
            Self::OutOfMemory => out_of_memory(request_id, memory_mb),
            Self::Timeout(d) => FunctionError::new(
                "Sandbox.Timedout",
                format!(
                    "RequestId: {request_id} Error: Init timed out after {:.2} seconds",
                    d.as_secs_f64()
                ),
            ),
        }
    }
}

pub(super) fn out_of_memory(request_id: &str, memory_mb: u32) -> FunctionError {
    FunctionError::new(
        "Runtime.OutOfMemory",
        format!(
            "RequestId: {request_id} Error: Runtime exited with error: signal: killed \
             (the function tried to use more than its {memory_mb} MB of memory)"
        ),
    )
}
