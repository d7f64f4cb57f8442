//! The host calls of guests: a function that invokes another (the `stoke.invoke` import)
//! comes back to the [`Invoker`] through [`GuestHost`], one level deeper each time.

use std::sync::Weak;

use async_trait::async_trait;
use bytes::Bytes;
use stoke_core::{AccountId, LambdaError};
use stoke_sandbox::{HostCalls, HostInvokeResult, Outcome};

use super::{InvokeRequest, Invoker};

/// A guest's view of the platform during one call.
pub(super) struct GuestHost {
    pub(super) invoker: Weak<Invoker>,
    pub(super) account: AccountId,
    pub(super) depth: u32,
    pub(super) trace_id: String,
}

fn refused(e: &LambdaError) -> HostInvokeResult {
    let body = serde_json::json!({ "errorType": e.type_name(), "errorMessage": e.message() });
    HostInvokeResult::Refused(Bytes::from(body.to_string()))
}

#[async_trait]
impl HostCalls for GuestHost {
    async fn invoke(&self, function: &str, payload: Bytes) -> HostInvokeResult {
        let Some(invoker) = self.invoker.upgrade() else {
            return refused(&LambdaError::Service("the server is shutting down".into()));
        };
        if self.depth + 1 > invoker.config.max_depth {
            return refused(&LambdaError::RecursiveInvocation(format!(
                "Functions may call functions at most {} deep.",
                invoker.config.max_depth
            )));
        }
        if serde_json::from_slice::<serde_json::Value>(&payload).is_err() {
            return refused(&LambdaError::InvalidRequestContent(
                "Could not parse request body into json: the payload is not JSON".into(),
            ));
        }
        let req = InvokeRequest {
            function: function.to_owned(),
            qualifier: None,
            payload,
            log_tail: false,
            client_context: None,
            trace_id: Some(self.trace_id.clone()),
            depth: self.depth + 1,
            request_id: None,
            return_record: false,
        };
        match invoker.invoke(&self.account, req).await {
            Ok(r) => match r.outcome {
                Outcome::Success(b) => HostInvokeResult::Success(b),
                Outcome::Error(e) => HostInvokeResult::FunctionError(e.body),
            },
            Err(e) => refused(&e),
        }
    }
}
