//! The process runtimes in `stoke bench`: cold start and warm calls of the Python and Node
//! hello functions (`examples/hello-python`, `examples/hello-node`), measured in the same run
//! as the floors they cannot beat: the interpreter's own start-up (`python3 -S -c pass`,
//! `node -e 0`, the same real executables the server resolves) and the bare HTTP round trip of
//! the warm section.
//!
//! The functions get 1769 MB (one vCPU, as on Lambda), so that the CPU quota of smaller sizes
//! does not dominate back-to-back calls.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use base64::Engine as _;
use http::StatusCode;
use stoke_client::LambdaClient;

use crate::functions::{self, NewFunction};
use crate::guests::zip_one;
use crate::load::{Conn, InvokeCall, Signer};
use crate::parse::{self, ReportLine};
use crate::results::RuntimeRow;
use crate::server::StokeServer;
use crate::stats::{median, percentile_us, round1};

const HELLO_PYTHON: &str = include_str!("../../../examples/hello-python/app.py");
const HELLO_NODE: &str = include_str!("../../../examples/hello-node/index.js");
const MEMORY_MB: u32 = 1769;

/// The real path of an interpreter (following shims), as the server resolves it.
fn real_exe(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    ensure!(out.status.success(), "{cmd} failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The median wall time of `exe args` over `n` runs, µs.
fn start_up(exe: &str, args: &[&str], n: usize) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let status = Command::new(exe).args(args).status()?;
        ensure!(status.success(), "{exe} {args:?} failed");
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(samples))
}

/// Creates a function of `runtime` with the bench's memory size and a 10 s timeout.
async fn create(
    api: &LambdaClient,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
) -> anyhow::Result<()> {
    let function = NewFunction {
        name,
        runtime,
        handler,
        memory_mb: MEMORY_MB,
        timeout_s: 10,
        zip,
    };
    functions::create(api, &function).await
}

/// What one call answered: its latency and its REPORT line when the tail was asked for.
async fn call(
    conn: &mut Conn,
    signer: &Signer,
    server: &StokeServer,
    name: &str,
    tail: bool,
) -> anyhow::Result<(Duration, Option<ReportLine>)> {
    let call = InvokeCall {
        log_tail: tail,
        ..InvokeCall::new(name, br#"{"name":"bench"}"#)
    };
    let answer = conn.send(signer.invoke(server.addr, &call)?).await?;
    ensure!(
        answer.status == StatusCode::OK && !answer.headers.contains_key("x-amz-function-error"),
        "{name} answered HTTP {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let line = answer
        .header("x-amz-log-result")
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .and_then(|log| parse::parse_report(&String::from_utf8_lossy(&log)));
    Ok((answer.latency, line))
}

/// Measures both runtimes. `bare_p50_us` is the bare server's p50 of this run.
#[allow(clippy::too_many_arguments)]
pub async fn measure(
    api: &LambdaClient,
    conn: &mut Conn,
    signer: &Signer,
    server: &StokeServer,
    bare_p50_us: f64,
    cold_starts: usize,
    warm_calls: usize,
) -> anyhow::Result<Vec<RuntimeRow>> {
    let python = real_exe(
        "python3",
        &[
            "-c",
            "import os,sys;print(os.path.realpath(sys.executable))",
        ],
    )?;
    let node = real_exe(
        "node",
        &[
            "-e",
            "console.log(require('fs').realpathSync(process.execPath))",
        ],
    )?;
    let cases = [
        (
            "python3.12",
            "app.handler",
            "app.py",
            HELLO_PYTHON,
            python,
            // Without `site`: the sandbox's interpreter sees no site-packages (their `.pth`
            // files, run at every start, belong to the host, not to the interpreter).
            vec!["-S", "-c", "pass"],
        ),
        (
            "nodejs20.x",
            "index.handler",
            "index.js",
            HELLO_NODE,
            node,
            vec!["-e", "0"],
        ),
    ];
    let mut rows = Vec::new();
    for (runtime, handler, file, text, exe, floor_args) in cases {
        eprintln!("{runtime}: interpreter start-up ({exe})");
        let floor = start_up(&exe, &floor_args, cold_starts.max(5))?;
        let zip = zip_one(file, text.as_bytes())?;
        eprintln!("{runtime}: {cold_starts} cold starts");
        let (mut firsts, mut inits) = (Vec::new(), Vec::new());
        let tag = runtime.replace('.', "");
        for i in 0..cold_starts.max(1) {
            let name = format!("bench-{tag}-cold-{i}");
            create(api, &name, runtime, handler, &zip).await?;
            let (latency, line) = call(conn, signer, server, &name, true).await?;
            firsts.push(latency.as_secs_f64() * 1e6);
            inits.push(line.and_then(|l| l.init_ms).unwrap_or(f64::NAN));
        }
        eprintln!("{runtime}: {warm_calls} warm calls");
        let name = format!("bench-{tag}-warm");
        create(api, &name, runtime, handler, &zip).await?;
        for _ in 0..20 {
            call(conn, signer, server, &name, false).await?;
        }
        let mut warm = Vec::with_capacity(warm_calls);
        for _ in 0..warm_calls.max(1) {
            warm.push(call(conn, signer, server, &name, false).await?.0);
        }
        let (_, line) = call(conn, signer, server, &name, true).await?;
        warm.sort();
        let p = |q: f64| percentile_us(&warm, q);
        let cold = median(firsts);
        let warm_p50 = p(50.0);
        rows.push(RuntimeRow {
            runtime: runtime.to_owned(),
            interpreter_start_us: round1(floor),
            cold_samples: cold_starts.max(1),
            cold_first_call_us: round1(cold),
            cold_init_ms: round1(median(inits) * 100.0) / 100.0,
            cold_overhead_us: round1(cold - floor),
            warm_calls: warm.len(),
            warm_p50_us: round1(warm_p50),
            warm_p99_us: round1(p(99.0)),
            bare_p50_us: round1(bare_p50_us),
            warm_overhead_us: round1(warm_p50 - bare_p50_us),
            warm_duration_ms: line.map_or(f64::NAN, |l| l.duration_ms),
        });
    }
    Ok(rows)
}
