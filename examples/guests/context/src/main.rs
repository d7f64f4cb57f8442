//! Answers its [`Context`] and its whole environment, for tests of what a call receives
//! (client context, trace id, the function's own `Environment` variables, ...).

use stoke_guest::{Context, Error, Value, json};

fn main() {
    stoke_guest::run(|event: Value, ctx: &Context| -> Result<Value, Error> {
        let env: serde_json::Map<String, Value> = std::env::vars()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        Ok(json!({
            "event": event,
            "context": {
                "function_name": ctx.function_name,
                "function_version": ctx.function_version,
                "memory_limit_in_mb": ctx.memory_limit_in_mb,
                "invoked_function_arn": ctx.invoked_function_arn,
                "aws_request_id": ctx.aws_request_id,
                "deadline_ms": ctx.deadline_ms,
                "remaining_time_in_millis": ctx.remaining_time_in_millis(),
                "log_group_name": ctx.log_group_name,
                "log_stream_name": ctx.log_stream_name,
                "xray_trace_id": ctx.xray_trace_id,
                "client_context": ctx.client_context,
                "region": ctx.region,
            },
            "env": env,
        }))
    })
}
