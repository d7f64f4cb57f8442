//! The cluster part of `stoke bench` (`--cluster`, issue 14): three `stoke serve` nodes on
//! loopback sharing one PostgreSQL database (`--cluster-store URL` or `STOKE_BENCH_PG_URL`)
//! and one master key, knowing each other through the node registry's heartbeats.
//!
//! 1. **Local vs forwarded**: one echo function, created through its home node (the server's
//!    rendezvous formula: SHA-256 of node id NUL key, highest first), called one at a time
//!    through the home (served there) and through another node (forwarded to the home over
//!    the internal channel), in alternating blocks after a warm-up: p50/p99 of each and the
//!    difference. The entry node's `stoke_sync_calls_total{served="forwarded"}` must count
//!    every call of the second kind.
//! 2. **Warm-hit share**: 50 functions, each created through its home; then a mixed load
//!    (each call a random function through a random node, several clients at once); the share
//!    of calls that found a warm sandbox, summed over the nodes' `stoke_sync_calls_total`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use reqwest::Url;
use serde::Serialize;
use sha2::{Digest, Sha256};
use stoke_client::LambdaClient;

use crate::config::REGION;
use crate::functions::create_wasm;
use crate::guests;
use crate::load::{Conn, InvokeCall, Signer};
use crate::server::{NodeSpec, StokeServer, free_port};
use crate::stats::{percentile_us, round1};

/// What the cluster part is asked to do.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub server_bin: PathBuf,
    /// The PostgreSQL database the nodes share.
    pub store: String,
    /// Calls of each kind (local, forwarded) measured.
    pub calls: usize,
    /// Functions of the mixed load.
    pub functions: usize,
    /// Calls of the mixed load.
    pub mixed_calls: usize,
    /// Clients of the mixed load at once.
    pub clients: usize,
}

/// What the cluster part measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterResults {
    pub nodes: usize,
    pub calls: usize,
    pub local_p50_us: f64,
    pub local_p99_us: f64,
    pub forwarded_p50_us: f64,
    pub forwarded_p99_us: f64,
    pub extra_p50_us: f64,
    pub extra_p99_us: f64,
    pub functions: usize,
    pub mixed_calls: usize,
    pub mixed_errors: usize,
    pub warm_hit_share: f64,
    pub forwarded_share: f64,
}

const NODES: usize = 3;

struct Node {
    server: StokeServer,
    id: String,
}

