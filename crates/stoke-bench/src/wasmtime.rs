//! The `wasmtime serve` peer of the warm runs: Wasmtime's own HTTP server (wasmtime-cli 48, the
//! engine Stoke is built on) serving `examples/hello-http`, a wasi:http component that answers
//! each request with its body, as the echo function does; measured with the same clients and
//! the same signed requests as Stoke, so the table shows Stoke against the engine it runs on.
//!
//! What it needs, and where it looks ([`locate`]):
//! - `wasmtime`: `--wasmtime-bin` (or `STOKE_BENCH_WASMTIME`), else `wasmtime` on `PATH`, else
//!   `$CARGO_HOME/bin/wasmtime` (`~/.cargo/bin`, where `cargo install` puts it);
//! - the component: `--wasmtime-component`, else
//!   `$STOKE_GUEST_TARGET_DIR/wasm32-wasip2/release/hello_http.wasm` (default target dir
//!   `/var/tmp/stoke-guest-target`, the guests' own).
//!
//! What is missing is installed only when asked (`--install-wasmtime`: `cargo install --locked
//! wasmtime-cli@^48`, and `cargo build` of the component for `wasm32-wasip2`); otherwise the
//! bench says how to get it and leaves the peer out of the run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::config::WasmtimeConfig;
use crate::server::free_port;

/// The wasmtime-cli release the peer is: the engine version Stoke builds on.
pub const WASMTIME_MAJOR: &str = "48";
/// The component's file name in the target dir.
pub const COMPONENT_FILE: &str = "hello_http.wasm";
/// The component's target.
const COMPONENT_TARGET: &str = "wasm32-wasip2";
/// The component's source, in this checkout.
const COMPONENT_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello-http");
/// The guests' target dir, as `scripts/build-guests.sh` has it.
const ENV_GUEST_TARGET_DIR: &str = "STOKE_GUEST_TARGET_DIR";
const DEFAULT_GUEST_TARGET_DIR: &str = "/var/tmp/stoke-guest-target";
/// How long `wasmtime serve` may take to listen (it compiles the component first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The two things the peer needs, found.
#[derive(Debug, Clone)]
pub struct Found {
    pub bin: PathBuf,
    pub component: PathBuf,
    /// `wasmtime --version`.
    pub version: String,
}

/// Finds `wasmtime` and the component (installing what is missing when `config.install`).
/// `Ok(Err(why))` when one is missing: the reason, with how to get it.
pub async fn locate(config: &WasmtimeConfig) -> anyhow::Result<Result<Found, String>> {
    let bin = match config.bin.clone().or_else(find_wasmtime) {
        Some(bin) => bin,
        None if config.install => install_wasmtime().await?,
        None => {
            return Ok(Err(format!(
                "no `wasmtime` on PATH or in $CARGO_HOME/bin; install it with `cargo install \
                 --locked wasmtime-cli@^{WASMTIME_MAJOR}` (or run the bench with \
                 --install-wasmtime), or name it with --wasmtime-bin"
            )));
        }
    };
    let version = version(&bin).await?;
    if !version.starts_with(&format!("wasmtime {WASMTIME_MAJOR}.")) {
        eprintln!(
            "  warning: {} is {version}, not {WASMTIME_MAJOR}.x",
            bin.display()
        );
    }
    let component = config.component.clone().unwrap_or_else(default_component);
    if !component.is_file() {
        if config.install && config.component.is_none() {
            build_component().await?;
        } else {
            return Ok(Err(format!(
                "no component at {}; build it with `{}` (or run the bench with \
                 --install-wasmtime), or name it with --wasmtime-component",
                component.display(),
                build_command_line()
            )));
        }
    }
    Ok(Ok(Found {
        bin,
        component,
        version,
    }))
}

/// `wasmtime` on `PATH`, else in cargo's bin folder.
fn find_wasmtime() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("wasmtime"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin").join("wasmtime"));
    on_path
        .chain(cargo_home)
        .find(|candidate| candidate.is_file())
}

