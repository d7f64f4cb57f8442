//! Invokes another function through the `stoke` host imports and answers what it answered.
//!
//! Event: `{"function": "NAME", "payload": <any JSON, default {}>}`. A failure of the callee, or
//! a refused call (e.g. `ResourceNotFoundException`), becomes this function's error with the
//! same `errorType` and `errorMessage`.

use stoke_guest::{Context, Error, Value, json};

fn main() {
    stoke_guest::run(|event: Value, _ctx: &Context| -> Result<Value, Error> {
        let function = event
            .get("function")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::new("InvalidEvent", "the event needs a \"function\" to call"))?;
        let payload = event.get("payload").cloned().unwrap_or_else(|| json!({}));
        stoke_guest::log!("calling {function}");
        let answer = stoke_guest::invoke(function, &payload)?;
        stoke_guest::log!("{function} answered");
        Ok(answer)
    })
}
