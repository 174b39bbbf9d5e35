//! One conformance suite that every backend (file, memory, S3, Azure) and every wrapper
//! (`EncryptedStore` over each) must pass: the behaviour the hub relies on, checked the same way
//! everywhere. A new backend is done when [`run`] passes against a real server.
//!
//! Each run works under a fresh random prefix and removes what it wrote, so runs can share a
//! server.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};

/// What a backend claims beyond the basics.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// `PutMode::Create` is atomic create-only.
    pub create_only: bool,
    /// Suffix ranges (`bytes=-N`) are served (Azure Blob refuses them).
    pub suffix_ranges: bool,
    /// A read with `If-Match` is refused when the ETag differs (s3s-fs ignores it).
    pub conditional_reads: bool,
}

impl Capabilities {
    /// Every feature the hub can use.
    pub const FULL: Self = Self {
        create_only: true,
        suffix_ranges: true,
        conditional_reads: true,
    };
}

/// Deterministic test bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn unique_prefix() -> Path {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    Path::from(format!("conformance-{nanos:x}-{:x}", std::process::id()))
}

async fn read_all(store: &dyn ObjectStore, p: &Path) -> Bytes {
    store
        .get(p)
        .await
        .unwrap_or_else(|e| panic!("get {p}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
}

/// Runs the whole suite; panics with the first failure (naming the operation and path).
pub async fn run(store: &dyn ObjectStore, caps: Capabilities) {
    let root = unique_prefix();
    put_get_sizes_and_ranges(store, &root, caps).await;
    missing_objects(store, &root).await;
    listing(store, &root).await;
    if caps.create_only {
        create_only(store, &root).await;
    }
    multipart(store, &root).await;
    copy_rename_delete(store, &root).await;
    cleanup(store, &root).await;
}

async fn put_get_sizes_and_ranges(store: &dyn ObjectStore, root: &Path, caps: Capabilities) {
    for (i, len) in [0usize, 1, 100, 65_535, 65_536, 65_537, (1 << 20) + 3]
        .into_iter()
        .enumerate()
    {
        let p = root.clone().join("sizes").join(format!("obj-{len}"));
        let data = pattern(len, i as u64 + 7);
        store
            .put(&p, PutPayload::from(data.clone()))
            .await
            .unwrap_or_else(|e| panic!("put {p}: {e}"));
        let got = read_all(store, &p).await;
        assert_eq!(got.len(), len, "length of {p}");
        assert!(got.as_ref() == data.as_slice(), "content of {p}");
        let meta = store
            .head(&p)
            .await
            .unwrap_or_else(|e| panic!("head {p}: {e}"));
        assert_eq!(meta.size, len as u64, "head size of {p}");
        // A read and a head describe the same object: a conditional request built from one
        // holds for the other, and a wrong ETag is refused, not ignored.
        let got = store
            .get_opts(&p, GetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("get {p}: {e}"));
        assert_eq!(got.meta.size, meta.size, "get size of {p}");
        assert_eq!(got.meta.e_tag, meta.e_tag, "get and head ETags of {p}");
        let matching = GetOptions {
            if_match: meta.e_tag.clone(),
            ..GetOptions::default()
        };
        let got = store
            .get_opts(&p, matching)
            .await
            .unwrap_or_else(|e| panic!("get {p} if its ETag matches: {e}"));
        assert_eq!(got.bytes().await.expect("body").len(), len, "{p}");
        let wrong = GetOptions {
            if_match: Some("\"not-its-etag\"".into()),
            ..GetOptions::default()
        };
        assert!(
            !caps.conditional_reads
                || matches!(
                    store.get_opts(&p, wrong).await,
                    Err(object_store::Error::Precondition { .. })
                ),
            "get of {p} with another ETag must fail its precondition"
        );
        if len == 0 {
            continue;
        }
        let l = len as u64;
        let mut ranges = vec![0..1, l - 1..l, 0..l, l / 3..l / 2 + 1];
        if l > 65_537 {
            ranges.extend([65_535..65_537, 65_536..65_536 + 10, 1000..200_000]);
        }
        for r in ranges.into_iter().filter(|r| r.start < r.end) {
            let got = store
                .get_range(&p, r.clone())
                .await
                .unwrap_or_else(|e| panic!("range {r:?} of {p}: {e}"));
            assert!(
                got.as_ref() == &data[r.start as usize..r.end as usize],
                "range {r:?} of {p}"
            );
        }
        // A range that ends past the object is clamped; offset and suffix ranges work.
        let got = store
            .get_range(&p, l / 2..l + 100)
            .await
            .unwrap_or_else(|e| panic!("clamped range of {p}: {e}"));
        assert!(got.as_ref() == &data[len / 2..], "clamped range of {p}");
        if caps.suffix_ranges {
            let opts = GetOptions {
                range: Some(GetRange::Suffix(l.min(10))),
                ..Default::default()
            };
            let got = store
                .get_opts(&p, opts)
                .await
                .unwrap_or_else(|e| panic!("suffix of {p}: {e}"))
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("suffix of {p}: {e}"));
            assert!(
                got.as_ref() == &data[len - (len.min(10))..],
                "suffix range of {p}"
            );
        }
        let opts = GetOptions {
            range: Some(GetRange::Offset(l - 1)),
            ..Default::default()
        };
        let got = store
            .get_opts(&p, opts)
            .await
            .unwrap_or_else(|e| panic!("offset of {p}: {e}"))
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("offset of {p}: {e}"));
        assert!(got.as_ref() == &data[len - 1..], "offset range of {p}");
        assert!(
            store.get_range(&p, l + 5..l + 10).await.is_err(),
            "range past the end of {p} must fail"
        );
    }
}

