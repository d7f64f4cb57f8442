//! Event source mappings: the compare-and-swap of their revision, lists by function and by
//! source in UUID order, and their pollers' leases (one owner at a time, renewed, taken over
//! once expired, released per owner).

use stoke_core::AccountId;

use super::Factory;
use crate::mappings::{AccessConfig, BasicAuth, Mapping, MappingStore};
use crate::{AccountStore, StoreError};

pub(crate) fn mapping(account: &AccountId, uuid: &str, function: &str, topic: &str) -> Mapping {
    Mapping {
        uuid: uuid.into(),
        account: account.clone(),
        function_name: function.into(),
        qualifier: None,
        endpoint_kind: "REDIS_URL".into(),
        endpoints: vec!["redis://127.0.0.1:6379".into()],
        topic: topic.into(),
        source: format!("redis://127.0.0.1:6379/{topic}"),
        consumer_group: uuid.into(),
        starting_position: "TRIM_HORIZON".into(),
        access: vec![AccessConfig {
            kind: "BASIC_AUTH".into(),
            uri: "arn:aws:secretsmanager:us-east-1:123456789012:secret:s".into(),
        }],
        basic_auth: None,
        batch_size: 10,
        batching_window_seconds: 0,
        maximum_concurrency: Some(2),
        report_batch_item_failures: true,
        filters: vec![r#"{"body": {"a": ["b"]}}"#.into()],
        on_failure: None,
        maximum_retry_attempts: Some(3),
        maximum_record_age_seconds: None,
        bisect_batch_on_function_error: None,
        enabled: true,
        state: "Creating".into(),
        state_transition_reason: "USER_INITIATED".into(),
        last_processing_result: "No records processed".into(),
        last_modified: 1_700_000_000.5,
        revision: "r1".into(),
    }
}

fn uuids(ms: &[Mapping]) -> Vec<&str> {
    ms.iter().map(|m| m.uuid.as_str()).collect()
}

pub async fn mappings_are_kept_listed_and_replaced_by_revision<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let a = &k.account;
    let other = AccountId::try_from("210987654321".to_owned()).unwrap();
    let m1 = mapping(a, "u1", "f", "orders");
    s.insert_mapping(&m1).await.unwrap();
    assert!(matches!(
        s.insert_mapping(&m1).await,
        Err(StoreError::Conflict)
    ));
    s.insert_mapping(&mapping(a, "u3", "g", "orders"))
        .await
        .unwrap();
    s.insert_mapping(&mapping(a, "u2", "f", "payments"))
        .await
        .unwrap();
    s.insert_mapping(&mapping(&other, "u0", "f", "orders"))
        .await
        .unwrap();
    assert_eq!(s.get_mapping("u1").await.unwrap(), Some(m1.clone()));
    assert_eq!(s.get_mapping("nope").await.unwrap(), None);

    let all = s.list_mappings(a, None, None, None, 50).await.unwrap();
    assert_eq!(uuids(&all), ["u1", "u2", "u3"]);
    let by_fn = s.list_mappings(a, Some("f"), None, None, 50).await.unwrap();
    assert_eq!(uuids(&by_fn), ["u1", "u2"]);
    let src = "redis://127.0.0.1:6379/orders";
    let by_src = s.list_mappings(a, None, Some(src), None, 50).await.unwrap();
    assert_eq!(uuids(&by_src), ["u1", "u3"]);
    let both = s
        .list_mappings(a, Some("g"), Some(src), None, 50)
        .await
        .unwrap();
    assert_eq!(uuids(&both), ["u3"]);
    let page = s.list_mappings(a, None, None, Some("u1"), 1).await.unwrap();
    assert_eq!(uuids(&page), ["u2"]);

    let mut m2 = m1.clone();
    m2.batch_size = 100;
    m2.revision = "r2".into();
    assert!(matches!(
        s.replace_mapping(&m2, "r0").await,
        Err(StoreError::Stale { .. })
    ));
    s.replace_mapping(&m2, "r1").await.unwrap();
    assert_eq!(s.get_mapping("u1").await.unwrap(), Some(m2.clone()));
    assert_eq!(s.delete_mapping("u1").await.unwrap(), Some(m2.clone()));
    assert_eq!(s.delete_mapping("u1").await.unwrap(), None);
    assert!(matches!(
        s.replace_mapping(&m2, "r2").await,
        Err(StoreError::NotFound)
    ));
}

pub async fn a_mapping_is_leased_to_one_owner_until_it_expires<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let a = &k.account;
    s.insert_mapping(&mapping(a, "u1", "f", "orders"))
        .await
        .unwrap();
    let mut off = mapping(a, "u2", "f", "orders");
    off.enabled = false;
    s.insert_mapping(&off).await.unwrap();

    // Only enabled mappings are leased, to one owner at a time; its holder renews.
    assert_eq!(
        uuids(&s.claim_mappings("n1", 1_000, 500).await.unwrap()),
        ["u1"]
    );
    assert!(s.claim_mappings("n2", 1_200, 500).await.unwrap().is_empty());
    assert_eq!(
        uuids(&s.claim_mappings("n1", 1_400, 500).await.unwrap()),
        ["u1"]
    );
    assert!(s.claim_mappings("n2", 1_800, 500).await.unwrap().is_empty());
    // Expired (n1 stopped renewing): taken over.
    assert_eq!(
        uuids(&s.claim_mappings("n2", 2_000, 500).await.unwrap()),
        ["u1"]
    );
    assert!(s.claim_mappings("n1", 2_100, 500).await.unwrap().is_empty());
    // A release frees only the owner's.
    s.release_mappings("n1").await.unwrap();
    assert!(s.claim_mappings("n3", 2_200, 500).await.unwrap().is_empty());
    s.release_mappings("n2").await.unwrap();
    assert_eq!(
        uuids(&s.claim_mappings("n3", 2_200, 500).await.unwrap()),
        ["u1"]
    );
}

/// A password the credentials test seals: no record may show it.
pub(crate) const SEALED_PASSWORD: &str = "pa55-w0rd-never-in-the-row";

pub async fn a_mappings_credentials_are_sealed_and_come_back_opened<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let a = &k.account;
    let mut m = mapping(a, "u1", "f", "orders");
    m.basic_auth = Some(BasicAuth {
        username: "alice".into(),
        password: SEALED_PASSWORD.to_owned().into(),
    });
    s.insert_mapping(&m).await.unwrap();
    assert!(!format!("{m:?}").contains(SEALED_PASSWORD));
    assert_eq!(s.get_mapping("u1").await.unwrap(), Some(m.clone()));
    assert_eq!(
        s.list_mappings(a, None, None, None, 5).await.unwrap(),
        [m.clone()]
    );
    assert_eq!(
        s.claim_mappings("n1", 1_000, 500).await.unwrap(),
        [m.clone()]
    );
    // Another password replaces it; none takes it away.
    let mut m2 = m.clone();
    m2.revision = "r2".into();
    m2.basic_auth = Some(BasicAuth {
        username: String::new(),
        password: "other".to_owned().into(),
    });
    s.replace_mapping(&m2, "r1").await.unwrap();
    assert_eq!(s.get_mapping("u1").await.unwrap(), Some(m2.clone()));
    let mut m3 = m2.clone();
    m3.revision = "r3".into();
    m3.basic_auth = None;
    s.replace_mapping(&m3, "r2").await.unwrap();
    assert_eq!(s.get_mapping("u1").await.unwrap(), Some(m3.clone()));
    assert_eq!(s.delete_mapping("u1").await.unwrap(), Some(m3));
}
