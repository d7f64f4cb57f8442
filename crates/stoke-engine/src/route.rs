//! Routing: which function version a call runs, and which sandboxes may serve it.
//!
//! ```text
//! name + qualifier ─► $LATEST (its serving generation) │ a version │ an alias (a version
//! chosen by weight) ─► Active? ─► a backend for its runtime? ─► Route { target, pool }
//! ```
//!
//! **The placement seam.** [`Router::place`] decides which pool (which set of sandboxes) a
//! resolved call goes to. Today every call of one generation of one version shares one pool
//! and takes whichever sandbox is idle. Affinity (the sandbox that served the same affinity key
//! before), per-tenant shares and predictive capacity plug in there: they see the call's
//! target and answer its pool, and nothing upstream (the control plane) or downstream (the
//! invoker's admission and run) changes.
//!
//! **Which node** (issue 14): in a cluster, each (account, function, version) has home nodes,
//! ranked by rendezvous hashing over the living nodes ([`ranked`]); [`placement`] says whether
//! a call runs here (an idle sandbox here, or this node is the first home that is not
//! saturated) or goes to other nodes, in order (the local node is the last resort). Warmth
//! follows the hash: the homes are where that version's calls ran before, so where its idle
//! sandboxes are.

use std::sync::Arc;

use stoke_core::{AccountId, LATEST, LambdaError, State};

use sha2::{Digest, Sha256};

use crate::ControlError;
use crate::cluster::{Membership, Peer};
use crate::control::{ControlPlane, not_runnable, serving_of};
use crate::pool::PoolKey;
use crate::target::{Backends, Runnable};

/// Where one call goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// What it runs.
    pub target: Runnable,
    /// The pool of sandboxes that may serve it.
    pub pool: PoolKey,
}

/// Where a call runs in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this node.
    Here,
    /// On another node: these, in order (the first that answers takes it; this node if none).
    Forward(Vec<Peer>),
}

/// The rendezvous key of a pool: its account, function and version (not its generation, so
/// that a version keeps its homes across code updates).
pub fn home_key(pool: &PoolKey) -> String {
    format!("{}\0{}\0{}", pool.account, pool.function_name, pool.version)
}

/// A node's rendezvous score for `key`: the first 8 bytes (big-endian) of
/// SHA-256(`node_id` NUL `key`).
pub fn score(node_id: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(node_id.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// The living nodes ranked for `key`: highest score first (ties by node id). The first is the
/// key's home; when a node leaves, only the keys it was home of move.
pub fn ranked<'a>(key: &str, living: &'a [Peer]) -> Vec<&'a Peer> {
    let mut scored: Vec<(u64, &Peer)> =
        living.iter().map(|p| (score(&p.node_id, key), p)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.node_id.cmp(&b.1.node_id)));
    scored.into_iter().map(|(_, p)| p).collect()
}

/// Where a call of `pool` runs: here when this node is alone, has an idle sandbox of it, or is
/// the first of its ranked homes that is not `saturated`; else on the unsaturated nodes from
/// that home on, in rank order. When every node is saturated, here.
pub fn placement(
    pool: &PoolKey,
    membership: &Membership,
    idle_here: bool,
    saturated: impl Fn(&Peer) -> bool,
) -> Placement {
    if idle_here || !membership.is_clustered() {
        return Placement::Here;
    }
    let living = membership.living();
    let me = &membership.me().node_id;
    let key = home_key(pool);
    let mut open = ranked(&key, &living)
        .into_iter()
        .filter(|p| &p.node_id == me || !saturated(p));
    match open.next() {
        None => Placement::Here,
        Some(first) if &first.node_id == me => Placement::Here,
        Some(first) => {
            let mut to = vec![first.clone()];
            to.extend(open.filter(|p| &p.node_id != me).cloned());
            Placement::Forward(to)
        }
    }
}

/// Resolves calls to what they run and where.
#[derive(Debug)]
pub struct Router {
    control: Arc<ControlPlane>,
    /// Which runtimes this server runs.
    backends: Backends,
}

impl Router {
    pub fn new(control: Arc<ControlPlane>, backends: Backends) -> Self {
        Self { control, backends }
    }

