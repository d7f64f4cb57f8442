//! Redis Streams as the bench's [`Broker`]: a `redis-server` child process (Debian package
//! `redis-server`) on a free loopback port with a temporary folder and no persistence (the
//! floor and the mapping read the same server), spoken to with the `redis` crate: `XADD` to
//! publish (pipelined to fill), `XREADGROUP` + `XACK` for the floor, `XINFO GROUPS`
//! (`entries-read` less `pending`) for what a group finished.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamReadReply};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::broker::Broker;
use crate::server::free_port;

/// The group of the floor's own consumer.
const FLOOR_GROUP: &str = "bench-floor";

/// A `redis-server` the bench started, and one connection to it.
pub struct RedisBroker {
    child: Child,
    url: String,
    conn: MultiplexedConnection,
    _dir: tempfile::TempDir,
}

impl RedisBroker {
    /// Starts `redis-server` and connects to it.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("stoke-bench-redis")
            .tempdir()?;
        let port = free_port()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (Debian package `redis-server`)")?;
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let conn = loop {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => bail!("redis-server never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        Ok(Self {
            child,
            url,
            conn,
            _dir: dir,
        })
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn source(&self, topic: &str) -> Value {
        json!({
            "SelfManagedEventSource": {"Endpoints": {"REDIS_URL": [self.url]}},
            "Topics": [topic],
        })
    }

    async fn publish(&mut self, topic: &str, body: &str) -> anyhow::Result<()> {
        let _: String = redis::cmd("XADD")
            .arg(topic)
            .arg("*")
            .arg("body")
            .arg(body)
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }

    async fn fill(&mut self, topic: &str, n: usize, body: &str) -> anyhow::Result<()> {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(1000);
            let mut pipe = redis::pipe();
            for _ in 0..chunk {
                pipe.cmd("XADD")
                    .arg(topic)
                    .arg("*")
                    .arg("body")
                    .arg(body)
                    .ignore();
            }
            let () = pipe.query_async(&mut self.conn).await?;
            left -= chunk;
        }
        Ok(())
    }

    async fn consume(&mut self, topic: &str, n: usize, batch: usize) -> anyhow::Result<()> {
        let () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(topic)
            .arg(FLOOR_GROUP)
            .arg("0")
            .query_async(&mut self.conn)
            .await?;
        let mut got = 0;
        while got < n {
            let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(FLOOR_GROUP)
                .arg("floor")
                .arg("COUNT")
                .arg(batch)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(topic)
                .arg(">")
                .query_async(&mut self.conn)
                .await?;
            let ids: Vec<String> = reply
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .map(|e| e.id)
                .collect();
            if ids.is_empty() {
                bail!("the floor's consumer read nothing after {got} of {n}");
            }
            got += ids.len();
            let _: i64 = redis::cmd("XACK")
                .arg(topic)
                .arg(FLOOR_GROUP)
                .arg(&ids)
                .query_async(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    async fn done(&mut self, topic: &str, group: &str) -> anyhow::Result<u64> {
        let reply: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(topic)
            .query_async(&mut self.conn)
            .await?;
        let Some(g) = reply.groups.into_iter().find(|g| g.name == group) else {
            return Ok(0);
        };
        let read = g.entries_read.unwrap_or(0);
        Ok(u64::try_from(read.saturating_sub(g.pending)).unwrap_or(0))
    }

    async fn stop(mut self: Box<Self>) {
        let _ = self.child.kill().await;
    }
}
