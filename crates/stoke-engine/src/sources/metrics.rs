//! The metrics of event source mappings in `/metrics`, per mapping (`mapping` = its UUID,
//! `function` = its function): the source's lag, batches in flight, batch sizes, the age of
//! the oldest record of the last batch, and records by how they ended.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MappingLabels {
    pub mapping: String,
    pub function: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RecordLabels {
    pub mapping: String,
    pub function: String,
    /// `done`, `filtered`, `retried` or `failed` (sent to the on-failure destination or
    /// dropped after their retries).
    pub outcome: String,
}

fn batch_histogram() -> Histogram {
    Histogram::new([
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 10_000.0,
    ])
}

/// The families, registered once in the engine's registry.
#[derive(Debug, Clone)]
pub struct SourceMetrics {
    pub lag: Family<MappingLabels, Gauge>,
    pub in_flight_batches: Family<MappingLabels, Gauge>,
    pub batch_size: Family<MappingLabels, Histogram, fn() -> Histogram>,
    pub oldest_record_age_seconds: Family<MappingLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub records: Family<RecordLabels, Counter>,
}

impl SourceMetrics {
    /// The families, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            lag: Family::default(),
            in_flight_batches: Family::default(),
            batch_size: Family::new_with_constructor(batch_histogram),
            oldest_record_age_seconds: Family::default(),
            records: Family::default(),
        };
        registry.register(
            "event_source_lag",
            "Messages of the source not yet delivered to the mapping",
            m.lag.clone(),
        );
        registry.register(
            "event_source_in_flight_batches",
            "Batches of the mapping being run now",
            m.in_flight_batches.clone(),
        );
        registry.register(
            "event_source_batch_size",
            "Records per batch the mapping ran",
            m.batch_size.clone(),
        );
        registry.register(
            "event_source_oldest_record_age_seconds",
            "Age of the oldest record of the mapping's latest batch",
            m.oldest_record_age_seconds.clone(),
        );
        registry.register(
            "event_source_records",
            "Records of the mapping by how they ended",
            m.records.clone(),
        );
        m
    }

    pub fn count(&self, labels: &MappingLabels, outcome: &str, n: usize) {
        self.records
            .get_or_create(&RecordLabels {
                mapping: labels.mapping.clone(),
                function: labels.function.clone(),
                outcome: outcome.to_owned(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}
