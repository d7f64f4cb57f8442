//! The platform's Prometheus metrics.
//!
//! Per function (labels `account`, `function`): invocations, function errors, throttles, cold
//! starts, a duration histogram and the calls running now. Cold starts server-wide: the
//! sandbox starts (inits) running now, the most seen at once, and how long calls waited for
//! their turn to start one. Logs: lines dropped under load and lines removed to keep the
//! byte budgets. The async queue: depth, oldest
//! event's age, retries and dead letters, the age of events when their run starts, the
//! events per enqueue commit, and the destination events dropped at the hop limit (Lambda's
//! `RecursiveInvocationsDropped`). The cluster: synchronous calls entering this node by where
//! they ran (here or forwarded) and whether warm, and the warm-hit share. `/metrics` encodes the registry in
//! the text exposition format.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The labels of per-function metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub account: String,
    pub function: String,
}

/// The labels of per-function metrics that also say how a call ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub account: String,
    pub function: String,
    /// `success`, `error`, `timeout`.
    pub outcome: String,
}

fn duration_histogram() -> Histogram {
    // 50 µs to ~15 min.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00005, 2.5, 18,
    ))
}

/// Every metric the engine keeps.
pub struct Metrics {
    registry: Registry,
    pub invocations: Family<OutcomeLabels, Counter>,
    pub errors: Family<FunctionLabels, Counter>,
    pub throttles: Family<FunctionLabels, Counter>,
    pub cold_starts: Family<FunctionLabels, Counter>,
    pub duration_seconds: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    pub init_duration_seconds: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    pub concurrent_executions: Family<FunctionLabels, Gauge>,
    /// Log lines dropped because the writer fell behind.
    pub logs_dropped: Counter,
    /// Log lines removed (oldest first) to keep the per-function and per-account byte budgets.
    pub logs_evicted: Counter,
    /// Sandbox starts (inits) running now.
    pub inits_in_flight: Gauge,
    /// The most sandbox starts ever running at once (since the server started).
    pub inits_in_flight_max: Gauge,
    /// How long cold starts waited for their turn (the bound on inits at once).
    pub init_wait_seconds: Histogram,
    /// Async events in the queue (waiting, running or waiting for a retry).
    pub async_queue_depth: Gauge,
    /// Age of the oldest event in the queue.
    pub async_oldest_event_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Async runs that will be tried again (function errors, throttles, platform errors).
    pub async_retries: Family<FunctionLabels, Counter>,
    /// Async events that went to the dead letters.
    pub async_dead_letters: Family<FunctionLabels, Counter>,
    /// How long events waited before a run started.
    pub async_event_age_at_start_seconds: Histogram,
    /// Events per enqueue commit.
    pub async_enqueue_batches: Histogram,
    /// Destination events not enqueued because their chain reached the hop limit, by the
    /// function they were for (Lambda's `RecursiveInvocationsDropped`).
    pub recursive_invocations_dropped: Family<FunctionLabels, Counter>,
    /// Event source mappings' lag, batches and records.
    pub sources: crate::sources::metrics::SourceMetrics,
    /// Synchronous API calls that entered at this node, by where they ran (`local`,
    /// `forwarded`) and whether they found a warm sandbox (`warm`: `true`/`false`).
    pub sync_calls: Family<ServedLabels, Counter>,
    /// The share of those calls that found a warm sandbox, here or on the node they went to.
    pub warm_hit_share: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// Where a synchronous call ran and whether it was warm.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServedLabels {
    pub served: &'static str,
    pub warm: &'static str,
}