async fn missing_objects(store: &dyn ObjectStore, root: &Path) {
    let p = root.clone().join("does-not-exist");
    assert!(
        matches!(
            store.get(&p).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "get of a missing object must be NotFound"
    );
    assert!(
        matches!(
            store.head(&p).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "head of a missing object must be NotFound"
    );
}

async fn listing(store: &dyn ObjectStore, root: &Path) {
    let base = root.clone().join("list");
    let names = ["a", "b/c", "b/d/e", "f"];
    for (i, n) in names.iter().enumerate() {
        let p = Path::from(format!("{base}/{n}"));
        store
            .put(&p, PutPayload::from(pattern(10 + i, 1)))
            .await
            .unwrap_or_else(|e| panic!("put {p}: {e}"));
    }
    let mut all: Vec<_> = store
        .list(Some(&base))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("list {base}: {e}"));
    all.sort_by(|a, b| a.location.cmp(&b.location));
    let got: Vec<String> = all.iter().map(|m| m.location.to_string()).collect();
    let want: Vec<String> = names.iter().map(|n| format!("{base}/{n}")).collect();
    assert_eq!(got, want, "recursive listing of {base}");
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.size, 10 + i as u64, "listed size of {}", m.location);
    }
    let d = store
        .list_with_delimiter(Some(&base))
        .await
        .unwrap_or_else(|e| panic!("list_with_delimiter {base}: {e}"));
    let mut objs: Vec<String> = d.objects.iter().map(|m| m.location.to_string()).collect();
    objs.sort();
    assert_eq!(
        objs,
        vec![format!("{base}/a"), format!("{base}/f")],
        "objects at {base}"
    );
    let prefixes: Vec<String> = d.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        prefixes,
        vec![format!("{base}/b")],
        "common prefixes at {base}"
    );
    let after: Vec<String> = store
        .list_with_offset(Some(&base), &Path::from(format!("{base}/b/c")))
        .map_ok(|m| m.location.to_string())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("list_with_offset {base}: {e}"));
    let mut after = after;
    after.sort();
    assert_eq!(
        after,
        vec![format!("{base}/b/d/e"), format!("{base}/f")],
        "listing after offset"
    );
    // A prefix is a path segment: "list/b" must not match "list/bx".
    let empty: Vec<_> = store
        .list(Some(&base.clone().join("bx")))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert!(empty.is_empty(), "prefix matched a sibling segment");
}

async fn create_only(store: &dyn ObjectStore, root: &Path) {
    let p = root.clone().join("create-only");
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&p, PutPayload::from_static(b"first"), create())
        .await
        .unwrap_or_else(|e| panic!("create {p}: {e}"));
    let second = store
        .put_opts(&p, PutPayload::from_static(b"second"), create())
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "second create-only put of {p} must be AlreadyExists, got {second:?}"
    );
    assert_eq!(
        read_all(store, &p).await.as_ref(),
        b"first",
        "create-only must keep the first object"
    );
    // Racing writers of one new name: exactly one wins, and its bytes are what is read.
    let race = root.clone().join("create-race");
    let (a, b) = futures::join!(
        store.put_opts(&race, PutPayload::from_static(b"from a"), create()),
        store.put_opts(&race, PutPayload::from_static(b"from b"), create())
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one racing create-only put of {race} must win: {a:?} {b:?}"
    );
    let want: &[u8] = if a.is_ok() { b"from a" } else { b"from b" };
    assert_eq!(read_all(store, &race).await.as_ref(), want);
    store
        .put(&p, PutPayload::from_static(b"third"))
        .await
        .unwrap_or_else(|e| panic!("overwrite {p}: {e}"));
    assert_eq!(
        read_all(store, &p).await.as_ref(),
        b"third",
        "overwrite must replace"
    );
}

