//! The engine as one object: [`Engine::start`] builds the object graph every server needs
//! (control plane, sandboxes, router, invoker, recorder, async queue, the account and log
//! services) from a store and the sandbox backends, and [`Engine::shutdown`] takes it down in
//! the order that loses nothing.
//!
//! ```text
//! Sandboxes (pools, backends) ◄── warms ── ControlPlane (store, blobs, preparer)
//!      ▲                                        ▲
//!      └──────── runs ── Invoker ── Router ─────┘
//!                          ▲
//!                     AsyncInvoker (queue)
//! ```
//!
//! The concrete store and backends are the caller's (the `stoke` binary, or a test): the
//! engine names only their traits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stoke_store::queue::Queue;
use stoke_store::{Blobs, Store, StoreError};

use crate::accounts::Accounts;
use crate::async_invoke::{AsyncConfig, AsyncInvoker, AsyncTasks};
use crate::cluster::{Membership, Peer};
use crate::control::ControlPlane;
use crate::credentials::{DEFAULT_TTL, FunctionCredentials};
use crate::error::ControlError;
use crate::invoke::{Invoker, InvokerConfig, Sandboxes};
use crate::logs::Logs;
use crate::metrics::Metrics;
use crate::nodes::{NodeConfig, Nodes};
use crate::pool::{FixedKeepAlive, KeepAlivePolicy};
use crate::prepare::BackendPreparer;
use crate::record::{Recorder, RecorderTask, Retention};
use crate::route::Router;
use crate::schedules::ticker::Ticker;
use crate::schedules::{ScheduleConfig, Schedules};
use crate::sources::{Mappings, SourcesConfig, Supervisor};
use crate::target::{Backends, Layout};

/// What the engine is built from, and its settings.
pub struct EngineConfig {
    /// Functions, versions, aliases, accounts, logs.
    pub store: Arc<dyn Store>,
    /// The async invocations' durable queue.
    pub queue: Arc<dyn Queue>,
    /// Code zips.
    pub blobs: Blobs,
    /// The sandbox backends this server runs.
    pub backends: Backends,
    /// Where unpacked code lives (`code/`, `staging/` under it).
    pub data_dir: PathBuf,
    /// The region ARNs name.
    pub region: String,
    pub invoker: InvokerConfig,
    /// How long idle sandboxes stay warm.
    pub keep_alive: Arc<dyn KeepAlivePolicy>,
    /// How much of the calls' history is kept.
    pub retention: Retention,
    pub async_queue: AsyncConfig,
    /// What mints and verifies the functions' credentials (a random key unless the server
    /// gives the one its nodes share).
    pub credentials: Arc<FunctionCredentials>,
    /// This node and the living nodes of its cluster (a cluster of one unless the server's
    /// node registry keeps it up to date).
    pub membership: Arc<Membership>,
    /// The schedules' clock, grace and longest sleep.
    pub schedules: ScheduleConfig,
    /// How this node leases and runs event source mappings' pollers.
    pub sources: SourcesConfig,
    /// How often this node heartbeats in the node registry, and when a node is dead.
    pub nodes: NodeConfig,
    /// Concurrency limits held across every node sharing the store: each call also takes a
    /// slot in the store, held under this node's id with this expiry (renewed while the node
    /// lives), the name its queue leases go by. `None` (one node): this node's own counters
    /// are the limits.
    pub cluster_slots: Option<Duration>,
}

