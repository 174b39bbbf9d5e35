//! `EncryptedStore` over every backend passes the same conformance suite as the bare backends,
//! and the bare backend then holds only ciphertext.

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use shh_crypt::EncryptedStore;
use shh_keys::StorageKeys;
use shh_store::conformance::{Capabilities, run, servers};
use std::sync::Arc;

use shh_store::conformance::open_for_test as open;

async fn encrypted_suite(inner: Arc<dyn ObjectStore>, caps: Capabilities) {
    let enc = EncryptedStore::from_arc(Arc::new(inner.clone()), StorageKeys::ephemeral());
    run(&enc, caps).await;
    // And a marker written through the wrapper never reaches the backend in clear.
    let marker = b"MARKER-1b0e2f-PLAINTEXT";
    let p = object_store::path::Path::from(format!("marker-{}", std::process::id()));
    let mut body = shh_store::conformance::pattern(200_000, 9);
    body[150_000..150_000 + marker.len()].copy_from_slice(marker);
    enc.put(&p, body.clone().into()).await.expect("put");
    let raw = inner
        .get(&p)
        .await
        .expect("raw get")
        .bytes()
        .await
        .expect("raw bytes");
    assert!(
        !raw.windows(marker.len()).any(|w| w == marker),
        "marker found in stored bytes"
    );
    assert_eq!(
        enc.get(&p)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes")
            .as_ref(),
        body.as_slice()
    );
    let listed: Vec<_> = enc.list(None).try_collect().await.expect("list");
    assert!(
        listed
            .iter()
            .any(|m| m.location == p && m.size == body.len() as u64),
        "plaintext size in listing"
    );
    inner.delete(&p).await.expect("delete");
}

#[tokio::test]
async fn encrypted_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    encrypted_suite(
        open(&format!("file://{}", dir.path().display())),
        Capabilities::FULL,
    )
    .await;
}

#[tokio::test]
async fn encrypted_memory() {
    encrypted_suite(open("memory://"), Capabilities::FULL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_s3_moto() {
    let Some(url) = servers::s3_url() else { return };
    encrypted_suite(open(&url), Capabilities::FULL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_s3_signed() {
    let Some(url) = servers::s3_signed_url() else {
        return;
    };
    encrypted_suite(
        open(&url),
        Capabilities {
            create_only: false,
            conditional_reads: false,
            ..Capabilities::FULL
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_azure() {
    let Some(url) = servers::azure_url() else {
        return;
    };
    encrypted_suite(open(&url), Capabilities::FULL).await;
}
