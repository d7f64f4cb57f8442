//! What an update's warm-up decides: the [`DeployCheck`] a function asks for, the deploy's
//! outcome from its warm-up ([`decide`]), and the log lines of a warm-up whose Init failed.
//!
//! Lambda runs no code of an update: UpdateFunctionCode and UpdateFunctionConfiguration end
//! `Successful` once the code is stored and prepared, and code whose Init fails shows it on
//! the next call. Stoke warms the new generation beside the old before calls move to it (so
//! no call waits for an Init); by default an Init failure of that warm-up is written to the
//! function's logs and the update still switches, as Lambda's does. A function tagged
//! [`DEPLOY_CHECK_TAG`] = `init` asks for the stricter check: such an update ends `Failed`
//! and the previous generation goes on serving.

use std::collections::BTreeMap;

use stoke_core::{Function, FunctionError, Reason};
use stoke_store::LogEvent;

use crate::record;
use crate::target::{FailedInit, WarmUp};

/// The tag that opts a function's updates into the Init check (value `init`).
pub const DEPLOY_CHECK_TAG: &str = "stoke:deploy-check";

/// What an update's new code must pass before calls move to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployCheck {
    /// Lambda's: the code is prepared (stored, compiled, its runtime present). An Init
    /// failure of the warm-up is logged and the update switches.
    Prepare,
    /// [`DEPLOY_CHECK_TAG`] = `init`: the warm-up's Init must succeed too, or the update
    /// fails and the previous generation keeps serving.
    Init,
}

impl DeployCheck {
    /// The check a function asks for by its tags (the value is read case-insensitively; any
    /// other value is Lambda's default).
    pub fn of(tags: &BTreeMap<String, String>) -> Self {
        match tags.get(DEPLOY_CHECK_TAG) {
            Some(v) if v.trim().eq_ignore_ascii_case("init") => Self::Init,
            _ => Self::Prepare,
        }
    }
}

/// A deploy's outcome from its warm-up: `Err` is why the update fails.
pub fn decide(check: DeployCheck, warm: &Result<WarmUp, Reason>) -> Result<(), Reason> {
    match warm {
        Ok(WarmUp::Warm) => Ok(()),
        Ok(WarmUp::InitFailed(failed)) => match check {
            DeployCheck::Prepare => Ok(()),
            DeployCheck::Init => Err(init_reason(&failed.error)),
        },
        // No sandbox could start at all: the server's failure, not the code's.
        Err(reason) => Err(reason.clone()),
    }
}

/// The update's reason for a failed Init, with the `LastUpdateStatusReasonCode` Lambda names
/// the cause by.
fn init_reason(e: &FunctionError) -> Reason {
    let code = match e.error_type.as_str() {
        "Sandbox.Timedout" => "FunctionError.InitTimeout",
        "Runtime.InvalidEntrypoint" => "FunctionError.InvalidEntryPoint",
        _ => "FunctionError.RuntimeInitError",
    };
    Reason {
        message: format!(
            "The function's new code failed its Init: {}: {}",
            e.error_type,
            without_request_id(&e.message)
        ),
        code: code.into(),
    }
}

/// A message without the `RequestId: … Error: ` a call's answer starts with (the warm-up was
/// no call).
fn without_request_id(message: &str) -> &str {
    match message.strip_prefix("RequestId: ") {
        Some(rest) => rest.split_once(" Error: ").map_or(message, |(_, m)| m),
        None => message,
    }
}

/// The log lines of a warm-up whose Init failed: the Init's own output, Lambda's
/// `INIT_REPORT` line, and what the deploy did about it.
pub fn failed_init_lines(f: &Function, failed: &FailedInit, check: DeployCheck) -> Vec<LogEvent> {
    let mut lines = warm_up_lines(failed, check, &f.code.sha256_base64());
    let stream = if failed.log_stream.is_empty() {
        "deploy-warm-up".to_owned()
    } else {
        failed.log_stream.clone()
    };
    let now = record::now_ms();
    lines
        .drain(..)
        .map(|message| LogEvent {
            id: 0,
            account: f.account.clone(),
            function_name: f.name.as_str().to_owned(),
            log_stream: stream.clone(),
            timestamp_ms: now,
            request_id: String::new(),
            message,
        })
        .collect()
}

