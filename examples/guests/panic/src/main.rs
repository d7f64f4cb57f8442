//! Panics: `{"message": "..."}` (default `boom`). The SDK's panic hook turns the panic into a
//! function error of `errorType` `Panic`.

use stoke_guest::{Context, Error, Value};

fn main() {
    stoke_guest::run(|event: Value, _ctx: &Context| -> Result<Value, Error> {
        let message = event
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("boom")
            .to_owned();
        stoke_guest::log!("about to panic");
        panic!("{message}");
    })
}