impl EngineConfig {
    /// Lambda's defaults for everything but what the engine is built from.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        blobs: Blobs,
        backends: Backends,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            store,
            queue,
            blobs,
            backends,
            data_dir: data_dir.into(),
            region: "us-east-1".into(),
            invoker: InvokerConfig::default(),
            keep_alive: Arc::new(FixedKeepAlive(Duration::from_secs(600))),
            retention: Retention::default(),
            async_queue: AsyncConfig::default(),
            credentials: Arc::new(FunctionCredentials::new(rand::random(), DEFAULT_TTL)),
            membership: Arc::new(Membership::new(Peer {
                node_id: "local".into(),
                address: String::new(),
                warm: 0,
                load: 0,
            })),
            schedules: ScheduleConfig::default(),
            sources: SourcesConfig::default(),
            nodes: NodeConfig::default(),
            cluster_slots: None,
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("starting the control plane: {0}")]
    Control(#[from] ControlError),
    #[error("starting the async queue: {0}")]
    AsyncQueue(#[source] StoreError),
    #[error("registering this node: {0}")]
    Nodes(#[source] StoreError),
    #[error("taking back this node's concurrency slots: {0}")]
    Slots(#[source] StoreError),
}

/// The running engine. Its services are shared handles; hand them to the API.
pub struct Engine {
    pub control: Arc<ControlPlane>,
    pub invoker: Arc<Invoker>,
    pub asyncq: Arc<AsyncInvoker>,
    /// Access keys, for SigV4.
    pub accounts: Arc<Accounts>,
    /// The functions' credentials, for SigV4 of their session tokens.
    pub credentials: Arc<FunctionCredentials>,
    /// Stored log lines, for FilterLogEvents.
    pub logs: Arc<Logs>,
    /// This node and the living nodes of its cluster.
    pub membership: Arc<Membership>,
    /// EventBridge Scheduler's schedules (their ticker runs until shutdown).
    pub schedules: Arc<Schedules>,
    /// Event source mappings (their API operations).
    pub mappings: Arc<Mappings>,
    /// This node's registration and heartbeats; every node's state (`stoke nodes`).
    pub nodes: Arc<Nodes>,
    /// Deploys resumed at start (left `Pending` or `InProgress` by the last run).
    pub resumed: usize,
    sources: Supervisor,
    recorder: RecorderTask,
    async_tasks: AsyncTasks,
    ticker: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("control", &self.control)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds and starts the engine: resumes the deploys a previous run left unfinished and
    /// the async events it left running.
    pub async fn start(config: EngineConfig) -> Result<Self, StartError> {
        let EngineConfig {
            store,
            queue,
            blobs,
            backends,
            data_dir,
            region,
            invoker,
            keep_alive,
            retention,
            async_queue,
            credentials,
            membership,
            schedules,
            sources,
            nodes,
            cluster_slots,
        } = config;
        let layout = Layout::under(&data_dir);
        let metrics = Arc::new(Metrics::default());
        let sandboxes = Sandboxes::new(
            backends.clone(),
            layout.clone(),
            region.clone(),
            &invoker,
            Arc::clone(&metrics),
            keep_alive,
            Arc::clone(&credentials),
        );
        let control = ControlPlane::new(
            Arc::clone(&store),
            blobs,
            layout,
            region.clone(),
            Arc::new(BackendPreparer {
                backends: backends.clone(),
                region: region.clone(),
            }),
            sandboxes.clone(),
        )?;
        // A cold start of code another node deployed fetches it from the store first.
        sandboxes.set_code_source(control.code_source());
        control.set_account_concurrency(
            invoker
                .default_account_concurrency
                .unwrap_or(invoker.account_concurrency),
        );
        let accounts = Arc::new(Accounts::new(
            Arc::clone(&store),
            Arc::clone(control.limits()),
        ));
        accounts.load_limits().await?;
        // Other nodes' writes, heard through the store's change feed, reach the caches.
        crate::control::watch(Arc::clone(&store), &control, &accounts);
        let (recorder, recorder_task) =
            Recorder::start(Arc::clone(&store), Arc::clone(&metrics), retention);
        let invoker = Invoker::new(
            Router::new(Arc::clone(&control), backends),
            sandboxes,
            invoker,
            metrics,
            recorder,
        );
        let nodes = Nodes::start(
            Arc::clone(&store),
            Arc::clone(&membership),
            nodes,
            Arc::downgrade(&invoker),
        )
        .await
        .map_err(StartError::Nodes)?;
        if let Some(ttl) = cluster_slots {
            // Under the name the node's queue leases go by (kept across its restarts).
            let owner = queue.node_owner().await.map_err(StartError::Slots)?;
            let slots = crate::slots::ClusterSlots::start(Arc::clone(&store), owner, ttl)
                .await
                .map_err(StartError::Slots)?;
            invoker.set_cluster_slots(slots);
        }
        let resumed = control.resume().await?;
        let region_for_schedules = region.clone();
        let owner = queue.node_owner().await.map_err(StartError::AsyncQueue)?;
        let (asyncq, async_tasks) =
            AsyncInvoker::start(queue, Arc::clone(&invoker), region.clone(), async_queue)
                .await
                .map_err(StartError::AsyncQueue)?;
        let schedules = Arc::new(Schedules::new(
            Arc::clone(&store),
            region_for_schedules,
            schedules,
        ));
        let (stop_ticker, ticker_stop) = tokio::sync::watch::channel(false);
        let ticker = tokio::spawn(
            Ticker {
                schedules: Arc::clone(&schedules),
                invoker: Arc::clone(&invoker),
                asyncq: Arc::clone(&asyncq),
            }
            .run(ticker_stop),
        );
        let mappings = Arc::new(Mappings::new(Arc::clone(&store), Arc::clone(&control)));
        let sources = Supervisor::start(
            Arc::clone(&store),
            Arc::clone(&invoker),
            Arc::clone(&asyncq),
            region,
            owner,
            sources,
        );
        Ok(Self {
            control,
            invoker,
            asyncq,
            accounts,
            credentials,
            logs: Arc::new(Logs::new(store)),
            membership,
            schedules,
            ticker: (stop_ticker, ticker),
            mappings,
            nodes,
            resumed,
            sources,
            recorder: recorder_task,
            async_tasks,
        })
    }

    /// Stops the engine once nothing else holds its services (drop the API's handles first):
    /// the node leaves the registry, async events still running get a moment (whatever is
    /// left is released, to run again on another node or after a restart),
    /// the async queue's last finishes and the deploys under way complete, and the log writer
    /// flushes what is left. The sandboxes go with the last handle to the invoker.
    pub async fn shutdown(self) {
        let Self {
            control,
            invoker,
            asyncq,
            accounts,
            credentials,
            logs,
            recorder,
            async_tasks,
            schedules,
            ticker,
            sources,
            mappings,
            nodes,
            ..
        } = self;
        // No tick fires past this point; one being fired commits or not at all.
        let _ = ticker.0.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), ticker.1).await;
        drop(schedules);
        // The pollers first: their batches' calls and on-failure events need the rest.
        sources.shutdown(Duration::from_secs(10)).await;
        drop(mappings);
        nodes.leave().await;
        drop(nodes);
        asyncq.shutdown(Duration::from_secs(5)).await;
        let (queue, owner) = (Arc::clone(asyncq.queue()), asyncq.owner().to_owned());
        drop(asyncq);
        if tokio::time::timeout(Duration::from_secs(5), async_tasks.finish())
            .await
            .is_err()
        {
            tracing::warn!("the async queue's writers did not finish in time");
        }
        // What this node still holds (handed to a worker that never started, or still running
        // after the wait) goes to the other nodes now rather than when its lease runs out.
        match queue.release_leases(&owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(left = n, "async events left to the other nodes"),
            Err(e) => tracing::warn!(error = %e, "could not release this node's async leases"),
        }
        control.drain().await;
        // The calls have ended: this node's concurrency slots go to the others now.
        if let Some(slots) = invoker.cluster_slots() {
            slots.leave().await;
        }
        drop((invoker, control, accounts, credentials, logs));
        // The last invoker is gone: the recorder flushes what is left.
        if tokio::time::timeout(Duration::from_secs(10), recorder.finish())
            .await
            .is_err()
        {
            tracing::warn!("the log writer did not finish in time; some log lines may be lost");
        }
    }
}
