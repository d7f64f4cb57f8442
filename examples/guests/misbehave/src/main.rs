//! Misbehaves on request, for the fault tests. Event `{"mode": M, ...}`:
//!
//! | mode | does |
//! |---|---|
//! | `spin` | loops forever (the timeout must end it) |
//! | `alloc` | allocates and touches `mb` MB (default 1024), then answers `{"allocated_mb": mb}` |
//! | `exit` | exits with `code` (default 3) without writing anything |
//! | `stdout` | writes `mb` MB (default 7) of `x` to stdout and exits 0 |
//! | `stderr` | writes `mb` MB (default 64) of log lines, then answers `{"logged_mb": mb}` |
//!
//! Any other mode answers `{"mode": M}`.

use std::io::Write;

use stoke_guest::{Context, Error, Value, json};

fn main() {
    stoke_guest::run(|event: Value, _ctx: &Context| -> Result<Value, Error> {
        let mode = event
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let num = |k: &str, default: u64| event.get(k).and_then(Value::as_u64).unwrap_or(default);
        match mode.as_str() {
            "spin" => {
                stoke_guest::log!("spinning");
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mb = num("mb", 1024);
                stoke_guest::log!("allocating {mb} MB");
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                for i in 0..mb {
                    blocks.push(vec![(i % 251) as u8 + 1; 1 << 20]);
                }
                let total: u64 = blocks.iter().map(|b| u64::from(b[b.len() - 1])).sum();
                std::hint::black_box(total);
                Ok(json!({ "allocated_mb": mb }))
            }
            "exit" => {
                let code = num("code", 3);
                stoke_guest::log!("exiting with {code}");
                std::process::exit(i32::try_from(code).unwrap_or(3))
            }
            "stdout" => {
                let mb = num("mb", 7);
                let chunk = vec![b'x'; 1 << 20];
                let mut out = std::io::stdout().lock();
                for _ in 0..mb {
                    if out.write_all(&chunk).is_err() {
                        break;
                    }
                }
                let _ = out.flush();
                std::process::exit(0)
            }
            "stderr" => {
                let mb = num("mb", 64);
                let line = format!("{}\n", "y".repeat(1023));
                let mut err = std::io::stderr().lock();
                for _ in 0..mb * 1024 {
                    if err.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                }
                Ok(json!({ "logged_mb": mb }))
            }
            _ => Ok(json!({ "mode": mode })),
        }
    })
}
