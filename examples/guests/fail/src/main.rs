//! Always fails through the SDK: `Err(Error::new(errorType, errorMessage))`.
//!
//! Event: `{"errorType": "...", "errorMessage": "..."}`, both optional (defaults
//! `CustomError` and `something went wrong on purpose`).

use stoke_guest::{Context, Error, Value};

fn main() {
    stoke_guest::run(|event: Value, _ctx: &Context| -> Result<Value, Error> {
        let text = |k: &str, default: &'static str| {
            event
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        let error_type = text("errorType", "CustomError");
        let message = text("errorMessage", "something went wrong on purpose");
        stoke_guest::log!("failing with {error_type}");
        Err(Error::new(error_type, message))
    })
}
