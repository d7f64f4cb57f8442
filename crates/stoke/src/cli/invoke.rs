//! `stoke invoke NAME [--payload JSON|@file] [--qualifier Q] [--log] [--dry-run]`: one
//! synchronous call through the Invoke API.
//!
//! The function's output goes to stdout as it came (with a newline added on a terminal); with
//! `--log` the decoded log tail (`X-Amz-Log-Result`) goes to stderr first. A function error
//! (`X-Amz-Function-Error`) prints the error JSON on stdout and fails with
//! `function error: <errorType>`, so the exit code is 1 as for any other failure; an error of
//! the platform (not found, throttled, …) is the usual one-line error.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::Value;

use super::ClientArgs;
use stoke_client::{InvokeOutput, InvokeRequest};

/// Flags of `stoke invoke`.
#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// Function name or ARN.
    pub name: String,
    /// The event: JSON text, `@FILE` to read it from a file, or `@-` from stdin [default: {}]
    #[arg(long, value_name = "JSON|@FILE")]
    pub payload: Option<String>,
    /// Version or alias to invoke.
    #[arg(long)]
    pub qualifier: Option<String>,
    /// Print the call's log tail (its last 4 KB) on stderr.
    #[arg(long)]
    pub log: bool,
    /// Only check that the call would be allowed (InvocationType DryRun); runs nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `stoke invoke`.
pub async fn run(args: InvokeArgs) -> anyhow::Result<()> {
    let payload = args
        .payload
        .as_deref()
        .map(|p| read_payload(p, &mut std::io::stdin().lock()))
        .transpose()?;
    let client = args.client.client()?;
    let output = client
        .invoke(&InvokeRequest {
            name: &args.name,
            qualifier: args.qualifier.as_deref(),
            invocation_type: if args.dry_run {
                "DryRun"
            } else {
                "RequestResponse"
            },
            log_tail: args.log && !args.dry_run,
            payload,
        })
        .await
        .with_context(|| format!("cannot invoke {}", args.name))?;

    if args.dry_run {
        eprintln!(
            "dry run: {} can be invoked (HTTP {})",
            args.name, output.status
        );
        return Ok(());
    }
    if args.log {
        match &output.log_result {
            Some(tail) => {
                let text = base64::engine::general_purpose::STANDARD
                    .decode(tail)
                    .context("the server's X-Amz-Log-Result is not base64")?;
                let mut stderr = std::io::stderr().lock();
                stderr.write_all(&text)?;
                if !text.ends_with(b"\n") {
                    stderr.write_all(b"\n")?;
                }
            }
            None => eprintln!("(the server sent no log tail)"),
        }
    }
    write_output(&output)?;
    if let Some(kind) = &output.function_error {
        bail!("function error: {}", error_type(&output.payload, kind));
    }
    Ok(())
}

/// Writes the answer's payload to stdout; a terminal gets a final newline.
fn write_output(output: &InvokeOutput) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let written = out.write_all(&output.payload).and_then(|()| {
        if terminal && !output.payload.is_empty() && !output.payload.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        out.flush()
    });
    match written {
        // A closed pipe (`stoke invoke f | head -c1`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the output"),
    }
}

/// The payload argument: `@-` reads `stdin`, `@FILE` the file, anything else is the JSON text.
fn read_payload(arg: &str, stdin: &mut impl std::io::Read) -> anyhow::Result<Vec<u8>> {
    match arg.strip_prefix('@') {
        Some("-") => {
            let mut bytes = Vec::new();
            stdin
                .read_to_end(&mut bytes)
                .context("reading the payload from stdin")?;
            Ok(bytes)
        }
        Some(path) => std::fs::read(Path::new(path))
            .with_context(|| format!("reading the payload file {path}")),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

/// The `errorType` of a function error's JSON, else the `X-Amz-Function-Error` value.
fn error_type(payload: &[u8], header: &str) -> String {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("errorType")?.as_str().map(str::to_owned))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| header.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_text_is_sent_as_given() {
        let mut stdin = std::io::empty();
        assert_eq!(
            read_payload(r#"{"a":1}"#, &mut stdin).expect("text"),
            br#"{"a":1}"#
        );
    }

    #[test]
    fn payload_at_file_reads_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("event.json");
        std::fs::write(&path, b"{\"from\":\"file\"}\n").expect("write");
        let arg = format!("@{}", path.display());
        assert_eq!(
            read_payload(&arg, &mut std::io::empty()).expect("file"),
            b"{\"from\":\"file\"}\n"
        );
    }

    #[test]
    fn payload_at_dash_reads_stdin() {
        let mut stdin: &[u8] = b"[1,2]";
        assert_eq!(read_payload("@-", &mut stdin).expect("stdin"), b"[1,2]");
    }

    #[test]
    fn a_missing_payload_file_is_named_in_the_error() {
        let err = read_payload("@/no/such/event.json", &mut std::io::empty()).expect_err("none");
        assert!(
            format!("{err:#}").contains("/no/such/event.json"),
            "{err:#}"
        );
    }

    #[test]
    fn error_type_comes_from_the_body_or_the_header() {
        assert_eq!(
            error_type(
                br#"{"errorType":"Runtime.ExitError","errorMessage":"x"}"#,
                "Unhandled"
            ),
            "Runtime.ExitError"
        );
        assert_eq!(error_type(b"not json", "Unhandled"), "Unhandled");
    }
}
