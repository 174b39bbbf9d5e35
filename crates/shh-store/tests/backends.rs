//! Every backend, unwrapped, against the conformance suite (S3 and Azure on real local servers).

use shh_store::conformance::{Capabilities, run, servers};
use shh_store::{ResidencyPolicy, StoreUrl, open_store};

use shh_store::conformance::open_for_test as open;

#[tokio::test]
async fn file_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&format!("file://{}", dir.path().display()));
    run(store.as_ref(), Capabilities::FULL).await;
    // Writes are staged beside their object and moved into place: none is left behind.
    fn staged(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).expect("ls").flatten() {
            let p = e.path();
            if p.is_dir() {
                staged(&p, out);
            } else if p.to_string_lossy().contains('#') {
                out.push(p);
            }
        }
    }
    let mut left = Vec::new();
    staged(dir.path(), &mut left);
    assert!(left.is_empty(), "staging files left: {left:?}");
}

#[tokio::test]
async fn memory_backend() {
    run(open("memory://").as_ref(), Capabilities::FULL).await;
}

/// The mirror (dual writes during a migration) is a wrapper like any other: it passes the
/// suite over two local disks, and over local disk and S3.
#[tokio::test(flavor = "multi_thread")]
async fn mirror_store() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let primary = open(&format!("file://{}", a.path().display()));
    let second = open(&format!("file://{}", b.path().display()));
    let m = shh_store::MirrorStore::new(primary.clone(), second.clone());
    run(&m, Capabilities::FULL).await;
    if let Some(url) = servers::s3_url() {
        let m = shh_store::MirrorStore::new(primary, open(&url));
        run(&m, Capabilities::FULL).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_backend_moto() {
    let Some(url) = servers::s3_url() else { return };
    run(open(&url).as_ref(), Capabilities::FULL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_backend_signed_s3s() {
    let Some(url) = servers::s3_signed_url() else {
        return;
    };
    // s3s-fs checks SigV4, has no conditional create and ignores `If-Match` on reads.
    run(
        open(&url).as_ref(),
        Capabilities {
            create_only: false,
            conditional_reads: false,
            ..Capabilities::FULL
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_backend_azurite() {
    let Some(url) = servers::azure_url() else {
        return;
    };
    let caps = Capabilities {
        suffix_ranges: false,
        ..Capabilities::FULL
    };
    run(open(&url).as_ref(), caps).await;
}

#[test]
fn residency_refuses_before_any_request() {
    // An endpoint nothing listens on: if a request were made, the error would be a connection
    // error, not the residency refusal.
    let url =
        StoreUrl::parse("s3://b/p?endpoint=http://127.0.0.1:1&region=us-east-1").expect("url");
    let err = open_store(&url, &ResidencyPolicy::local_only()).expect_err("refused");
    assert!(matches!(err, shh_store::StoreError::Residency(_)), "{err}");
}