    pub fn control(&self) -> &Arc<ControlPlane> {
        &self.control
    }

    /// Where a call of `function` (with `qualifier`) goes, if it can be invoked now (also
    /// DryRun's check). An alias chooses one of its versions by weight.
    pub async fn route(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Route, LambdaError> {
        let u: f64 = rand::random();
        let target = self.resolve(account, function, qualifier, u).await?;
        if self
            .backends
            .for_family(target.deployed.config.runtime.family())
            .is_none()
        {
            return Err(LambdaError::InvalidRuntime(format!(
                "The runtime {} is not served by this Stoke server (it runs without process \
                 sandboxes).",
                target.deployed.config.runtime
            )));
        }
        let pool = Self::place(&target);
        Ok(Route { target, pool })
    }

    /// The placement seam (see the module doc): the pool a resolved call goes to.
    pub fn place(target: &Runnable) -> PoolKey {
        PoolKey {
            account: target.account.as_str().to_owned(),
            function_name: target.name.as_str().to_owned(),
            version: target.version.clone(),
            generation: target.deployed.generation,
        }
    }

    /// The route of a call another node resolved and forwarded: `version` of `owner`'s
    /// `name` (as the first node chose it), invoked as `qualifier` (the name's qualifier, for
    /// the ARN the function sees).
    pub async fn route_forwarded(
        &self,
        owner: &AccountId,
        name: &str,
        version: &str,
        qualifier: Option<&str>,
    ) -> Result<Route, LambdaError> {
        let mut target = self.resolve(owner, name, Some(version), 0.0).await?;
        target.qualifier = qualifier.map(str::to_owned);
        let pool = Self::place(&target);
        Ok(Route { target, pool })
    }

    /// What a call of `name` (with `qualifier`) by `account` runs now, choosing by weight for
    /// an alias: a function of the caller's own, or of another account whose policy grants the
    /// caller `lambda:InvokeFunction` ([`Runnable::account`] is then the owner's). `u` is a
    /// uniform sample in [0, 1) for the alias's choice.
    pub async fn resolve(
        &self,
        account: &AccountId,
        name: &str,
        qualifier: Option<&str>,
        u: f64,
    ) -> Result<Runnable, ControlError> {
        let control = &self.control;
        let region = control.region();
        // Another account's function is reached through its policy; the call then runs as
        // the owner's (its sandboxes, its concurrency, its logs).
        let (fref, owner) = control
            .resolve_ref(account, name, qualifier, "lambda:InvokeFunction")
            .await?;
        let account = &owner;
        let not_found = || LambdaError::function_not_found(&control.qualified_arn(account, &fref));
        let fname = fref.name.as_str();
        let latest = control
            .latest(account, fname)
            .await?
            .ok_or_else(not_found)?;
        let version: String = match fref.qualifier.as_deref() {
            None | Some(LATEST) => LATEST.to_owned(),
            Some(q) if q.bytes().all(|b| b.is_ascii_digit()) => q.to_owned(),
            Some(alias) => {
                let a = control
                    .alias(account, fname, alias)
                    .await?
                    .ok_or_else(not_found)?;
                a.pick(u).to_owned()
            }
        };
        if version == LATEST {
            return match serving_of(&latest) {
                Some(deployed) => Ok(Runnable {
                    account: account.clone(),
                    name: latest.name.clone(),
                    version,
                    deployed,
                    qualifier: fref.qualifier.clone(),
                    reserved_concurrency: latest.reserved_concurrency,
                }),
                None => Err(not_runnable(&latest, region).into()),
            };
        }
        let number: u64 = version.parse().map_err(|_| not_found())?;
        let v = control
            .version(account, fname, number)
            .await?
            .ok_or_else(|| {
                LambdaError::function_not_found(&format!("{}:{version}", latest.arn(region)))
            })?;
        if v.state != State::Active {
            return Err(not_runnable(&v, region).into());
        }
        Ok(Runnable {
            account: account.clone(),
            name: v.name.clone(),
            deployed: v.as_deployed(),
            version,
            qualifier: fref.qualifier.clone(),
            reserved_concurrency: latest.reserved_concurrency,
        })
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