async fn multipart(store: &dyn ObjectStore, root: &Path) {
    let p = root.clone().join("multipart");
    let parts = [
        pattern(5 << 20, 11),
        pattern(5 << 20, 12),
        pattern(1000, 13),
    ];
    let mut up = store
        .put_multipart(&p)
        .await
        .unwrap_or_else(|e| panic!("start multipart {p}: {e}"));
    for part in &parts {
        up.put_part(PutPayload::from(part.clone()))
            .await
            .unwrap_or_else(|e| panic!("part of {p}: {e}"));
    }
    up.complete()
        .await
        .unwrap_or_else(|e| panic!("complete {p}: {e}"));
    let want: Vec<u8> = parts.concat();
    let got = read_all(store, &p).await;
    assert_eq!(got.len(), want.len(), "multipart length");
    assert!(got.as_ref() == want.as_slice(), "multipart content");
    let r = store
        .get_range(&p, (5 << 20) - 5..(5 << 20) + 5)
        .await
        .unwrap_or_else(|e| panic!("range {p}: {e}"));
    assert!(
        r.as_ref() == &want[(5 << 20) - 5..(5 << 20) + 5],
        "range across parts"
    );

    let aborted = root.clone().join("aborted");
    let mut up = store
        .put_multipart(&aborted)
        .await
        .unwrap_or_else(|e| panic!("start multipart {aborted}: {e}"));
    up.put_part(PutPayload::from(pattern(1000, 3)))
        .await
        .unwrap_or_else(|e| panic!("part: {e}"));
    up.abort()
        .await
        .unwrap_or_else(|e| panic!("abort {aborted}: {e}"));
    assert!(
        store.head(&aborted).await.is_err(),
        "an aborted upload must leave no object"
    );
}

async fn copy_rename_delete(store: &dyn ObjectStore, root: &Path) {
    let a = root.clone().join("copy-src");
    let b = root.clone().join("copy-dst");
    let c = root.clone().join("renamed");
    let data = pattern(70_000, 5);
    store
        .put(&a, PutPayload::from(data.clone()))
        .await
        .unwrap_or_else(|e| panic!("put {a}: {e}"));
    store
        .copy(&a, &b)
        .await
        .unwrap_or_else(|e| panic!("copy {a} -> {b}: {e}"));
    assert!(
        read_all(store, &b).await.as_ref() == data.as_slice(),
        "copy content"
    );
    assert!(
        read_all(store, &a).await.as_ref() == data.as_slice(),
        "copy source intact"
    );
    store
        .rename(&b, &c)
        .await
        .unwrap_or_else(|e| panic!("rename {b} -> {c}: {e}"));
    assert!(
        read_all(store, &c).await.as_ref() == data.as_slice(),
        "rename content"
    );
    assert!(
        store.head(&b).await.is_err(),
        "rename must remove the source"
    );
    store
        .delete(&c)
        .await
        .unwrap_or_else(|e| panic!("delete {c}: {e}"));
    assert!(
        matches!(
            store.get(&c).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "deleted object must be NotFound"
    );
}

async fn cleanup(store: &dyn ObjectStore, root: &Path) {
    let all: Vec<_> = store
        .list(Some(root))
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("list {root}: {e}"));
    for p in all {
        store
            .delete(&p)
            .await
            .unwrap_or_else(|e| panic!("delete {p}: {e}"));
    }
    let left: Vec<_> = store
        .list(Some(root))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert!(left.is_empty(), "cleanup left {} objects", left.len());
}

/// Opens `url` for a test, allowing its destination in a local-only residency policy.
pub fn open_for_test(url: &str) -> std::sync::Arc<dyn ObjectStore> {
    let url = crate::StoreUrl::parse(url).unwrap_or_else(|e| panic!("{e}"));
    let mut policy = crate::ResidencyPolicy::local_only();
    policy.allow.push(crate::ResidencyRule::for_url(&url));
    crate::open_store(&url, &policy).unwrap_or_else(|e| panic!("{e}"))
}

/// Test servers started by `scripts/test-servers.sh`, found through environment variables.
///
/// When `SHH_REQUIRE_SERVERS=1` (as in CI), a missing server is a failure, not a skip: a green
/// run must mean the backends were tested.
pub mod servers {
    fn get(var: &str) -> Option<String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                if std::env::var("SHH_REQUIRE_SERVERS").as_deref() == Ok("1") {
                    panic!(
                        "{var} is not set but SHH_REQUIRE_SERVERS=1: start scripts/test-servers.sh"
                    );
                }
                eprintln!("skipping: {var} not set (run scripts/test-servers.sh start)");
                None
            }
        }
    }

    /// `s3://…` URL of the moto server (unsigned requests accepted).
    pub fn s3_url() -> Option<String> {
        get("SHH_TEST_S3_URL")
    }
    /// `s3://…` URL of the s3s-fs server (checks SigV4 signatures).
    pub fn s3_signed_url() -> Option<String> {
        get("SHH_TEST_S3_SIGNED_URL")
    }
    /// `az://…` URL of the Azurite container.
    pub fn azure_url() -> Option<String> {
        get("SHH_TEST_AZURE_URL")
    }
}