/// Where the component is built: the guests' target dir.
fn guest_target_dir() -> PathBuf {
    std::env::var_os(ENV_GUEST_TARGET_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_GUEST_TARGET_DIR))
}

fn default_component() -> PathBuf {
    guest_target_dir()
        .join(COMPONENT_TARGET)
        .join("release")
        .join(COMPONENT_FILE)
}

/// The command that builds the component, to print.
fn build_command_line() -> String {
    format!(
        "rustup target add {COMPONENT_TARGET} && CARGO_TARGET_DIR={} cargo build --release \
         --target {COMPONENT_TARGET} --manifest-path examples/hello-http/Cargo.toml",
        guest_target_dir().display()
    )
}

/// `wasmtime --version`, trimmed.
async fn version(bin: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("running {} --version", bin.display()))?;
    if !out.status.success() {
        bail!("{} --version failed ({})", bin.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `command`, its output on the bench's stderr; fails unless it succeeds.
async fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    eprintln!("{what}");
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .await
        .with_context(|| format!("starting: {what}"))?;
    if !status.success() {
        bail!("{what}: {status}");
    }
    Ok(())
}

/// `cargo install --locked wasmtime-cli@^48` into cargo's usual root; answers the binary.
async fn install_wasmtime() -> anyhow::Result<PathBuf> {
    let spec = format!("wasmtime-cli@^{WASMTIME_MAJOR}");
    run(
        Command::new("cargo").args(["install", "--locked", &spec]),
        &format!("installing {spec} with cargo install (it takes a while: it builds wasmtime)"),
    )
    .await?;
    find_wasmtime()
        .context("cargo install finished, but no wasmtime is on PATH or in $CARGO_HOME/bin")
}

/// Builds `examples/hello-http` for `wasm32-wasip2` into the guests' target dir.
async fn build_component() -> anyhow::Result<()> {
    let manifest = Path::new(COMPONENT_SOURCE).join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "the component's source is not at {} (this stoke was built from another checkout)",
            manifest.display()
        );
    }
    if rustup_runs() {
        run(
            Command::new("rustup").args(["target", "add", COMPONENT_TARGET]),
            &format!("adding the {COMPONENT_TARGET} target"),
        )
        .await?;
    }
    run(
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                COMPONENT_TARGET,
                "--manifest-path",
            ])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", guest_target_dir()),
        "building the hello-http component",
    )
    .await
}

/// True when `rustup` runs (a toolchain without it must have the target already).
fn rustup_runs() -> bool {
    std::process::Command::new("rustup")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A `wasmtime serve` child process; killed when dropped.
pub struct WasmtimeServer {
    _child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl WasmtimeServer {
    /// Starts `wasmtime serve` on a free loopback port and waits until it accepts connections.
    pub async fn start(found: &Found) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let mut child = Command::new(&found.bin)
            .arg("serve")
            // Rust's std imports wasi:cli (environment, exit) beside the proxy world.
            .arg("-Scli")
            .arg("--addr")
            .arg(addr.to_string())
            .arg(&found.component)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", found.bin.display()))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(Self {
                    _child: child,
                    addr,
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!("wasmtime serve exited before listening ({status})");
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "wasmtime serve did not listen within {} s",
                    START_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_source_is_in_this_checkout() {
        assert!(Path::new(COMPONENT_SOURCE).join("Cargo.toml").is_file());
        assert!(default_component().ends_with("wasm32-wasip2/release/hello_http.wasm"));
    }

    #[tokio::test]
    async fn a_missing_component_is_reported_with_how_to_build_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Any executable answers `--version` here; the component is what is missing.
        let config = WasmtimeConfig {
            off: false,
            install: false,
            bin: Some(PathBuf::from("/bin/echo")),
            component: Some(dir.path().join("none.wasm")),
        };
        let why = locate(&config).await.expect("runs").expect_err("missing");
        assert!(
            why.contains("none.wasm") && why.contains("cargo build"),
            "{why}"
        );
    }
}
