//! Accounts and access keys: unique names, at most two keys, revocation, deletion refused
//! while an account owns functions, limits.

use stoke_core::AccountId;

use super::{Factory, function};
use crate::{AccountStore, DeleteRefused, FunctionStore, MAX_KEYS_PER_ACCOUNT, StoreError};

pub async fn accounts_have_unique_names_and_keys_of_their_own<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (admin, _) = s.ensure_default_account().await.unwrap();
    let (a, ka) = s.create_account("alice").await.unwrap();
    let (b, kb) = s.create_account("bob").await.unwrap();
    assert!(matches!(
        s.create_account("alice").await,
        Err(StoreError::Conflict)
    ));
    assert_ne!(a.id, b.id);
    assert_eq!(
        (a.name.as_str(), a.is_admin, a.concurrency),
        ("alice", false, None)
    );
    assert_eq!(ka.account, a.id);
    assert!(ka.access_key_id.starts_with("AKIA") && ka.access_key_id.len() == 20);
    assert_eq!(ka.secret.len(), 40);
    assert_eq!(s.access_key(&kb.access_key_id).await.unwrap(), Some(kb));
    assert_eq!(s.find_account("alice").await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.find_account(a.id.as_str()).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.find_account("nobody").await.unwrap(), None);
    let all = s.list_accounts().await.unwrap();
    let names: Vec<&str> = all.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["admin", "alice", "bob"]);
    assert!(all[0].is_admin && all[0].id == admin.account);
}

pub async fn an_account_has_at_most_two_keys_and_a_deleted_key_is_gone<F: Factory>(factory: &F) {
    let s = factory.store().await;
    s.ensure_default_account().await.unwrap();
    let (a, first) = s.create_account("keys").await.unwrap();
    let second = s.create_access_key(&a.id).await.unwrap().unwrap();
    assert_eq!(MAX_KEYS_PER_ACCOUNT, 2);
    assert_eq!(s.create_access_key(&a.id).await.unwrap(), None);
    let listed: Vec<String> = s
        .list_access_keys(&a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.access_key_id)
        .collect();
    assert_eq!(
        listed,
        [first.access_key_id.clone(), second.access_key_id.clone()]
    );

    let (other, _) = s.create_account("other").await.unwrap();
    assert!(
        !s.delete_access_key(&other.id, &first.access_key_id)
            .await
            .unwrap(),
        "a key is deleted only through its own account"
    );
    assert!(
        s.delete_access_key(&a.id, &first.access_key_id)
            .await
            .unwrap()
    );
    assert_eq!(s.access_key(&first.access_key_id).await.unwrap(), None);
    assert!(
        !s.delete_access_key(&a.id, &first.access_key_id)
            .await
            .unwrap()
    );
    assert!(s.create_access_key(&a.id).await.unwrap().is_some());
    let nobody = AccountId::try_from("999999999999".to_owned()).unwrap();
    assert!(matches!(
        s.create_access_key(&nobody).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn an_account_owning_functions_or_the_admin_is_not_deleted<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let (admin, _) = s.ensure_default_account().await.unwrap();
    let (a, key) = s.create_account("owner").await.unwrap();
    s.insert_function(&function(&a.id, "f", "r")).await.unwrap();
    assert_eq!(
        s.delete_account(&a.id).await.unwrap(),
        Err(DeleteRefused::OwnsFunctions(1))
    );
    assert_eq!(
        s.delete_account(&admin.account).await.unwrap(),
        Err(DeleteRefused::Admin)
    );
    s.delete_function(&a.id, "f").await.unwrap();
    assert_eq!(
        s.delete_account(&a.id).await.unwrap(),
        Ok(vec![key.access_key_id.clone()])
    );
    assert_eq!(s.find_account("owner").await.unwrap(), None);
    assert_eq!(s.access_key(&key.access_key_id).await.unwrap(), None);
    assert!(matches!(
        s.delete_account(&a.id).await,
        Err(StoreError::NotFound)
    ));
    // The name is free again.
    s.create_account("owner").await.unwrap();
}

pub async fn an_accounts_concurrency_limit_is_kept<F: Factory>(factory: &F) {
    let s = factory.store().await;
    s.ensure_default_account().await.unwrap();
    let (a, _) = s.create_account("limited").await.unwrap();
    for limit in [Some(150), None] {
        s.set_account_concurrency(&a.id, limit).await.unwrap();
        let kept = s.find_account("limited").await.unwrap().unwrap();
        assert_eq!(kept.concurrency, limit);
    }
    let nobody = AccountId::try_from("999999999999".to_owned()).unwrap();
    assert!(matches!(
        s.set_account_concurrency(&nobody, Some(1)).await,
        Err(StoreError::NotFound)
    ));
}