impl Metrics {
    /// Counts a synchronous call that entered here: run `forwarded` or not, `warm` or not;
    /// and updates the warm-hit share.
    pub fn count_sync(&self, forwarded: bool, warm: bool) {
        let served = if forwarded { "forwarded" } else { "local" };
        let w = if warm { "true" } else { "false" };
        self.sync_calls
            .get_or_create(&ServedLabels { served, warm: w })
            .inc();
        let get = |served, warm| {
            self.sync_calls
                .get_or_create(&ServedLabels { served, warm })
                .get()
        };
        let hits = get("local", "true") + get("forwarded", "true");
        let all = hits + get("local", "false") + get("forwarded", "false");
        if all > 0 {
            self.warm_hit_share.set(hits as f64 / all as f64);
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("stoke");
        let invocations = Family::<OutcomeLabels, Counter>::default();
        let errors = Family::<FunctionLabels, Counter>::default();
        let throttles = Family::<FunctionLabels, Counter>::default();
        let cold_starts = Family::<FunctionLabels, Counter>::default();
        let duration_seconds =
            Family::<FunctionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let init_duration_seconds =
            Family::<FunctionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let concurrent_executions = Family::<FunctionLabels, Gauge>::default();
        let logs_dropped = Counter::default();
        let logs_evicted = Counter::default();
        let inits_in_flight = Gauge::default();
        let inits_in_flight_max = Gauge::default();
        let init_wait_seconds = duration_histogram();
        registry.register(
            "logs_evicted",
            "Log lines removed, oldest first, to keep the log byte budgets",
            logs_evicted.clone(),
        );
        registry.register(
            "inits_in_flight",
            "Sandbox starts (inits) running now",
            inits_in_flight.clone(),
        );
        registry.register(
            "inits_in_flight_max",
            "The most sandbox starts running at once since the server started",
            inits_in_flight_max.clone(),
        );
        registry.register(
            "init_wait_seconds",
            "How long cold starts waited for their turn to start a sandbox",
            init_wait_seconds.clone(),
        );
        registry.register(
            "invocations",
            "Calls that ran, by outcome",
            invocations.clone(),
        );
        registry.register(
            "errors",
            "Calls that ended in a function error",
            errors.clone(),
        );
        registry.register("throttles", "Calls refused with 429", throttles.clone());
        registry.register(
            "cold_starts",
            "Calls that started a sandbox",
            cold_starts.clone(),
        );
        registry.register(
            "duration_seconds",
            "Duration of calls (without init)",
            duration_seconds.clone(),
        );
        registry.register(
            "init_duration_seconds",
            "Duration of sandbox starts",
            init_duration_seconds.clone(),
        );
        registry.register(
            "concurrent_executions",
            "Calls running now",
            concurrent_executions.clone(),
        );
        registry.register(
            "logs_dropped",
            "Log lines dropped under load",
            logs_dropped.clone(),
        );
        let async_queue_depth = Gauge::default();
        let async_oldest_event_age_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let async_retries = Family::<FunctionLabels, Counter>::default();
        let async_dead_letters = Family::<FunctionLabels, Counter>::default();
        let async_event_age_at_start_seconds = duration_histogram();
        let async_enqueue_batches = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 13),
        );
        registry.register(
            "async_queue_depth",
            "Async events in the queue",
            async_queue_depth.clone(),
        );
        registry.register(
            "async_oldest_event_age_seconds",
            "Age of the oldest async event in the queue",
            async_oldest_event_age_seconds.clone(),
        );
        registry.register(
            "async_retries",
            "Async runs to be tried again",
            async_retries.clone(),
        );
        registry.register(
            "async_dead_letters",
            "Async events sent to the dead letters",
            async_dead_letters.clone(),
        );
        registry.register(
            "async_event_age_at_start_seconds",
            "How long async events waited before their run started",
            async_event_age_at_start_seconds.clone(),
        );
        registry.register(
            "async_enqueue_batch_events",
            "Async events per enqueue commit",
            async_enqueue_batches.clone(),
        );
        let recursive_invocations_dropped = Family::<FunctionLabels, Counter>::default();
        registry.register(
            "recursive_invocations_dropped",
            "Async events for a function not enqueued because their chain of destinations \
             reached the hop limit (Lambda's RecursiveInvocationsDropped)",
            recursive_invocations_dropped.clone(),
        );
        let sources = crate::sources::metrics::SourceMetrics::register(&mut registry);
        let sync_calls = Family::<ServedLabels, Counter>::default();
        let warm_hit_share = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "sync_calls",
            "Synchronous calls that entered at this node, by where they ran (local or \
             forwarded to another node) and whether they found a warm sandbox",
            sync_calls.clone(),
        );
        registry.register(
            "warm_hit_share",
            "The share of synchronous calls entering here that found a warm sandbox, here or \
             on the node they were forwarded to",
            warm_hit_share.clone(),
        );
        Self {
            registry,
            sources,
            sync_calls,
            warm_hit_share,
            recursive_invocations_dropped,
            async_queue_depth,
            async_oldest_event_age_seconds,
            async_retries,
            async_dead_letters,
            async_event_age_at_start_seconds,
            async_enqueue_batches,
            invocations,
            errors,
            throttles,
            cold_starts,
            duration_seconds,
            init_duration_seconds,
            concurrent_executions,
            logs_dropped,
            logs_evicted,
            inits_in_flight,
            inits_in_flight_max,
            init_wait_seconds,
        }
    }
}

