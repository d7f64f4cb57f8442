//! NATS JetStream as the bench's [`Broker`]: a `nats-server -js` child process (Debian package
//! `nats-server`) on a free loopback port with its store in a temporary folder, spoken to with
//! `async-nats`: a file-backed stream per topic (subjects `<topic>.>`, made on first use),
//! publishes waiting for JetStream's acknowledgement (pipelined to fill), a durable pull
//! consumer fetching and acknowledging batches for the floor, and a consumer's ack floor for
//! what a durable consumer finished.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, consumer::pull, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::broker::Broker;
use crate::server::free_port;

/// The durable consumer of the floor.
const FLOOR_CONSUMER: &str = "bench-floor";
/// Publishes in flight at once while filling.
const FILL_WINDOW: usize = 1000;

/// A `nats-server` the bench started, and one client of it.
pub struct NatsBroker {
    child: Child,
    url: String,
    js: jetstream::Context,
    streams: HashSet<String>,
    _dir: tempfile::TempDir,
}

impl NatsBroker {
    /// Starts `nats-server -js` and connects to it.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("stoke-bench-nats")
            .tempdir()?;
        let port = free_port()?.port();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nats-server (Debian package `nats-server`)")?;
        let url = format!("nats://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = loop {
            match async_nats::connect(url.as_str()).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => bail!("nats-server never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        Ok(Self {
            child,
            url,
            js: jetstream::new(client),
            streams: HashSet::new(),
            _dir: dir,
        })
    }

    /// The stream `topic` (made the first time) and its subject to publish to.
    async fn ensure(&mut self, topic: &str) -> anyhow::Result<String> {
        if !self.streams.contains(topic) {
            self.js
                .get_or_create_stream(stream::Config {
                    name: topic.to_owned(),
                    subjects: vec![format!("{topic}.>")],
                    ..Default::default()
                })
                .await?;
            self.streams.insert(topic.to_owned());
        }
        Ok(format!("{topic}.m"))
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn source(&self, topic: &str) -> Value {
        json!({
            "SelfManagedEventSource": {"Endpoints": {"NATS_URL": [self.url]}},
            "Topics": [topic],
        })
    }

    async fn publish(&mut self, topic: &str, body: &str) -> anyhow::Result<()> {
        let subject = self.ensure(topic).await?;
        self.js
            .publish(subject, body.to_owned().into())
            .await?
            .await?;
        Ok(())
    }

    async fn fill(&mut self, topic: &str, n: usize, body: &str) -> anyhow::Result<()> {
        let subject = self.ensure(topic).await?;
        let mut left = n;
        while left > 0 {
            let chunk = left.min(FILL_WINDOW);
            let mut acks = Vec::with_capacity(chunk);
            for _ in 0..chunk {
                acks.push(
                    self.js
                        .publish(subject.clone(), body.to_owned().into())
                        .await?,
                );
            }
            for ack in acks {
                ack.await?;
            }
            left -= chunk;
        }
        Ok(())
    }

    async fn consume(&mut self, topic: &str, n: usize, batch: usize) -> anyhow::Result<()> {
        self.ensure(topic).await?;
        let consumer = self
            .js
            .get_stream(topic)
            .await?
            .get_or_create_consumer(
                FLOOR_CONSUMER,
                pull::Config {
                    durable_name: Some(FLOOR_CONSUMER.to_owned()),
                    ..Default::default()
                },
            )
            .await?;
        let client = self.js.client();
        let mut got = 0;
        while got < n {
            let mut messages = consumer
                .batch()
                .max_messages(batch.min(n - got))
                .expires(Duration::from_secs(1))
                .messages()
                .await?;
            let mut read = 0;
            while let Some(m) = messages.next().await {
                m.map_err(|e| anyhow::anyhow!("{e}"))?
                    .ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                read += 1;
            }
            if read == 0 {
                bail!("the floor's consumer read nothing after {got} of {n}");
            }
            client.flush().await?;
            got += read;
        }
        Ok(())
    }

    async fn done(&mut self, topic: &str, group: &str) -> anyhow::Result<u64> {
        let Ok(stream) = self.js.get_stream(topic).await else {
            return Ok(0);
        };
        let Ok(consumer) = stream.get_consumer::<pull::Config>(group).await else {
            return Ok(0);
        };
        Ok(consumer.cached_info().ack_floor.stream_sequence)
    }

    async fn stop(mut self: Box<Self>) {
        let _ = self.child.kill().await;
    }
}