fn score(node_id: &str, key: &str) -> [u8; 8] {
    let d = Sha256::new()
        .chain_update(node_id.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// The index of `function`'s home among `ids` ($LATEST of `account`'s).
fn home(ids: &[String], account: &str, function: &str) -> usize {
    let key = format!("{account}\0{function}\0$LATEST");
    (0..ids.len())
        .max_by(|&a, &b| {
            score(&ids[a], &key)
                .cmp(&score(&ids[b], &key))
                .then_with(|| ids[b].cmp(&ids[a]))
        })
        .unwrap_or(0)
}

async fn start(config: &ClusterConfig) -> anyhow::Result<Vec<Node>> {
    let master: [u8; 32] = rand::random();
    let master = master
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let addrs = (0..NODES)
        .map(|_| free_port())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ids: Vec<String> = (0..NODES)
        .map(|i| format!("bench-node-{}", i + 1))
        .collect();
    let mut nodes = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let args = vec!["--store".to_owned(), config.store.clone()];
        let spec = NodeSpec {
            addr: addrs[i],
            node_id: Some(ids[i].clone()),
            args,
            env: vec![("STOKE_MASTER_KEY".to_owned(), master.clone())],
        };
        let server = StokeServer::start_node(&config.server_bin, REGION, &spec)
            .await
            .with_context(|| format!("starting node {}", ids[i]))?;
        nodes.push(Node {
            server,
            id: ids[i].clone(),
        });
    }
    // The registry's heartbeats (every second) tell each node of the others; give them three.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    Ok(nodes)
}

/// Runs the cluster part: starts the nodes, measures, stops them.
pub async fn run(config: &ClusterConfig) -> anyhow::Result<ClusterResults> {
    eprintln!("cluster: starting {NODES} nodes on {}", config.store);
    let nodes = start(config).await?;
    let outcome = measure(config, &nodes).await;
    for n in nodes {
        n.server.stop().await;
    }
    outcome
}

async fn measure(config: &ClusterConfig, nodes: &[Node]) -> anyhow::Result<ClusterResults> {
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    // One store, one admin key: every node's credentials are the same.
    let credentials = nodes[0].server.credentials.clone();
    let signer = Arc::new(Signer {
        credentials: credentials.clone(),
        region: REGION.to_owned(),
    });
    let apis = nodes
        .iter()
        .map(|n| {
            let url = Url::parse(&format!("http://{}", n.server.addr))?;
            Ok(LambdaClient::new(
                url,
                REGION.to_owned(),
                credentials.clone(),
            )?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let echo = guests::echo_zip()?;
    let run_id: u32 = rand::random();
    // The account, from a first function's ARN.
    let probe = format!("bench-fwd-probe-{run_id:08x}");
    create_wasm(&apis[0], &probe, &echo).await?;
    let arn = apis[0]
        .get_function(&probe)
        .await?
        .configuration
        .function_arn;
    let account = arn
        .split(':')
        .nth(4)
        .context("the ARN's account")?
        .to_owned();

    // 1. Local vs forwarded.
    let name = format!("bench-fwd-{run_id:08x}");
    let h = home(&ids, &account, &name);
    let a = (h + 1) % NODES;
    create_wasm(&apis[h], &name, &echo).await?;
    let call = InvokeCall::new(&name, b"{\"hello\":\"world\"}");
    let mut local = Conn::open(nodes[h].server.addr).await?;
    let mut forwarded = Conn::open(nodes[a].server.addr).await?;
    let before = sync_calls(&nodes[a].server, Some("forwarded"), None).await;
    let (mut lt, mut ft) = (Vec::new(), Vec::new());
    eprintln!(
        "cluster: {} warm calls served by {} and forwarded through {}",
        config.calls, ids[h], ids[a]
    );
    for (conn, addr) in [
        (&mut local, nodes[h].server.addr),
        (&mut forwarded, nodes[a].server.addr),
    ] {
        for _ in 0..200 {
            conn.send(signer.invoke(addr, &call)?).await?;
        }
    }
    let block = (config.calls / 10).max(1);
    let mut forwarded_calls = 200;
    while lt.len() < config.calls {
        for (conn, addr, out) in [
            (&mut local, nodes[h].server.addr, &mut lt),
            (&mut forwarded, nodes[a].server.addr, &mut ft),
        ] {
            for _ in 0..block {
                let answer = conn.send(signer.invoke(addr, &call)?).await?;
                if answer.status != http::StatusCode::OK {
                    bail!("a warm call answered {}", answer.status);
                }
                out.push(answer.latency);
            }
        }
        forwarded_calls += block;
    }
    let counted = sync_calls(&nodes[a].server, Some("forwarded"), None).await - before;
    if counted.round() as usize != forwarded_calls {
        bail!(
            "{} counted {counted} forwarded calls, not {forwarded_calls}",
            ids[a]
        );
    }
    lt.sort();
    ft.sort();
    let (l50, l99) = (percentile_us(&lt, 50.0), percentile_us(&lt, 99.0));
    let (f50, f99) = (percentile_us(&ft, 50.0), percentile_us(&ft, 99.0));

    // 2. The warm-hit share after a mixed load.
    eprintln!(
        "cluster: {} functions, {} mixed calls from {} clients",
        config.functions, config.mixed_calls, config.clients
    );
    let names: Vec<String> = (0..config.functions)
        .map(|i| format!("bench-mix-{run_id:08x}-{i}"))
        .collect();
    for n in &names {
        create_wasm(&apis[home(&ids, &account, n)], n, &echo).await?;
    }
    let mut base = (0.0, 0.0, 0.0);
    for n in nodes {
        base.0 += sync_calls(&n.server, None, Some("true")).await;
        base.1 += sync_calls(&n.server, None, None).await;
        base.2 += sync_calls(&n.server, Some("forwarded"), None).await;
    }
    let errors = mixed_load(config, nodes, &signer, &names).await?;
    let mut after = (0.0, 0.0, 0.0);
    for n in nodes {
        after.0 += sync_calls(&n.server, None, Some("true")).await;
        after.1 += sync_calls(&n.server, None, None).await;
        after.2 += sync_calls(&n.server, Some("forwarded"), None).await;
    }
    let all = (after.1 - base.1).max(1.0);
    Ok(ClusterResults {
        nodes: NODES,
        calls: lt.len(),
        local_p50_us: round1(l50),
        local_p99_us: round1(l99),
        forwarded_p50_us: round1(f50),
        forwarded_p99_us: round1(f99),
        extra_p50_us: round1(f50 - l50),
        extra_p99_us: round1(f99 - l99),
        functions: config.functions,
        mixed_calls: config.mixed_calls,
        mixed_errors: errors,
        warm_hit_share: (after.0 - base.0) / all,
        forwarded_share: (after.2 - base.2) / all,
    })
}

/// `config.mixed_calls` calls, each of a random function through a random node, from
/// `config.clients` clients at once; answers the calls that did not answer 200.
async fn mixed_load(
    config: &ClusterConfig,
    nodes: &[Node],
    signer: &Arc<Signer>,
    names: &[String],
) -> anyhow::Result<usize> {
    let left = Arc::new(AtomicUsize::new(config.mixed_calls));
    let addrs: Vec<_> = nodes.iter().map(|n| n.server.addr).collect();
    let names = Arc::new(names.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..config.clients.max(1) {
        let (left, addrs, names, signer) = (
            Arc::clone(&left),
            addrs.clone(),
            Arc::clone(&names),
            Arc::clone(signer),
        );
        tasks.push(tokio::spawn(async move {
            let mut conns = Vec::new();
            for addr in &addrs {
                conns.push(Conn::open(*addr).await?);
            }
            let mut errors = 0usize;
            while left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                let f = &names[rand::random_range(0..names.len())];
                let i = rand::random_range(0..addrs.len());
                let call = InvokeCall::new(f, b"{}");
                let answer = conns[i].send(signer.invoke(addrs[i], &call)?).await?;
                if answer.status != http::StatusCode::OK {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>(errors)
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await.context("a client of the mixed load")??;
    }
    Ok(errors)
}

/// The sum of `stoke_sync_calls_total` at `server` whose `served` and `warm` labels are as
/// given (`None`: any).
async fn sync_calls(server: &StokeServer, served: Option<&str>, warm: Option<&str>) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{}/metrics", server.addr)).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("stoke_sync_calls_total{"))
        .filter(|l| served.is_none_or(|s| l.contains(&format!("served=\"{s}\""))))
        .filter(|l| warm.is_none_or(|w| l.contains(&format!("warm=\"{w}\""))))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum()
}

/// The cluster part's table.
pub fn markdown(r: &ClusterResults) -> String {
    format!(
        "## Cluster: a warm call served locally vs forwarded ({nodes} nodes, loopback)\n\n\
         | path | p50 µs | p99 µs |\n|---|---:|---:|\n\
         | served by the home node | {lp50} | {lp99} |\n\
         | through another node, forwarded to the home | {fp50} | {fp99} |\n\
         | **the forward's cost** | **{ep50}** | **{ep99}** |\n\n\
         {calls} calls of each, one at a time, in alternating blocks.\n\n\
         ## Cluster: warm-hit share after a mixed load\n\n\
         {functions} functions, {mixed} calls (a random function through a random node): \
         **{share:.1} %** found a warm sandbox; {fwd:.1} % were forwarded; {errors} errors.\n",
        nodes = r.nodes,
        lp50 = r.local_p50_us,
        lp99 = r.local_p99_us,
        fp50 = r.forwarded_p50_us,
        fp99 = r.forwarded_p99_us,
        ep50 = r.extra_p50_us,
        ep99 = r.extra_p99_us,
        calls = r.calls,
        functions = r.functions,
        mixed = r.mixed_calls,
        share = r.warm_hit_share * 100.0,
        fwd = r.forwarded_share * 100.0,
        errors = r.mixed_errors,
    )
}
