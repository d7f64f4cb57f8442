//! `stoke serve` as a child process, the server the bench measures: the binary given by
//! `--server-bin` (by default the running one), on a free loopback port, with a fresh temporary
//! data dir; its access key is read from the credentials file it writes there.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use stoke_client::credentials::{self, Credentials};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long `stoke serve` may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The line `stoke serve` prints once it listens.
const READY_PREFIX: &str = "AWS_ENDPOINT_URL=";
/// The profile of the credentials file `stoke serve` writes.
const PROFILE: &str = "stoke";

/// A `stoke serve` child process; killed when dropped.
pub struct StokeServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The default account's key, from its credentials file.
    pub credentials: Credentials,
    /// The data dir, removed when the server is gone.
    _data_dir: tempfile::TempDir,
}

/// How to start one node of a cluster (see [`StokeServer::start_node`]).
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its node id (written as `node-id` in its data dir before it starts).
    pub node_id: Option<String>,
    /// More `stoke serve` flags.
    pub args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
}

impl StokeServer {
    /// Starts `bin serve` on a free port with a new data dir, and waits until it listens.
    pub async fn start(bin: &Path, region: &str) -> anyhow::Result<Self> {
        let spec = NodeSpec {
            addr: free_port()?,
            node_id: None,
            args: Vec::new(),
            env: Vec::new(),
        };
        Self::start_node(bin, region, &spec).await
    }

    /// Starts `bin serve` as `spec` says, with a new data dir, and waits until it listens.
    pub async fn start_node(bin: &Path, region: &str, spec: &NodeSpec) -> anyhow::Result<Self> {
        let data_dir = tempfile::Builder::new()
            .prefix("stoke-bench-")
            .tempdir()
            .context("creating a data dir")?;
        if let Some(id) = &spec.node_id {
            std::fs::write(data_dir.path().join("node-id"), format!("{id}\n"))
                .context("writing the node id")?;
        }
        let addr = spec.addr;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--region")
            .arg(region)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // The server's own log would cost time on every call; keep warnings only, unless the
        // caller asked for more.
        if std::env::var_os("STOKE_LOG").is_none() {
            command.env("STOKE_LOG", "warn");
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout is not piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with(READY_PREFIX) {
                    return Ok(true);
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        match ready {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Ok(Err(_)) => {
                let status = child.wait().await?;
                bail!("{} serve exited before listening ({status})", bin.display());
            }
            Err(_) => bail!(
                "{} serve did not listen within {} s",
                bin.display(),
                START_TIMEOUT.as_secs()
            ),
        }
        // Keep reading, so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let file = data_dir.path().join("credentials");
        let credentials = credentials::from_file(&file, PROFILE)?
            .with_context(|| format!("no [{PROFILE}] profile in {}", file.display()))?;
        Ok(Self {
            child,
            addr,
            credentials,
            _data_dir: data_dir,
        })
    }

    /// The sum of a metric family's samples at the server's `/metrics`, if it answers one.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        crate::parse::metric_sum(&text, name)
    }

    /// Stops the server (SIGKILL: its data dir is thrown away anyway).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?)
}
