//! The hello function: `{"name": "Ada"}` → `{"message": "Hello, Ada!"}` (the name defaults to
//! `world`), with one line in the call's log.

use stoke_guest::{Context, Error, Value, json};

fn hello(event: Value, ctx: &Context) -> Result<Value, Error> {
    let name = event.get("name").and_then(Value::as_str).unwrap_or("world");
    stoke_guest::log!("saying hello to {name} (request {})", ctx.aws_request_id);
    Ok(json!({ "message": format!("Hello, {name}!") }))
}

fn main() {
    stoke_guest::run(hello)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name_or_the_world() {
        let ctx = Context::default();
        let out = stoke_guest::handle(br#"{"name":"Ada"}"#, &ctx, hello).unwrap();
        assert_eq!(out, br#"{"message":"Hello, Ada!"}"#);
        let out = stoke_guest::handle(b"{}", &ctx, hello).unwrap();
        assert_eq!(out, br#"{"message":"Hello, world!"}"#);
    }
}
