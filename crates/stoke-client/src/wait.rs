//! Waiting for a function to settle after a create or an update, as boto3's
//! `function_active_v2` and `function_updated_v2` waiters do: GetFunction is polled (a pause
//! that doubles from 50 ms to 500 ms) until the function is Active with its last update done,
//! or until nothing is in progress any more ([`Settled`]); a spinner shows the wait on a
//! terminal.

use std::time::Duration;

use tokio::time::Instant;

use crate::client::LambdaClient;
use crate::error::ClientError;
use crate::model::FunctionConfiguration;
use crate::progress;

/// How long to wait for a deployed function to become Active.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The first pause between two polls while waiting; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(50);
/// The longest pause between two polls.
const POLL_MAX: Duration = Duration::from_millis(500);

/// Why a wait ended without the function settled as asked.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// GetFunction failed.
    #[error("cannot read the state of {name}")]
    Read {
        name: String,
        #[source]
        source: ClientError,
    },
    /// The function (or its last update) failed, with the server's reason.
    #[error("{name}: {reason}")]
    Failed { name: String, reason: String },
    /// Still in progress when the time ran out.
    #[error(
        "{name} is not ready after {} s (State {state}, LastUpdateStatus {update})",
        READY_TIMEOUT.as_secs()
    )]
    Timeout {
        name: String,
        state: String,
        update: String,
    },
}

/// What [`wait_until`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Active, and the last update done and not failed.
    Ready,
    /// Nothing in progress, whether the last change succeeded or failed: a function whose code
    /// failed its checks can still be given new code.
    UpdateDone,
}

/// Waits until `name` is Active with its last update done (see [`wait_until`]).
pub async fn wait_ready(
    client: &LambdaClient,
    name: &str,
) -> Result<FunctionConfiguration, WaitError> {
    wait_until(client, name, Settled::Ready).await
}

/// Polls GetFunction until the function is settled as `goal` says; fails with the server's reason
/// if it failed, or after [`READY_TIMEOUT`].
pub async fn wait_until(
    client: &LambdaClient,
    name: &str,
    goal: Settled,
) -> Result<FunctionConfiguration, WaitError> {
    let spinner = progress::spinner(format!("waiting for {name} to become Active"));
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pause = POLL_FIRST;
    let outcome = loop {
        let config = match client.get_function(name).await {
            Ok(found) => found.configuration,
            Err(source) => {
                break Err(WaitError::Read {
                    name: name.to_owned(),
                    source,
                });
            }
        };
        match readiness(&config) {
            Readiness::Ready => break Ok(config),
            Readiness::Failed(_) if goal == Settled::UpdateDone => break Ok(config),
            Readiness::Failed(reason) => {
                break Err(WaitError::Failed {
                    name: name.to_owned(),
                    reason,
                });
            }
            Readiness::Waiting if Instant::now() >= deadline => {
                break Err(WaitError::Timeout {
                    name: name.to_owned(),
                    state: config.state.unwrap_or_else(|| "-".to_owned()),
                    update: config.last_update_status.unwrap_or_else(|| "-".to_owned()),
                });
            }
            Readiness::Waiting => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(POLL_MAX);
            }
        }
    };
    spinner.finish_and_clear();
    outcome
}

/// Where a function stands for [`wait_until`].
#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    Ready,
    Waiting,
    Failed(String),
}

fn readiness(config: &FunctionConfiguration) -> Readiness {
    let reason = |code: &Option<String>, text: &Option<String>| match (code, text) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        (Some(one), None) | (None, Some(one)) => one.clone(),
        (None, None) => "no reason given".to_owned(),
    };
    let state = config.state.as_deref();
    let update = config.last_update_status.as_deref();
    if state == Some("Pending") || update == Some("InProgress") {
        return Readiness::Waiting;
    }
    if state == Some("Failed") {
        return Readiness::Failed(format!(
            "State Failed: {}",
            reason(&config.state_reason_code, &config.state_reason)
        ));
    }
    if update == Some("Failed") {
        return Readiness::Failed(format!(
            "LastUpdateStatus Failed: {}",
            reason(
                &config.last_update_status_reason_code,
                &config.last_update_status_reason
            )
        ));
    }
    if state == Some("Active") {
        Readiness::Ready
    } else {
        Readiness::Waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reads_state_and_last_update_status() {
        let config = |state: &str, update: Option<&str>| FunctionConfiguration {
            state: Some(state.into()),
            last_update_status: update.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(readiness(&config("Pending", None)), Readiness::Waiting);
        assert_eq!(
            readiness(&config("Active", Some("InProgress"))),
            Readiness::Waiting
        );
        assert_eq!(
            readiness(&config("Active", Some("Successful"))),
            Readiness::Ready
        );
        assert_eq!(readiness(&config("Active", None)), Readiness::Ready);
        let mut failed = config("Failed", None);
        failed.state_reason_code = Some("InvalidWasm".into());
        failed.state_reason = Some("not a module".into());
        assert_eq!(
            readiness(&failed),
            Readiness::Failed("State Failed: InvalidWasm: not a module".into())
        );
        assert_eq!(
            readiness(&config("Failed", Some("InProgress"))),
            Readiness::Waiting,
            "new code for a failed function is still being checked"
        );
        let mut update_failed = config("Active", Some("Failed"));
        update_failed.last_update_status_reason = Some("bad zip".into());
        assert_eq!(
            readiness(&update_failed),
            Readiness::Failed("LastUpdateStatus Failed: bad zip".into())
        );
    }
}
