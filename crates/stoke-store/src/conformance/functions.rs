//! Accounts, settings and functions: create once, compare-and-swap, list, usage.

use stoke_core::AccountId;

use super::{Factory, function};
use crate::{AccountStore, FunctionStore, StoreError};

pub async fn the_default_account_is_created_once<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k1, created) = s.ensure_default_account().await.unwrap();
    assert!(created);
    assert_eq!(k1.account.as_str().len(), 12);
    assert!(k1.access_key_id.starts_with("AKIA") && k1.access_key_id.len() == 20);
    let (k2, created) = s.ensure_default_account().await.unwrap();
    assert!(!created);
    assert_eq!(k1, k2);
    assert_eq!(s.access_key(&k1.access_key_id).await.unwrap(), Some(k1));
}

pub async fn a_setting_keeps_its_first_value<F: Factory>(factory: &F) {
    let s = factory.store().await;
    assert_eq!(s.setting_or_init("k", "one").await.unwrap(), "one");
    assert_eq!(s.setting_or_init("k", "two").await.unwrap(), "one");
    assert_eq!(s.access_key("AKIANOSUCHKEY").await.unwrap(), None);
}

pub async fn a_duplicate_name_conflicts_and_a_stale_revision_is_refused<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let f = function(&k.account, "f", "r1");
    s.insert_function(&f).await.unwrap();
    assert!(matches!(
        s.insert_function(&f).await,
        Err(StoreError::Conflict)
    ));

    let mut g = f.clone();
    g.revision_id = "r2".into();
    s.replace_function(&g, "r1").await.unwrap();
    assert!(matches!(
        s.replace_function(&g, "r1").await,
        Err(StoreError::Stale { .. })
    ));
    assert_eq!(
        s.get_function(&k.account, "f")
            .await
            .unwrap()
            .unwrap()
            .revision_id,
        "r2"
    );
}

pub async fn listing_pages_in_name_order_and_usage_counts<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    for n in ["c", "a", "b"] {
        s.insert_function(&function(&k.account, n, "r"))
            .await
            .unwrap();
    }
    let page = s.list_functions(&k.account, None, 2).await.unwrap();
    let names: Vec<_> = page.iter().map(|f| f.name.as_str().to_owned()).collect();
    assert_eq!(names, ["a", "b"]);
    let page = s.list_functions(&k.account, Some("b"), 2).await.unwrap();
    assert_eq!(page.len(), 1);
    let usage = s.account_usage(&k.account).await.unwrap();
    assert_eq!((usage.function_count, usage.total_code_size), (3, 30));
    assert!(s.code_in_use(&"ab".repeat(32)).await.unwrap());
    assert!(s.delete_function(&k.account, "a").await.unwrap().is_some());
    assert!(s.delete_function(&k.account, "a").await.unwrap().is_none());
}

pub async fn a_replace_of_a_missing_function_is_not_found<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (k, _) = s.ensure_default_account().await.unwrap();
    let f = function(&k.account, "gone", "r1");
    assert!(matches!(
        s.replace_function(&f, "r1").await,
        Err(StoreError::NotFound)
    ));
    s.insert_function(&f).await.unwrap();
    let other = AccountId::try_from("210987654321".to_owned()).unwrap();
    assert!(s.get_function(&other, "gone").await.unwrap().is_none());
    assert_eq!(s.all_functions().await.unwrap().len(), 1);
    let gone = s
        .delete_function(&k.account, "gone")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.revision_id, "r1");
    assert!(!s.code_in_use(&f.code.sha256_hex).await.unwrap());
}