/// The messages of [`failed_init_lines`], for code `code_sha256` (base64).
fn warm_up_lines(failed: &FailedInit, check: DeployCheck, code_sha256: &str) -> Vec<String> {
    let output = String::from_utf8_lossy(&failed.log);
    let mut lines: Vec<String> = output
        .lines()
        .flat_map(record::split_line)
        .map(str::to_owned)
        .collect();
    lines.push(format!(
        "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: error\tError Type: {}",
        failed.init.as_secs_f64() * 1000.0,
        failed.error.error_type
    ));
    let what = match check {
        DeployCheck::Prepare => "the update went through, as on Lambda: each call starts a new \
                                 environment until the code's Init succeeds"
            .to_owned(),
        DeployCheck::Init => format!(
            "the update failed ({DEPLOY_CHECK_TAG} = init): the previous code goes on serving"
        ),
    };
    let message = format!(
        "[stoke] The warm-up of the update (CodeSha256 {code_sha256}) failed its Init: {}: {}; \
         {what}.",
        failed.error.error_type,
        without_request_id(&failed.error.message),
    );
    lines.extend(record::split_line(&message).into_iter().map(str::to_owned));
    lines
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn failed(error_type: &str, message: &str) -> Result<WarmUp, Reason> {
        Ok(WarmUp::InitFailed(FailedInit {
            error: FunctionError::new(error_type, message),
            log: Bytes::from_static(b"[ERROR] boom\nTraceback\n"),
            log_stream: "2026/12/01/[$LATEST]abc".into(),
            init: Duration::from_millis(12),
        }))
    }

    /// One case: the check, what the warm-up came to, and the deploy's outcome.
    type Case = (DeployCheck, Result<WarmUp, Reason>, Result<(), Reason>);

    fn reason(message: &str, code: &str) -> Reason {
        Reason {
            message: message.into(),
            code: code.into(),
        }
    }

    #[test]
    fn the_deploy_decision() {
        use DeployCheck::{Init, Prepare};
        let exited = "RequestId: 1-2 Error: Runtime exited with error: exit status 1";
        let cannot_start = reason(
            "The function's new code could not start: x",
            "InternalError",
        );
        let cases: Vec<Case> = vec![
            (Prepare, Ok(WarmUp::Warm), Ok(())),
            (Init, Ok(WarmUp::Warm), Ok(())),
            // Lambda's default: the user's Init failing does not fail the update.
            (
                Prepare,
                failed("Runtime.ImportModuleError", "no module"),
                Ok(()),
            ),
            (
                Prepare,
                failed("Sandbox.Timedout", "Init timed out"),
                Ok(()),
            ),
            // The opt-in: it does, named as Lambda names each cause.
            (
                Init,
                failed("Runtime.ImportModuleError", "Unable to import module 'app'"),
                Err(reason(
                    "The function's new code failed its Init: Runtime.ImportModuleError: \
                     Unable to import module 'app'",
                    "FunctionError.RuntimeInitError",
                )),
            ),
            (
                Init,
                failed("Runtime.ExitError", exited),
                Err(reason(
                    "The function's new code failed its Init: Runtime.ExitError: Runtime \
                     exited with error: exit status 1",
                    "FunctionError.RuntimeInitError",
                )),
            ),
            (
                Init,
                failed(
                    "Sandbox.Timedout",
                    "RequestId: x Error: Init timed out after 3.00 seconds",
                ),
                Err(reason(
                    "The function's new code failed its Init: Sandbox.Timedout: Init timed \
                     out after 3.00 seconds",
                    "FunctionError.InitTimeout",
                )),
            ),
            (
                Init,
                failed(
                    "Runtime.InvalidEntrypoint",
                    "Couldn't find valid bootstrap(s)",
                ),
                Err(reason(
                    "The function's new code failed its Init: Runtime.InvalidEntrypoint: \
                     Couldn't find valid bootstrap(s)",
                    "FunctionError.InvalidEntryPoint",
                )),
            ),
            // No sandbox could start: the update fails whatever the check.
            (
                Prepare,
                Err(cannot_start.clone()),
                Err(cannot_start.clone()),
            ),
            (Init, Err(cannot_start.clone()), Err(cannot_start)),
        ];
        for (check, warm, want) in cases {
            assert_eq!(decide(check, &warm), want, "{check:?} {warm:?}");
        }
    }

    #[test]
    fn the_check_comes_from_the_tag() {
        let mut tags = BTreeMap::new();
        assert_eq!(DeployCheck::of(&tags), DeployCheck::Prepare);
        for (value, want) in [
            ("init", DeployCheck::Init),
            ("INIT", DeployCheck::Init),
            (" init ", DeployCheck::Init),
            ("none", DeployCheck::Prepare),
            ("", DeployCheck::Prepare),
        ] {
            tags.insert(DEPLOY_CHECK_TAG.into(), value.into());
            assert_eq!(DeployCheck::of(&tags), want, "{value:?}");
        }
    }

    #[test]
    fn a_failed_warm_up_logs_the_output_the_init_report_and_the_outcome() {
        let exited = "RequestId: r Error: Runtime exited with error: exit status 3";
        let Ok(WarmUp::InitFailed(failed)) = failed("Runtime.ExitError", exited) else {
            unreachable!("a failed warm-up")
        };
        let lines = warm_up_lines(&failed, DeployCheck::Prepare, "c2hh");
        assert_eq!(
            lines,
            [
                "[ERROR] boom",
                "Traceback",
                "INIT_REPORT Init Duration: 12.00 ms\tPhase: init\tStatus: error\tError Type: \
                 Runtime.ExitError",
                "[stoke] The warm-up of the update (CodeSha256 c2hh) failed its Init: \
                 Runtime.ExitError: Runtime exited with error: exit status 3; the update went \
                 through, as on Lambda: each call starts a new environment until the code's Init \
                 succeeds.",
            ]
        );
        let strict = warm_up_lines(&failed, DeployCheck::Init, "c2hh");
        assert_eq!(
            strict[3],
            "[stoke] The warm-up of the update (CodeSha256 c2hh) failed its Init: \
             Runtime.ExitError: Runtime exited with error: exit status 3; the update failed \
             (stoke:deploy-check = init): the previous code goes on serving."
        );
    }
}
