//! `stoke bench --store-compare`: durable async enqueues per second on the embedded SQLite store
//! against a PostgreSQL database (issue 14's benchmark), measured the same way as the async
//! part of a full run ([`crate::asynq`]) on two servers, one after the other: one with its
//! SQLite file in the data dir, one with `--store postgres://…`.
//!
//! The PostgreSQL server is the one `STOKE_BENCH_PG_URL` names (an empty database the bench may
//! fill), else a throw-away cluster started the way the tests start theirs
//! (`stoke_store::postgres::testing`), but durable: fsync on, as SQLite's commits are. Both
//! acknowledge an event only once its commit is on disk.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use reqwest::Url;
use serde::Serialize;
use stoke_client::LambdaClient;
use stoke_store::postgres::testing::Cluster;

use crate::config::{Config, REGION};
use crate::load::{LoadSummary, Signer};
use crate::markdown::enqueue_cells;
use crate::results::{AsyncStart, Results};
use crate::server::{NodeSpec, StokeServer, free_port};

/// The environment variable naming the PostgreSQL database to measure instead of a throw-away
/// cluster.
pub const PG_URL_ENV: &str = "STOKE_BENCH_PG_URL";

/// What one `--store-compare` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct StoreCompare {
    /// Where the PostgreSQL database was (the URL without its password, or the throw-away
    /// cluster).
    pub postgres: String,
    pub runs: Vec<StoreRun>,
}

/// The async measures of one store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRun {
    /// `sqlite` or `postgres`.
    pub store: String,
    pub enqueue: Vec<LoadSummary>,
    pub start: Option<AsyncStart>,
}

/// Measures SQLite, then PostgreSQL (`pg_url`, else a throw-away durable cluster).
pub async fn run(config: &Config, pg_url: Option<&str>) -> anyhow::Result<StoreCompare> {
    // An empty `--store` is the default, the data dir's file, whatever STOKE_STORE says.
    let sqlite = measure(config, "sqlite", &["--store", ""]).await?;
    let (cluster, url, postgres) = match pg_url {
        Some(url) => (
            None,
            url.to_owned(),
            format!("{} ({PG_URL_ENV})", stoke_store::postgres::redact(url)),
        ),
        None => {
            eprintln!("starting a throw-away PostgreSQL cluster (fsync on)");
            let cluster = tokio::task::spawn_blocking(Cluster::start_durable)
                .await?
                .map_err(anyhow::Error::msg)
                .context("starting PostgreSQL")?;
            let cluster = Arc::new(cluster);
            let c = Arc::clone(&cluster);
            let url = tokio::task::spawn_blocking(move || c.try_create_database())
                .await?
                .map_err(anyhow::Error::msg)?;
            (
                Some(cluster),
                url,
                "a throw-away cluster on loopback (fsync on)".to_owned(),
            )
        }
    };
    let pg = measure(config, "postgres", &["--store", url.as_str()]).await;
    if let Some(cluster) = cluster {
        // Stopped on a blocking thread: `pg_ctl stop` waits.
        let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    }
    Ok(StoreCompare {
        postgres,
        runs: vec![sqlite, pg?],
    })
}

/// Starts a server with `extra` flags and runs the async measures on it.
async fn measure(config: &Config, store: &str, extra: &[&str]) -> anyhow::Result<StoreRun> {
    eprintln!("{store}: starting {} serve", config.server_bin.display());
    let spec = NodeSpec {
        addr: free_port()?,
        node_id: None,
        args: extra.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
    };
    let server = StokeServer::start_node(&config.server_bin, REGION, &spec).await?;
    let outcome = async {
        let endpoint = Url::parse(&format!("http://{}", server.addr))?;
        let api = LambdaClient::new(endpoint, REGION.to_owned(), server.credentials.clone())?;
        let signer = Arc::new(Signer {
            credentials: server.credentials.clone(),
            region: REGION.to_owned(),
        });
        let echo = crate::guests::echo_zip()?;
        let mut results = Results::new(config);
        crate::asynq::measure(config, &server, &api, &signer, &echo, &mut results).await?;
        Ok::<_, anyhow::Error>(StoreRun {
            store: store.to_owned(),
            enqueue: results.async_enqueue,
            start: results.async_start,
        })
    }
    .await;
    server.stop().await;
    outcome.with_context(|| format!("measuring the {store} store"))
}

/// The table of a `--store-compare` run.
pub fn markdown(r: &StoreCompare) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Durable async enqueues (`Event`, 202 after the commit is on disk): SQLite vs \
         PostgreSQL\n\nPostgreSQL: {}.\n",
        r.postgres
    );
    let _ = writeln!(
        s,
        "| store | clients | enqueues/s | p50 | p99 | 429s | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for run in &r.runs {
        for row in &run.enqueue {
            let _ = writeln!(s, "| {} | {} |", run.store, enqueue_cells(row));
        }
    }
    if r.runs.iter().any(|run| run.start.is_some()) {
        let _ = writeln!(
            s,
            "\n| store | 202 to start p50 | p90 | p99 |\n|---|---:|---:|---:|"
        );
        for run in &r.runs {
            if let Some(a) = run.start {
                let _ = writeln!(
                    s,
                    "| {} | {:.1} ms | {:.1} ms | {:.1} ms |",
                    run.store, a.p50_ms, a.p90_ms, a.p99_ms
                );
            }
        }
    }
    s
}
