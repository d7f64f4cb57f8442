//! The pollers of one node: every `renew_every`, lease (and renew) the enabled mappings no
//! other node holds ([`stoke_store::MappingStore::claim_mappings`]), start a poller for each
//! new or changed one, stop those of mappings it no longer holds (deleted, disabled, taken
//! over after this node stalled), settle their states (`Creating`, `Enabling`, `Updating` →
//! `Enabled`) and write their latest `LastProcessingResult`. A node that dies stops renewing;
//! another takes its mappings once their leases expire, and its poller claims the records the
//! dead one left pending. At shutdown the pollers stop and the leases are released.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stoke_store::Store;
use stoke_store::mappings::{BasicAuth, Mapping};
use tokio::sync::watch;

use super::amqp::AmqpSource;
use super::deliver::Deliverer;
use super::metrics::MappingLabels;
use super::nats::NatsSource;
use super::poller::{self, Running};
use super::redis::RedisSource;
use super::rules::{AMQP_URL, NATS_URL, REDIS_URL};
use super::source::Source;
use crate::async_invoke::AsyncInvoker;
use crate::invoke::Invoker;

/// How this node runs pollers.
#[derive(Debug, Clone)]
pub struct SourcesConfig {
    /// How long a lease lasts without renewal (a dead node's mappings move after it).
    pub lease: Duration,
    /// How often leases are renewed and mappings looked at again.
    pub renew_every: Duration,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(10),
            renew_every: Duration::from_secs(1),
        }
    }
}

/// The supervisor's task; [`Supervisor::shutdown`] stops it.
pub struct Supervisor {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What a poller was started with: a change of any of it restarts the poller (a state or
/// processing-result write does not). The credentials, never serialized, are compared apart
/// ([`Poller::auth`]).
fn config_key(m: &Mapping) -> String {
    let mut c = m.clone();
    c.state.clear();
    c.state_transition_reason.clear();
    c.last_processing_result.clear();
    c.revision.clear();
    c.last_modified = 0.0;
    serde_json::to_string(&c).unwrap_or_default()
}

struct Poller {
    key: String,
    auth: Option<BasicAuth>,
    running: Running,
}

impl Poller {
    /// Whether it runs `m` as it is now.
    fn runs(&self, m: &Mapping) -> bool {
        config_key(m) == self.key && m.basic_auth == self.auth
    }
}

struct Context {
    store: Arc<dyn Store>,
    invoker: Arc<Invoker>,
    asyncq: Arc<AsyncInvoker>,
    region: String,
    owner: String,
}

impl Context {
    fn source(&self, m: &Mapping) -> Option<Arc<dyn Source>> {
        let latest = m.starting_position == "LATEST";
        let made: Result<Arc<dyn Source>, _> = match m.endpoint_kind.as_str() {
            REDIS_URL => {
                let url = m.endpoints.first()?;
                RedisSource::new(
                    url,
                    &m.topic,
                    &m.consumer_group,
                    &self.owner,
                    latest,
                    m.basic_auth.as_ref(),
                )
                .map(|s| Arc::new(s) as Arc<dyn Source>)
            }
            NATS_URL => NatsSource::new(
                &m.endpoints,
                &m.topic,
                &m.consumer_group,
                latest,
                m.basic_auth.as_ref(),
            )
            .map(|s| Arc::new(s) as Arc<dyn Source>),
            AMQP_URL => AmqpSource::for_mapping(m, &self.owner).map(|s| Arc::new(s) as _),
            _ => return None,
        };
        match made {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(mapping = %m.uuid, error = %e, "cannot open the event source");
                None
            }
        }
    }

    fn start(&self, m: &Mapping) -> Option<Poller> {
        let source = self.source(m)?;
        let (stop, stopped) = watch::channel(false);
        let d = Deliverer {
            mapping: Arc::new(m.clone()),
            source,
            invoker: Arc::clone(&self.invoker),
            asyncq: Arc::clone(&self.asyncq),
            metrics: Arc::clone(self.invoker.metrics()),
            labels: MappingLabels {
                mapping: m.uuid.clone(),
                function: m.function_name.clone(),
            },
            region: self.region.clone(),
            stop: stopped,
        };
        Some(Poller {
            key: config_key(m),
            auth: m.basic_auth.clone(),
            running: poller::start(d, stop),
        })
    }

    /// Writes the settled state and the latest result of `m` if they changed (another write
    /// in between wins: the next round looks again).
    async fn settle(&self, m: &Mapping, result: Option<String>) {
        let mut next = m.clone();
        if matches!(m.state.as_str(), "Creating" | "Enabling" | "Updating") {
            next.state = "Enabled".into();
        }
        if let Some(r) = result {
            next.last_processing_result = r;
        }
        if next.state == m.state && next.last_processing_result == m.last_processing_result {
            return;
        }
        next.revision = uuid::Uuid::new_v4().to_string();
        if let Err(e) = self.store.replace_mapping(&next, &m.revision).await {
            tracing::debug!(mapping = %m.uuid, error = %e, "state not written this round");
        }
    }
}

async fn stop_poller(p: Poller) {
    let _ = p.running.stop.send(true);
    let _ = p.running.task.await;
}

impl Supervisor {
    /// Starts this node's supervisor; `owner` names the node in the leases.
    pub fn start(
        store: Arc<dyn Store>,
        invoker: Arc<Invoker>,
        asyncq: Arc<AsyncInvoker>,
        region: String,
        owner: String,
        config: SourcesConfig,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let ctx = Context {
            store,
            invoker,
            asyncq,
            region,
            owner,
        };
        let task = tokio::spawn(async move {
            let mut pollers: HashMap<String, Poller> = HashMap::new();
            let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
            loop {
                let claimed = ctx
                    .store
                    .claim_mappings(&ctx.owner, crate::record::now_ms(), lease_ms)
                    .await;
                match claimed {
                    Ok(claimed) => {
                        let held: HashMap<&str, &Mapping> =
                            claimed.iter().map(|m| (m.uuid.as_str(), m)).collect();
                        let gone: Vec<String> = pollers
                            .iter()
                            .filter(|(uuid, p)| held.get(uuid.as_str()).is_none_or(|m| !p.runs(m)))
                            .map(|(uuid, _)| uuid.clone())
                            .collect();
                        for uuid in gone {
                            if let Some(p) = pollers.remove(&uuid) {
                                stop_poller(p).await;
                            }
                        }
                        for m in &claimed {
                            if !pollers.contains_key(&m.uuid)
                                && let Some(p) = ctx.start(m)
                            {
                                pollers.insert(m.uuid.clone(), p);
                            }
                            let result = pollers.get(&m.uuid).and_then(|p| {
                                p.running
                                    .status
                                    .lock()
                                    .ok()
                                    .and_then(|s| s.last_processing_result.clone())
                            });
                            ctx.settle(m, result).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the event source leases"),
                }
                tokio::select! {
                    () = tokio::time::sleep(config.renew_every) => {}
                    _ = stopped.changed() => break,
                }
            }
            for (_, p) in pollers.drain() {
                stop_poller(p).await;
            }
            if let Err(e) = ctx.store.release_mappings(&ctx.owner).await {
                tracing::warn!(error = %e, "cannot release the event source leases");
            }
        });
        Self { stop, task }
    }

    /// Stops every poller (their batches under way finish, within `wait`) and releases the
    /// leases.
    pub async fn shutdown(self, wait: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::warn!("the event source pollers did not stop in time");
        }
    }
}
