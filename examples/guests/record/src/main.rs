//! Logs its whole event on one line (`EVENT {...}`) and answers it: the destination function
//! of the async tests, whose log shows the invocation records it received.

use stoke_guest::{Context, Error, Value};

fn main() {
    stoke_guest::run(|event: Value, _ctx: &Context| -> Result<Value, Error> {
        stoke_guest::log!("EVENT {event}");
        Ok(event)
    })
}
