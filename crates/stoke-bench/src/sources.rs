//! The event source part of `stoke bench` (`--sources`, issue 15): for each broker, on a
//! `stoke serve` of its own and a broker the bench starts on a free loopback port with a
//! temporary data folder ([`Broker`]):
//!
//! 1. **Publish → start**: a mapping (BatchSize 1) to the clock guest (it writes the wall
//!    clock's nanoseconds as its one log line, `T <16 hex digits>`); messages published one at
//!    a time, each once the function is idle again; each sample is the guest's clock minus the
//!    bench's just before the publish call (one host, one clock): p50, p90, p99.
//! 2. **Sustained events per second**: a backlog published first, then a mapping (the
//!    default batch size and concurrency) to a trivial function; the rate from its first
//!    acknowledged message to its last, read from the broker's own count of what the group
//!    acknowledged.
//! 3. **The floor**: the same number of messages consumed by the broker's own client in the
//!    same run (batches of the same size, acknowledged per batch), and the publish rate.
//!
//! A broker is a [`Broker`] ([`broker`]): how to start it, the mapping's source members, publish, fill,
//! consume, and count what a group finished. Redis Streams is [`redis::RedisBroker`], NATS
//! JetStream [`nats::NatsBroker`]; RabbitMQ adds its own to [`broker()`].

pub mod broker;
pub mod nats;
pub mod redis;

pub use broker::Broker;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::json;
use stoke_client::LambdaClient;

use crate::config::REGION;
use crate::functions::create_wasm;
use crate::guests;
use crate::server::StokeServer;
use crate::stats::percentile;

/// What the sources part is asked to do.
#[derive(Debug, Clone)]
pub struct SourcesConfig {
    pub server_bin: std::path::PathBuf,
    /// The brokers to measure (`redis`, …).
    pub brokers: Vec<String>,
    /// Publish → start samples per broker.
    pub samples: usize,
    /// Messages of the throughput backlog (and of the floor).
    pub events: usize,
    /// The throughput mapping's batch size (and the floor's).
    pub batch_size: usize,
}

/// What one broker measured.
#[derive(Debug, Clone, Serialize)]
pub struct SourceResults {
    pub broker: String,
    pub samples: usize,
    pub start_p50_ms: f64,
    pub start_p90_ms: f64,
    pub start_p99_ms: f64,
    pub events: usize,
    pub batch_size: usize,
    /// Events per second one mapping delivered (and had acknowledged).
    pub mapping_events_per_s: f64,
    /// Events per second the broker's own client consumed and acknowledged.
    pub floor_events_per_s: f64,
    /// Events per second the bench published (pipelined).
    pub publish_events_per_s: f64,
}

