//! The guest modules `stoke bench` deploys, compiled from WebAssembly text at run time with the
//! `wat` crate, and zipped as a deployment package (the file name in the zip is the handler).
//!
//! - [`echo_zip`]: `tests/guests/echo.wat`, the tests' echo function (one log line on stderr,
//!   stdin copied to stdout): the "hello" of the warm and cold measurements.
//! - [`constant_zip`]: a module that prints a fixed text, so that the update measurement can
//!   tell the new code's answers from the old one's.
//! - [`clock_zip`]: a module that logs the wall clock in nanoseconds (the event source
//!   bench's "function start").

use std::io::{Cursor, Write as _};

use anyhow::Context as _;
use zip::write::SimpleFileOptions;

/// The echo guest of the tests.
const ECHO_WAT: &str = include_str!("../../../tests/guests/echo.wat");
/// The handler (the module's file name in the zip) of every bench function.
pub const HANDLER: &str = "bench.wasm";
/// Where the constant module keeps its text in linear memory.
const TEXT_OFFSET: usize = 64;

/// The echo module, zipped.
pub fn echo_zip() -> anyhow::Result<Vec<u8>> {
    let wasm = wat::parse_str(ECHO_WAT).context("compiling echo.wat")?;
    zip_module(&wasm)
}

/// The clock guest of the event source bench: it writes the wall clock (WASI
/// `clock_time_get`, realtime, in nanoseconds) as one log line on stderr, `T <16 hex
/// digits>`, and exits 0.
const CLOCK_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $hex (param $d i32) (result i32)
    (select (i32.add (local.get $d) (i32.const 48)) (i32.add (local.get $d) (i32.const 87))
      (i32.lt_u (local.get $d) (i32.const 10))))
  (func (export "_start")
    (local $t i64) (local $i i32)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 0)))
    (local.set $t (i64.load (i32.const 0)))
    (i32.store8 (i32.const 32) (i32.const 84))
    (i32.store8 (i32.const 33) (i32.const 32))
    (local.set $i (i32.const 15))
    (block $done
      (loop $next
        (i32.store8 (i32.add (i32.const 34) (local.get $i))
          (call $hex (i32.wrap_i64 (i64.and (local.get $t) (i64.const 15)))))
        (local.set $t (i64.shr_u (local.get $t) (i64.const 4)))
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.store8 (i32.const 50) (i32.const 10))
    (i32.store (i32.const 16) (i32.const 32))
    (i32.store (i32.const 20) (i32.const 19))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))))
"#;

/// The clock module, zipped.
pub fn clock_zip() -> anyhow::Result<Vec<u8>> {
    let wasm = wat::parse_str(CLOCK_WAT).context("compiling the clock module")?;
    zip_module(&wasm)
}

/// A module that writes `text` to stdout and exits 0, zipped.
pub fn constant_zip(text: &str) -> anyhow::Result<Vec<u8>> {
    let wasm = wat::parse_str(constant_wat(text)).context("compiling the constant module")?;
    zip_module(&wasm)
}

/// The text of a module that writes `text` to stdout.
fn constant_wat(text: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const {TEXT_OFFSET}) "{escaped}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const {TEXT_OFFSET}))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#,
        escaped = wat_string(text.as_bytes()),
        len = text.len(),
    )
}

/// `bytes` as the inside of a WAT string literal: letters and digits as they are, every other
/// byte as `\hh`.
fn wat_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(*b).to_string()
            } else {
                format!("\\{b:02x}")
            }
        })
        .collect()
}

/// A zip holding `wasm` as [`HANDLER`].
fn zip_module(wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
    zip_one(HANDLER, wasm)
}

/// A zip holding one file, `name`, with `bytes` in it.
pub fn zip_one(name: &str, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    writer.start_file(name, SimpleFileOptions::DEFAULT.unix_permissions(0o644))?;
    writer.write_all(bytes)?;
    Ok(writer.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wat_strings_escape_everything_but_letters_and_digits() {
        assert_eq!(wat_string(br#"{"a":1}"#), r#"\7b\22a\22\3a1\7d"#);
    }

    #[test]
    fn both_modules_compile_and_zip_under_the_handler_name() {
        for zip in [
            echo_zip().expect("echo"),
            constant_zip(r#"{"round":1}"#).expect("constant"),
            clock_zip().expect("clock"),
        ] {
            let archive = zip::ZipArchive::new(Cursor::new(zip)).expect("zip");
            let names: Vec<String> = archive
                .file_names()
                .map(|n| n.expect("a name").into_owned())
                .collect();
            assert_eq!(names, [HANDLER]);
        }
    }

    #[test]
    fn the_constant_module_holds_its_text() {
        let wasm = wat::parse_str(constant_wat("hi there")).expect("compiles");
        assert!(wasm.windows(8).any(|w| w == b"hi there"));
    }
}