/// One function's per-call metric handles, kept by its pool so that a call does not look
/// them up: `Family::get_or_create` takes the family's lock and hashes the labels (two
/// strings) on every use. Each handle is made on first use, so the series that appear in
/// `/metrics` are the same as when every call looked them up.
#[derive(Debug)]
pub struct FunctionMetrics {
    labels: FunctionLabels,
    /// `invocations` by outcome: success, error, timeout.
    invocations: [OnceLock<Counter>; 3],
    errors: OnceLock<Counter>,
    cold_starts: OnceLock<Counter>,
    duration_seconds: OnceLock<Histogram>,
    init_duration_seconds: OnceLock<Histogram>,
    concurrent_executions: OnceLock<Gauge>,
}

/// How a call ended, for the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    Error,
    Timeout,
}

impl CallOutcome {
    /// The `outcome` label (and the invocation record's outcome).
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Error => "error",
            CallOutcome::Timeout => "timeout",
        }
    }
}

/// `family`'s series for `labels`, looked up once into `cell`.
fn handle<'a, L, M, C>(cell: &'a OnceLock<M>, family: &Family<L, M, C>, labels: &L) -> &'a M
where
    L: Clone + std::hash::Hash + Eq,
    M: Clone,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    cell.get_or_init(|| family.get_or_create_owned(labels))
}

impl FunctionMetrics {
    pub fn new(labels: FunctionLabels) -> Self {
        Self {
            labels,
            invocations: Default::default(),
            errors: OnceLock::new(),
            cold_starts: OnceLock::new(),
            duration_seconds: OnceLock::new(),
            init_duration_seconds: OnceLock::new(),
            concurrent_executions: OnceLock::new(),
        }
    }

    pub fn labels(&self) -> &FunctionLabels {
        &self.labels
    }

    pub fn invocations(&self, m: &Metrics, outcome: CallOutcome) -> &Counter {
        let cell = &self.invocations[outcome as usize];
        cell.get_or_init(|| {
            m.invocations.get_or_create_owned(&OutcomeLabels {
                account: self.labels.account.clone(),
                function: self.labels.function.clone(),
                outcome: outcome.label().to_owned(),
            })
        })
    }

    pub fn errors(&self, m: &Metrics) -> &Counter {
        handle(&self.errors, &m.errors, &self.labels)
    }

    pub fn cold_starts(&self, m: &Metrics) -> &Counter {
        handle(&self.cold_starts, &m.cold_starts, &self.labels)
    }

    pub fn duration_seconds(&self, m: &Metrics) -> &Histogram {
        handle(&self.duration_seconds, &m.duration_seconds, &self.labels)
    }

    pub fn init_duration_seconds(&self, m: &Metrics) -> &Histogram {
        handle(
            &self.init_duration_seconds,
            &m.init_duration_seconds,
            &self.labels,
        )
    }

    pub fn concurrent_executions(&self, m: &Metrics) -> &Gauge {
        handle(
            &self.concurrent_executions,
            &m.concurrent_executions,
            &self.labels,
        )
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pools_handles_count_into_the_functions_series_made_on_first_use() {
        let m = Metrics::default();
        let labels = FunctionLabels {
            account: "123456789012".into(),
            function: "f".into(),
        };
        let fm = FunctionMetrics::new(labels.clone());
        assert!(
            !m.encode().contains("function=\"f\""),
            "no series before a call"
        );
        fm.invocations(&m, CallOutcome::Success).inc();
        fm.invocations(&m, CallOutcome::Success).inc();
        fm.duration_seconds(&m).observe(0.001);
        // Another pool of the same function (a new generation) shares the series.
        FunctionMetrics::new(labels.clone())
            .invocations(&m, CallOutcome::Success)
            .inc();
        let success = OutcomeLabels {
            account: labels.account.clone(),
            function: labels.function.clone(),
            outcome: "success".into(),
        };
        assert_eq!(m.invocations.get_or_create(&success).get(), 3);
        let text = m.encode();
        assert!(!text.contains("outcome=\"error\""), "{text}");
        assert!(!text.contains("stoke_errors_total{"), "{text}");
        assert!(text.contains("stoke_duration_seconds_count{"), "{text}");
    }
}
