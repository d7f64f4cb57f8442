//! Code blobs: stored once under their digest, read back, removed; addresses that are not
//! digests name nothing.

use super::Factory;
use crate::BlobStore;

pub async fn a_blob_is_stored_once_under_its_digest<F: Factory>(factory: &F) {
    let blobs = factory.blobs();
    let a = blobs.put(b"hello").unwrap();
    assert_eq!(
        a,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(blobs.put(b"hello").unwrap(), a);
    assert_eq!(blobs.get(&a).unwrap().unwrap(), b"hello");
    blobs.remove(&a).unwrap();
    assert!(blobs.get(&a).unwrap().is_none());
    // Removing what is not there is fine.
    blobs.remove(&a).unwrap();
}

pub async fn an_address_that_is_not_a_digest_names_nothing<F: Factory>(factory: &F) {
    let blobs = factory.blobs();
    assert!(blobs.get("zz").unwrap().is_none());
    assert!(blobs.get("../../etc/passwd").unwrap().is_none());
    blobs.remove("../../etc/passwd").unwrap();
}
