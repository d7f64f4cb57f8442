//! A `provided` function on `lambda_runtime`: echoes the event with the request id, and fails
//! with an error when the event asks for it (`{"fail": "message"}`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    if let Some(msg) = payload.get("fail").and_then(Value::as_str) {
        return Err(msg.to_owned().into());
    }
    eprintln!("rust handler called with {payload}");
    Ok(json!({
        "echo": payload,
        "request_id": ctx.request_id,
        "function_arn": ctx.invoked_function_arn,
        "runtime": "lambda_runtime",
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
