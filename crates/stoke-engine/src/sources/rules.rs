//! The rules of CreateEventSourceMapping and UpdateEventSourceMapping for a self-managed
//! source: the request as decoded ([`MappingInput`]), the model's constraints and Lambda's
//! refusals in its wording, the defaults, and Update's merge. Pure: nothing here reads or
//! writes the store (the function's existence and duplicates are the service's checks).

use std::collections::BTreeMap;

use serde::Deserialize;
use stoke_core::LambdaError;
use stoke_core::filter::{self, FilterCriteria};
use stoke_core::validate::Violations;
use stoke_store::mappings::Mapping;

use super::access::{AccessIn, BASIC_AUTH, access, redact_url};

/// The broker kinds a self-managed source names in `Endpoints`, and whether Stoke runs it yet.
pub const REDIS_URL: &str = "REDIS_URL";
pub const NATS_URL: &str = "NATS_URL";
pub const AMQP_URL: &str = "AMQP_URL";

/// Defaults for a self-managed source.
pub const DEFAULT_BATCH_SIZE: u32 = 100;
pub const MAX_BATCH_SIZE: i64 = 10_000;
/// Batches in flight at once when `ScalingConfig.MaximumConcurrency` is not set.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 8;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationIn {
    pub destination: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfigIn {
    pub on_success: Option<DestinationIn>,
    pub on_failure: Option<DestinationIn>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterIn {
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterCriteriaIn {
    pub filters: Option<Vec<FilterIn>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingConfigIn {
    pub maximum_concurrency: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SelfManagedIn {
    pub endpoints: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerGroupIn {
    pub consumer_group_id: Option<String>,
}

/// The body of Create (and, without the source members, Update) as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappingInput {
    pub function_name: Option<String>,
    pub event_source_arn: Option<String>,
    pub self_managed_event_source: Option<SelfManagedIn>,
    pub topics: Option<Vec<String>>,
    pub queues: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub batch_size: Option<i64>,
    pub maximum_batching_window_in_seconds: Option<i64>,
    pub filter_criteria: Option<FilterCriteriaIn>,
    pub scaling_config: Option<ScalingConfigIn>,
    pub function_response_types: Option<Vec<String>>,
    pub destination_config: Option<DestinationConfigIn>,
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_record_age_in_seconds: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub starting_position: Option<String>,
    pub starting_position_timestamp: Option<serde_json::Value>,
    pub parallelization_factor: Option<i64>,
    pub tumbling_window_in_seconds: Option<i64>,
    pub source_access_configurations: Option<Vec<AccessIn>>,
    pub self_managed_kafka_event_source_config: Option<ConsumerGroupIn>,
    pub amazon_managed_kafka_event_source_config: Option<serde_json::Value>,
    #[serde(rename = "DocumentDBEventSourceConfig")]
    pub document_db_event_source_config: Option<serde_json::Value>,
    pub provisioned_poller_config: Option<serde_json::Value>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
}

fn invalid(message: impl Into<String>) -> LambdaError {
    LambdaError::InvalidParameterValue(message.into())
}

fn unsupported(member: &str) -> LambdaError {
    invalid(format!(
        "Unsupported '{member}' parameter for given event source mapping type."
    ))
}

/// The model's constraints on the members both operations share.
fn check_model(input: &MappingInput) -> Result<(), LambdaError> {
    let mut v = Violations::new();
    if let Some(n) = input.batch_size {
        v.range("batchSize", n, 1, MAX_BATCH_SIZE);
    }
    if let Some(n) = input.maximum_batching_window_in_seconds {
        v.range("maximumBatchingWindowInSeconds", n, 0, 300);
    }
    if let Some(n) = input.maximum_retry_attempts {
        v.range("maximumRetryAttempts", n, -1, 10_000);
    }
    if let Some(n) = input.maximum_record_age_in_seconds {
        v.range("maximumRecordAgeInSeconds", n, -1, 604_800);
    }
    if let Some(Some(n)) = input.scaling_config.as_ref().map(|s| s.maximum_concurrency) {
        v.range("scalingConfig.maximumConcurrency", n, 2, 1000);
    }
    if let Some(types) = &input.function_response_types {
        v.list_length(
            "functionResponseTypes",
            &format!("[{}]", types.join(", ")),
            types.len(),
            0,
            1,
        );
        v.each_one_of(
            "functionResponseTypes",
            &format!("[{}]", types.join(", ")),
            types,
            &["ReportBatchItemFailures"],
        );
    }
    v.into_result()?;
    // Members Lambda takes for other kinds of source only.
    for (member, given) in [
        (
            "parallelizationFactor",
            input.parallelization_factor.is_some(),
        ),
        (
            "tumblingWindowInSeconds",
            input.tumbling_window_in_seconds.is_some(),
        ),
        (
            "amazonManagedKafkaEventSourceConfig",
            input.amazon_managed_kafka_event_source_config.is_some(),
        ),
        (
            "documentDBEventSourceConfig",
            input.document_db_event_source_config.is_some(),
        ),
        (
            "provisionedPollerConfig",
            input.provisioned_poller_config.is_some(),
        ),
    ] {
        if given {
            return Err(unsupported(member));
        }
    }
    if let Some(d) = &input.destination_config
        && d.on_success
            .as_ref()
            .is_some_and(|s| s.destination.as_deref().is_some_and(|a| !a.is_empty()))
    {
        return Err(unsupported("destinationConfig.onSuccess"));
    }
    Ok(())
}

/// Parses `FilterCriteria` as Lambda does: at most five filters, each a readable pattern.
pub fn parse_filters(f: &FilterCriteriaIn) -> Result<Vec<String>, LambdaError> {
    let patterns: Vec<String> = f
        .filters
        .iter()
        .flatten()
        .map(|p| p.pattern.clone().unwrap_or_default())
        .collect();
    if patterns.len() > filter::MAX_FILTERS {
        return Err(invalid(format!(
            "The number of filters in FilterCriteria exceeds the limit of {}.",
            filter::MAX_FILTERS
        )));
    }
    FilterCriteria::parse(patterns.iter().map(String::as_str))
        .map_err(|_| invalid(filter::INVALID_PATTERN))?;
    Ok(patterns)
}

/// The source of a Create: the kind, its endpoints and the stream or queue.
fn source(input: &MappingInput) -> Result<(String, Vec<String>, String), LambdaError> {
    if let Some(arn) = &input.event_source_arn {
        if input.self_managed_event_source.is_some() {
            return Err(invalid(
                "Specify either EventSourceArn or SelfManagedEventSource, not both.",
            ));
        }
        return Err(invalid(format!(
            "Stoke does not poll {arn}: name a self-managed source with \
             SelfManagedEventSource.Endpoints (REDIS_URL, NATS_URL or AMQP_URL)."
        )));
    }
    let endpoints = input
        .self_managed_event_source
        .as_ref()
        .and_then(|s| s.endpoints.as_ref())
        .ok_or_else(|| {
            invalid("Either EventSourceArn or SelfManagedEventSource must be specified.")
        })?;
    let mut kinds = endpoints.iter();
    let (Some((kind, urls)), None) = (kinds.next(), kinds.next()) else {
        return Err(invalid(
            "SelfManagedEventSource.Endpoints must name exactly one of REDIS_URL, NATS_URL or \
             AMQP_URL.",
        ));
    };
    let scheme = match kind.as_str() {
        REDIS_URL => &["redis://", "rediss://"][..],
        NATS_URL => &["nats://"][..],
        AMQP_URL => &["amqp://", "amqps://"][..],
        other => {
            return Err(invalid(format!(
                "Unsupported endpoint type {other}: SelfManagedEventSource.Endpoints takes \
                 REDIS_URL, NATS_URL or AMQP_URL."
            )));
        }
    };
    if urls.is_empty() || urls.len() > 10 {
        return Err(invalid(format!(
            "SelfManagedEventSource.Endpoints.{kind} must list 1 to 10 endpoints."
        )));
    }
    for u in urls {
        if !scheme.iter().any(|s| u.starts_with(s)) || u.len() > 300 {
            return Err(invalid(format!(
                "The endpoint {u} is not a valid {kind} (expected {}host:port).",
                scheme[0]
            )));
        }
        if kind == AMQP_URL {
            super::amqp::endpoint::parse_endpoint(u).map_err(invalid)?;
        }
    }
    let (member, list) = if kind == AMQP_URL {
        ("Queues", &input.queues)
    } else {
        ("Topics", &input.topics)
    };
    let other = if kind == AMQP_URL {
        ("Topics", &input.topics)
    } else {
        ("Queues", &input.queues)
    };
    if other.1.is_some() {
        return Err(invalid(format!(
            "{} is not valid for a {kind} event source: use {member}.",
            other.0
        )));
    }
    let topic = match list.as_deref() {
        Some([one]) if !one.is_empty() && one.len() <= 249 => one.clone(),
        _ => {
            return Err(invalid(format!(
                "{member} must name exactly one {} for a {kind} event source.",
                if kind == AMQP_URL { "queue" } else { "stream" }
            )));
        }
    };
    Ok((kind.clone(), urls.clone(), topic))
}

/// The first state of a new or changed mapping and the one it settles in.
pub fn transition(was_enabled: Option<bool>, enabled: bool) -> &'static str {
    match (was_enabled, enabled) {
        (None, _) => "Creating",
        (Some(false), true) => "Enabling",
        (Some(true), false) => "Disabling",
        (Some(_), _) => "Updating",
    }
}

fn clamp_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Create: a new mapping of `function_name` (`qualifier`) from a valid input. The caller
/// checks the function and the destination.
pub fn create(
    input: &MappingInput,
    account: &stoke_core::AccountId,
    function_name: &str,
    qualifier: Option<String>,
    now: f64,
) -> Result<Mapping, LambdaError> {
    check_model(input)?;
    let (kind, endpoints, topic) = source(input)?;
    let filters = match &input.filter_criteria {
        Some(f) => parse_filters(f)?,
        None => Vec::new(),
    };
    let (access, basic_auth) = access(input.source_access_configurations.as_deref(), None)?;
    match input.starting_position.as_deref() {
        None | Some("TRIM_HORIZON") | Some("LATEST") => {}
        Some(other) => {
            return Err(invalid(format!(
                "Unsupported starting position {other} for a {kind} event source: use \
                 TRIM_HORIZON or LATEST."
            )));
        }
    }
    if input.starting_position_timestamp.is_some() {
        return Err(unsupported("startingPositionTimestamp"));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let group = input
        .self_managed_kafka_event_source_config
        .as_ref()
        .and_then(|c| c.consumer_group_id.clone())
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| format!("stoke-{uuid}"));
    let enabled = input.enabled.unwrap_or(true);
    let first = endpoints.first().cloned().unwrap_or_default();
    Ok(Mapping {
        source: format!("{}/{topic}", redact_url(&first)),
        uuid,
        account: account.clone(),
        function_name: function_name.to_owned(),
        qualifier,
        endpoint_kind: kind,
        endpoints,
        topic,
        consumer_group: group,
        starting_position: input
            .starting_position
            .clone()
            .unwrap_or_else(|| "TRIM_HORIZON".into()),
        access,
        basic_auth,
        batch_size: input.batch_size.map_or(DEFAULT_BATCH_SIZE, clamp_u32),
        batching_window_seconds: input
            .maximum_batching_window_in_seconds
            .map_or(0, clamp_u32),
        maximum_concurrency: input
            .scaling_config
            .as_ref()
            .and_then(|s| s.maximum_concurrency)
            .map(clamp_u32),
        report_batch_item_failures: input
            .function_response_types
            .as_ref()
            .is_some_and(|t| !t.is_empty()),
        filters,
        on_failure: on_failure(input),
        maximum_retry_attempts: input.maximum_retry_attempts,
        maximum_record_age_seconds: input.maximum_record_age_in_seconds,
        bisect_batch_on_function_error: input.bisect_batch_on_function_error,
        enabled,
        state: transition(None, enabled).into(),
        state_transition_reason: "USER_INITIATED".into(),
        last_processing_result: "No records processed".into(),
        last_modified: now,
        revision: uuid::Uuid::new_v4().to_string(),
    })
}

fn on_failure(input: &MappingInput) -> Option<String> {
    input
        .destination_config
        .as_ref()
        .and_then(|d| d.on_failure.as_ref())
        .and_then(|f| f.destination.clone())
        .filter(|a| !a.is_empty())
}

/// Update: what the input names replaces what was there (the source stays; `FunctionName`
/// is the service's), and the state becomes the transition's.
pub fn update(old: &Mapping, input: &MappingInput, now: f64) -> Result<Mapping, LambdaError> {
    check_model(input)?;
    for (member, given) in [
        ("EventSourceArn", input.event_source_arn.is_some()),
        (
            "SelfManagedEventSource",
            input.self_managed_event_source.is_some(),
        ),
        ("Topics", input.topics.is_some()),
        ("Queues", input.queues.is_some()),
        ("StartingPosition", input.starting_position.is_some()),
    ] {
        if given {
            return Err(invalid(format!(
                "{member} cannot be changed: create a new event source mapping."
            )));
        }
    }
    let mut m = old.clone();
    if let Some(f) = &input.filter_criteria {
        m.filters = parse_filters(f)?;
    }
    if input.source_access_configurations.is_some() {
        let own = old
            .access
            .iter()
            .find(|a| a.kind == BASIC_AUTH)
            .map(|a| (a.uri.as_str(), old.basic_auth.as_ref()));
        (m.access, m.basic_auth) = access(input.source_access_configurations.as_deref(), own)?;
    }
    if let Some(n) = input.batch_size {
        m.batch_size = clamp_u32(n);
    }
    if let Some(n) = input.maximum_batching_window_in_seconds {
        m.batching_window_seconds = clamp_u32(n);
    }
    if let Some(s) = &input.scaling_config {
        m.maximum_concurrency = s.maximum_concurrency.map(clamp_u32);
    }
    if let Some(t) = &input.function_response_types {
        m.report_batch_item_failures = !t.is_empty();
    }
    if let Some(d) = &input.destination_config
        && d.on_failure.is_some()
    {
        m.on_failure = on_failure(input);
    }
    if let Some(n) = input.maximum_retry_attempts {
        m.maximum_retry_attempts = Some(n);
    }
    if let Some(n) = input.maximum_record_age_in_seconds {
        m.maximum_record_age_seconds = Some(n);
    }
    if let Some(b) = input.bisect_batch_on_function_error {
        m.bisect_batch_on_function_error = Some(b);
    }
    let enabled = input.enabled.unwrap_or(old.enabled);
    m.state = transition(Some(old.enabled), enabled).into();
    m.enabled = enabled;
    m.state_transition_reason = "USER_INITIATED".into();
    m.last_modified = now;
    m.revision = uuid::Uuid::new_v4().to_string();
    Ok(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn account() -> stoke_core::AccountId {
        stoke_core::AccountId::try_from("123456789012".to_owned()).unwrap()
    }

    fn input(v: serde_json::Value) -> MappingInput {
        serde_json::from_value(v).unwrap()
    }

    fn redis() -> serde_json::Value {
        serde_json::json!({
            "FunctionName": "f",
            "SelfManagedEventSource": {"Endpoints": {"REDIS_URL": ["redis://h:6379"]}},
            "Topics": ["orders"],
        })
    }

    #[test]
    fn a_new_mapping_takes_lambdas_defaults_and_its_own_group() {
        let m = create(&input(redis()), &account(), "f", None, 1.5).unwrap();
        assert_eq!(m.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(m.batching_window_seconds, 0);
        assert_eq!(m.starting_position, "TRIM_HORIZON");
        assert_eq!(m.consumer_group, format!("stoke-{}", m.uuid));
        assert_eq!(m.source, "redis://h:6379/orders");
        assert_eq!((m.state.as_str(), m.enabled), ("Creating", true));
        assert_eq!(m.last_processing_result, "No records processed");
        assert!(!m.report_batch_item_failures);
        let mut named = redis();
        named["SelfManagedKafkaEventSourceConfig"] = serde_json::json!({"ConsumerGroupId": "g1"});
        assert_eq!(
            create(&input(named), &account(), "f", None, 1.5)
                .unwrap()
                .consumer_group,
            "g1"
        );
    }

    #[test]
    fn an_update_merges_what_it_names_and_says_its_transition() {
        let m = create(&input(redis()), &account(), "f", None, 1.0).unwrap();
        let off = update(
            &m,
            &input(serde_json::json!({"Enabled": false, "BatchSize": 7})),
            2.0,
        )
        .unwrap();
        assert_eq!(
            (off.state.as_str(), off.enabled, off.batch_size),
            ("Disabling", false, 7)
        );
        assert_eq!(off.topic, "orders");
        assert_ne!(off.revision, m.revision);
        let on = update(&off, &input(serde_json::json!({"Enabled": true})), 3.0).unwrap();
        assert_eq!((on.state.as_str(), on.batch_size), ("Enabling", 7));
        let same = update(
            &on,
            &input(serde_json::json!({"MaximumRetryAttempts": 3})),
            4.0,
        )
        .unwrap();
        assert_eq!(
            (same.state.as_str(), same.maximum_retry_attempts),
            ("Updating", Some(3))
        );
        let refused = update(&same, &input(serde_json::json!({"Topics": ["x"]})), 5.0);
        assert!(matches!(
            refused,
            Err(LambdaError::InvalidParameterValue(_))
        ));
    }

    #[test]
    fn nats_and_amqp_sources_are_validated_and_made() {
        let nats = serde_json::json!({
            "SelfManagedEventSource": {"Endpoints": {"NATS_URL": ["nats://h:4222", "nats://g:4222"]}},
            "Topics": ["s"],
        });
        let m = create(&input(nats), &account(), "f", None, 0.0).unwrap();
        assert_eq!(
            (m.endpoint_kind.as_str(), m.topic.as_str()),
            (NATS_URL, "s")
        );
        assert_eq!(m.endpoints.len(), 2);
        assert_eq!(m.source, "nats://h:4222/s");
        let amqp = serde_json::json!({
            "SelfManagedEventSource": {"Endpoints": {"AMQP_URL": ["amqp://h:5672/v"]}},
            "Queues": ["q"],
        });
        let m = create(&input(amqp), &account(), "f", None, 0.0).unwrap();
        assert_eq!(
            (m.endpoint_kind.as_str(), m.topic.as_str()),
            (AMQP_URL, "q")
        );
        let amqp_topics = serde_json::json!({
            "SelfManagedEventSource": {"Endpoints": {"AMQP_URL": ["amqp://h:5672/v"]}},
            "Topics": ["s"],
        });
        let e = create(&input(amqp_topics), &account(), "f", None, 0.0).unwrap_err();
        assert_eq!(
            e,
            LambdaError::InvalidParameterValue(
                "Topics is not valid for a AMQP_URL event source: use Queues.".into()
            )
        );
    }
}