/// The broker called `name`, started.
pub async fn broker(name: &str) -> anyhow::Result<Box<dyn Broker>> {
    match name {
        "redis" => Ok(Box::new(redis::RedisBroker::start().await?)),
        "nats" => Ok(Box::new(nats::NatsBroker::start().await?)),
        other => bail!("no broker called {other} (known: redis, nats)"),
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs the sources part for every broker asked for.
pub async fn run(config: &SourcesConfig) -> anyhow::Result<Vec<SourceResults>> {
    let mut out = Vec::new();
    for name in &config.brokers {
        eprintln!("sources: {name}");
        let mut broker = broker(name).await?;
        let server = StokeServer::start(&config.server_bin, REGION).await?;
        let measured = measure(config, &server, broker.as_mut()).await;
        server.stop().await;
        broker.stop().await;
        out.push(measured.with_context(|| format!("measuring {name}"))?);
    }
    Ok(out)
}

async fn measure(
    config: &SourcesConfig,
    server: &StokeServer,
    broker: &mut dyn Broker,
) -> anyhow::Result<SourceResults> {
    let endpoint = Url::parse(&format!("http://{}", server.addr))?;
    let api = LambdaClient::new(endpoint, REGION.to_owned(), server.credentials.clone())?;
    let name = broker.name();

    let deltas = start_latency(&api, broker, config.samples).await?;
    let ms = |p: f64| (percentile(&deltas, p).unwrap_or(f64::NAN) * 100.0).round() / 100.0;

    let topic = format!("bench-{name}-throughput");
    let body = r#"{"order":1,"kind":"bench"}"#;
    eprintln!("  publishing {} events", config.events);
    let started = Instant::now();
    broker.fill(&topic, config.events, body).await?;
    let publish = config.events as f64 / started.elapsed().as_secs_f64();
    eprintln!("  the floor: {name}'s own consumer");
    let started = Instant::now();
    broker
        .consume(&topic, config.events, config.batch_size)
        .await?;
    let floor = config.events as f64 / started.elapsed().as_secs_f64();
    eprintln!("  one mapping");
    let rate = mapping_rate(&api, broker, &topic, config).await?;
    Ok(SourceResults {
        broker: name.to_owned(),
        samples: deltas.len(),
        start_p50_ms: ms(50.0),
        start_p90_ms: ms(90.0),
        start_p99_ms: ms(99.0),
        events: config.events,
        batch_size: config.batch_size,
        mapping_events_per_s: rate.round(),
        floor_events_per_s: floor.round(),
        publish_events_per_s: publish.round(),
    })
}

/// Creates a mapping of `function` to `topic` on `broker`; its UUID and consumer group.
async fn create_mapping(
    api: &LambdaClient,
    broker: &dyn Broker,
    function: &str,
    topic: &str,
    batch_size: usize,
) -> anyhow::Result<(String, String)> {
    let mut req = json!({"FunctionName": function, "BatchSize": batch_size});
    if let (Some(o), Some(src)) = (req.as_object_mut(), broker.source(topic).as_object()) {
        o.extend(src.clone());
    }
    let m = api
        .stoke_call(
            Method::POST,
            "/2015-03-31/event-source-mappings",
            Some(req.to_string().into_bytes()),
        )
        .await
        .context("creating the mapping")?;
    let uuid = m["UUID"].as_str().context("no UUID")?.to_owned();
    let group = m["SelfManagedKafkaEventSourceConfig"]["ConsumerGroupId"]
        .as_str()
        .context("no consumer group")?
        .to_owned();
    Ok((uuid, group))
}

/// Waits until `group` has had `n` messages of `topic` acknowledged (up to `timeout`).
async fn wait_done(
    broker: &mut dyn Broker,
    topic: &str,
    group: &str,
    n: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let done = broker.done(topic, group).await.unwrap_or(0);
        if done >= n {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "only {done} of {n} messages were done within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Publish → start samples (ms), sorted.
async fn start_latency(
    api: &LambdaClient,
    broker: &mut dyn Broker,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    const WARMUP: usize = 20;
    let function = format!("bench-{}-clock", broker.name());
    create_wasm(api, &function, &guests::clock_zip()?).await?;
    let topic = format!("bench-{}-latency", broker.name());
    let (_, group) = create_mapping(api, broker, &function, &topic, 1).await?;
    eprintln!("  publish → start, {samples} messages one at a time");
    let mut sent = Vec::with_capacity(samples);
    for i in 0..WARMUP + samples {
        let at = now_ns();
        broker.publish(&topic, &format!("{{\"i\":{i}}}")).await?;
        // The first waits for the poller to start.
        let timeout = Duration::from_secs(if i == 0 { 30 } else { 10 });
        wait_done(broker, &topic, &group, (i + 1) as u64, timeout).await?;
        if i >= WARMUP {
            sent.push(at);
        }
    }
    let starts = clock_lines(api, &function, WARMUP + samples).await?;
    // One message at a time: the n-th start is the n-th message's.
    let mut deltas: Vec<f64> = starts[WARMUP..]
        .iter()
        .zip(&sent)
        .map(|(s, p)| (*s as f64 - *p as f64) / 1e6)
        .collect();
    deltas.sort_by(f64::total_cmp);
    Ok(deltas)
}

/// The clock guest's `T <hex ns>` lines of `function`, in order, once there are `n`.
async fn clock_lines(api: &LambdaClient, function: &str, n: usize) -> anyhow::Result<Vec<u128>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = json!({
                "logGroupName": format!("/aws/lambda/{function}"),
                "limit": 10000,
            });
            if let (Some(t), Some(o)) = (&token, req.as_object_mut()) {
                o.insert("nextToken".into(), json!(t));
            }
            let page = api.filter_log_events(&req).await?;
            for e in &page.events {
                for line in e.message.lines() {
                    if let Some(hex) = line.trim().strip_prefix("T ")
                        && let Ok(ns) = u128::from_str_radix(hex.trim(), 16)
                    {
                        out.push(ns);
                    }
                }
            }
            match page.next_token {
                Some(t) if !page.events.is_empty() => token = Some(t),
                _ => break,
            }
        }
        out.sort_unstable();
        if out.len() >= n {
            return Ok(out);
        }
        ensure!(
            Instant::now() < deadline,
            "only {} of {n} runs logged their clock",
            out.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One mapping's sustained rate through a backlog of `config.events` on `topic`.
async fn mapping_rate(
    api: &LambdaClient,
    broker: &mut dyn Broker,
    topic: &str,
    config: &SourcesConfig,
) -> anyhow::Result<f64> {
    let function = format!("bench-{}-sink", broker.name());
    create_wasm(api, &function, &guests::constant_zip("{}")?).await?;
    let (_, group) = create_mapping(api, broker, &function, topic, config.batch_size).await?;
    let total = config.events as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    // From the first acknowledged batch (the poller has started) to the last.
    let (first, t0) = loop {
        let done = broker.done(topic, &group).await.unwrap_or(0);
        if done > 0 {
            break (done, Instant::now());
        }
        ensure!(Instant::now() < deadline, "the mapping never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    wait_done(broker, topic, &group, total, Duration::from_secs(600)).await?;
    let rest = total.saturating_sub(first);
    Ok(rest as f64 / t0.elapsed().as_secs_f64())
}

/// The sources part's table.
pub fn markdown(results: &[SourceResults]) -> String {
    let mut s = String::from(
        "| broker | publish → start p50 | p90 | p99 | one mapping | the broker's own consumer | \
         share | publish |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {} events/s | {} events/s | {:.0} % | {} events/s |\n",
            r.broker,
            r.start_p50_ms,
            r.start_p90_ms,
            r.start_p99_ms,
            r.mapping_events_per_s,
            r.floor_events_per_s,
            100.0 * r.mapping_events_per_s / r.floor_events_per_s,
            r.publish_events_per_s,
        ));
    }
    if let Some(r) = results.first() {
        s.push_str(&format!(
            "\n{} samples one at a time (BatchSize 1); {} events in batches of {}.\n",
            r.samples, r.events, r.batch_size
        ));
    }
    s
}
