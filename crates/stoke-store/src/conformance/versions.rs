//! Versions and aliases: numbers never reused, compare-and-swap, filters, the cascade from the
//! function.

use std::collections::BTreeMap;

use stoke_core::{Alias, AliasTarget, Function};

use super::{Factory, function};
use crate::{AccountStore, AliasStore, FunctionStore, StoreError, VersionStore};

fn alias(f: &Function, name: &str, version: &str) -> Alias {
    Alias {
        account: f.account.clone(),
        function_name: f.name.as_str().to_owned(),
        name: name.into(),
        target: AliasTarget {
            function_version: version.into(),
            additional_weights: BTreeMap::new(),
        },
        description: String::new(),
        revision_id: "a1".into(),
        previous: None,
    }
}

pub async fn version_numbers_are_never_reused_and_cascade_with_the_function<F: Factory>(
    factory: &F,
) {
    let s = factory.store().await;
    let (key, _) = s.ensure_default_account().await.unwrap();
    let f = function(&key.account, "f", "r1");
    s.insert_function(&f).await.unwrap();
    let v1 = s.publish_version(&f, "r1").await.unwrap();
    let v2 = s.publish_version(&f, "r1").await.unwrap();
    assert_eq!((v1.version.as_str(), v2.version.as_str()), ("1", "2"));
    assert!(matches!(
        s.publish_version(&f, "stale").await,
        Err(StoreError::Stale { .. })
    ));
    s.delete_version(&key.account, "f", 2).await.unwrap();
    let v3 = s.publish_version(&f, "r1").await.unwrap();
    assert_eq!(v3.version, "3");
    assert_eq!(
        s.last_version(&key.account, "f")
            .await
            .unwrap()
            .unwrap()
            .version,
        "3"
    );
    let listed = s.list_versions(&key.account, "f", 0, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(s.code_in_use(&f.code.sha256_hex).await.unwrap());

    s.insert_alias(&alias(&f, "live", "1")).await.unwrap();
    assert!(matches!(
        s.insert_alias(&alias(&f, "live", "3")).await,
        Err(StoreError::Conflict)
    ));
    let mut a = alias(&f, "canary", "3");
    a.target.additional_weights.insert("1".into(), 0.2);
    s.insert_alias(&a).await.unwrap();
    let to_1 = s
        .list_aliases(&key.account, "f", Some("1"), None, 10)
        .await
        .unwrap();
    assert_eq!(to_1.len(), 2);
    let all = s
        .list_aliases(&key.account, "f", None, Some("canary"), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);

    s.delete_function(&key.account, "f").await.unwrap();
    assert!(s.get_version(&key.account, "f", 1).await.unwrap().is_none());
    assert!(
        s.get_alias(&key.account, "f", "live")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        s.insert_alias(&alias(&f, "x", "1")).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn a_stale_version_or_alias_revision_is_refused<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (key, _) = s.ensure_default_account().await.unwrap();
    let f = function(&key.account, "f", "r1");
    s.insert_function(&f).await.unwrap();
    let mut v = s.publish_version(&f, "r1").await.unwrap();
    v.revision_id = "v2".into();
    s.replace_version(&v, "r1").await.unwrap();
    assert!(matches!(
        s.replace_version(&v, "r1").await,
        Err(StoreError::Stale { .. })
    ));
    let mut a = alias(&f, "live", "1");
    s.insert_alias(&a).await.unwrap();
    a.revision_id = "a2".into();
    s.replace_alias(&a, "a1").await.unwrap();
    assert!(matches!(
        s.replace_alias(&a, "a1").await,
        Err(StoreError::Stale { .. })
    ));
    assert_eq!(
        s.delete_alias(&key.account, "f", "live")
            .await
            .unwrap()
            .unwrap()
            .revision_id,
        "a2"
    );
    assert!(matches!(
        s.replace_alias(&a, "a2").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.delete_version(&key.account, "f", 1)
            .await
            .unwrap()
            .unwrap()
            .revision_id,
        "v2"
    );
    assert!(matches!(
        s.replace_version(&v, "v2").await,
        Err(StoreError::NotFound)
    ));
}
