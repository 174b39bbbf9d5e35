//! Dataset versions on their own (no hub): written through the encrypted store, chained to
//! their parent, verified, exported as plain Parquet, and nothing visible from a writer that
//! was aborted or never committed.

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use shh_catalog::Catalog;
use shh_crypt::EncryptedStore;
use shh_dataset::{HubStore, VersionWriter, WriteOptions, sample};
use std::sync::Arc;

struct Setup {
    raw: Arc<InMemory>,
    store: Arc<HubStore>,
    catalog: Arc<dyn Catalog>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tmp");
    let raw = Arc::new(InMemory::new());
    let inner: Arc<dyn ObjectStore> = raw.clone();
    let store = Arc::new(EncryptedStore::new(
        inner,
        shh_keys::StorageKeys::ephemeral(),
    ));
    let catalog = shh_catalog::open_catalog("sqlite://catalog.db", dir.path()).expect("catalog");
    Setup {
        raw,
        store,
        catalog,
        _dir: dir,
    }
}

/// A writer of a version of `claims` rolling files every `per_file` rows.
async fn writer(s: &Setup, per_file: u64) -> VersionWriter {
    VersionWriter::new(
        s.store.clone(),
        s.catalog.clone(),
        "claims",
        sample::schema(),
        WriteOptions {
            max_rows_per_file: per_file,
            ..Default::default()
        },
    )
    .await
    .expect("writer")
}

async fn write(s: &Setup, rows: u64, per_file: u64, seed: u64) -> shh_dataset::CommittedVersion {
    let mut w = writer(s, per_file).await;
    for b in sample::batches(rows, 1000, seed, Some("MARKER-IN-EVERY-ROW")) {
        w.write(&b).await.expect("write");
    }
    w.commit().await.expect("commit")
}

async fn raw_paths(s: &Setup) -> Vec<String> {
    let mut v: Vec<String> = s
        .raw
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    v.sort();
    v
}

#[tokio::test]
async fn versions_chain_verify_and_export_as_plain_parquet() {
    let s = setup();
    let v1 = write(&s, 2_500, 1_000, 1).await;
    let v2 = write(&s, 1_200, 1_000, 2).await;
    assert_eq!(v1.manifest.files.len(), 3, "rolled every 1,000 rows");
    assert_eq!(v2.manifest.parent.as_deref(), Some(v1.id.as_str()));
    let d = s.catalog.dataset("claims").await.expect("dataset");
    assert_eq!(d.current.as_deref(), Some(v2.id.as_str()));

    let r = shh_dataset::verify_version(&s.store, s.catalog.as_ref(), "claims", Some(&v1.id))
        .await
        .expect("verify");
    assert!(r.first_bad().is_none() && r.rows == 2_500, "{r:?}");

    // Ciphertext at rest: the marker in every row is nowhere in the raw store.
    for p in raw_paths(&s).await {
        let b = s
            .raw
            .get(&object_store::path::Path::from(p.as_str()))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert!(!b.windows(6).any(|w| w == b"MARKER"), "{p} holds plaintext");
    }

    let out = shh_sink::MemorySink::new();
    let e = shh_dataset::export_version(&s.store, s.catalog.as_ref(), "claims", None, &out)
        .await
        .expect("export");
    assert_eq!((e.version.as_str(), e.rows), (v2.id.as_str(), 1_200));
    let files = out.result(&e.name).expect("committed");
    let mut rows = 0;
    for f in &e.files {
        let file = files.get(f).expect("listed file is in the result").clone();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("plain parquet")
            .build()
            .expect("reader");
        for b in reader {
            rows += b.expect("batch").num_rows();
        }
    }
    assert_eq!(rows, 1_200);
    // Exporting the same version again refuses to overwrite it.
    assert!(
        shh_dataset::export_version(&s.store, s.catalog.as_ref(), "claims", None, &out)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_aborted_or_uncommitted_writer_leaves_nothing_visible() {
    let s = setup();
    let mut w = writer(&s, 500).await;
    for b in sample::batches(2_000, 500, 3, None) {
        w.write(&b).await.expect("write");
    }
    assert!(!raw_paths(&s).await.is_empty(), "files were written");
    w.abort().await;
    assert!(raw_paths(&s).await.is_empty(), "{:?}", raw_paths(&s).await);
    assert!(s.catalog.datasets().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_changed_file_fails_verification_naming_it() {
    let s = setup();
    let v = write(&s, 1_500, 1_000, 4).await;
    let victim = v.manifest.files[1].path.clone();
    let p = object_store::path::Path::from(victim.as_str());
    let mut bytes = s
        .raw
        .get(&p)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .to_vec();
    let n = bytes.len() / 2;
    bytes[n] ^= 0x40;
    s.raw.put(&p, bytes.into()).await.expect("put");
    let r = shh_dataset::verify_version(&s.store, s.catalog.as_ref(), "claims", None)
        .await
        .expect("verify runs");
    let bad = r.first_bad().expect("a bad file");
    assert_eq!(bad.path, victim);
    assert!(r.files[0].ok, "the other file is fine");
}
