//! Every way of altering stored bytes is detected on read, with an error naming the object.
//! Each case runs on memory and on local disk: file:// reads take their own paths (whole
//! objects in one buffer decrypted on several threads, larger ones streamed in chunks).

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use shh_crypt::{EncryptedStore, integrity_error};
use shh_keys::StorageKeys;
use shh_store::conformance::pattern;
use std::sync::Arc;

type Raw = Arc<dyn ObjectStore>;

struct Fixture {
    raw: Raw,
    enc: EncryptedStore<Raw>,
    _dir: Option<tempfile::TempDir>,
}

async fn fixture_on(raw: Raw, dir: Option<tempfile::TempDir>) -> Fixture {
    let enc = EncryptedStore::new(raw.clone(), StorageKeys::ephemeral());
    for (name, len) in [("a", 300_000usize), ("b", 300_000), ("small", 10)] {
        enc.put(
            &Path::from(name),
            PutPayload::from(pattern(len, len as u64)),
        )
        .await
        .expect("put");
    }
    Fixture {
        raw,
        enc,
        _dir: dir,
    }
}

async fn fixture() -> Fixture {
    fixture_on(Arc::new(InMemory::new()), None).await
}

async fn file_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
    fixture_on(Arc::new(fs), Some(dir)).await
}

/// The same fixture on memory and on local disk.
async fn fixtures() -> [Fixture; 2] {
    [fixture().await, file_fixture().await]
}

async fn raw_bytes(f: &Fixture, p: &str) -> Vec<u8> {
    f.raw
        .get(&Path::from(p))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .to_vec()
}

async fn set_raw(f: &Fixture, p: &str, bytes: Vec<u8>) {
    f.raw
        .put(&Path::from(p), PutPayload::from(bytes))
        .await
        .expect("put raw");
}

/// A full read and a range read of `p` must both fail with an integrity error naming `p`.
async fn assert_detected(f: &Fixture, p: &str, what: &str) {
    let path = Path::from(p);
    let full = match f.enc.get(&path).await {
        Ok(r) => r.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = full.expect_err(&format!("{what}: full read of {p} must fail"));
    let ie =
        integrity_error(&err).unwrap_or_else(|| panic!("{what}: not an integrity error: {err}"));
    assert_eq!(ie.path, p, "{what}: error must name the object");
    assert!(
        err.to_string().contains(p),
        "{what}: message must name the object: {err}"
    );
    let digest = f.enc.read_digest(&path).await;
    assert!(
        digest.is_err(),
        "{what}: verification read of {p} must fail"
    );
}

#[tokio::test]
async fn flipped_byte_anywhere_is_detected() {
    for f in fixtures().await {
        let orig = raw_bytes(&f, "a").await;
        // Header, wrapped key, first segment, a middle segment, and the last tag byte.
        for pos in [0, 10, 40, 95, 96, 70_000, 200_000, orig.len() - 1] {
            let mut b = orig.clone();
            b[pos] ^= 0x01;
            set_raw(&f, "a", b).await;
            assert_detected(&f, "a", &format!("flip at {pos}")).await;
        }
    }
}

#[tokio::test]
async fn flipped_byte_fails_a_range_read_of_that_segment() {
    for f in fixtures().await {
        let mut b = raw_bytes(&f, "a").await;
        b[96 + 65_552 + 5] ^= 0x80; // inside segment 1
        set_raw(&f, "a", b).await;
        let err = f
            .enc
            .get_range(&Path::from("a"), 70_000..70_010)
            .await
            .expect_err("segment 1 altered");
        assert!(integrity_error(&err).is_some(), "{err}");
        // Segment 0 is intact and still readable on its own: range reads check what they read.
        let ok = f
            .enc
            .get_range(&Path::from("a"), 0..10)
            .await
            .expect("segment 0 intact");
        assert_eq!(ok.as_ref(), &pattern(300_000, 300_000)[..10]);
    }
}

#[tokio::test]
async fn truncation_and_extension_are_detected() {
    for f in fixtures().await {
        let orig = raw_bytes(&f, "a").await;
        // Cut at a segment boundary (the cleanest truncation), mid-segment, inside the header.
        for cut in [96 + 2 * 65_552, orig.len() - 1, orig.len() - 17, 50, 0] {
            set_raw(&f, "a", orig[..cut].to_vec()).await;
            assert_detected(&f, "a", &format!("truncate to {cut}")).await;
        }
        let mut longer = orig.clone();
        longer.extend_from_slice(&orig[96..96 + 65_552]);
        set_raw(&f, "a", longer).await;
        assert_detected(&f, "a", "extended by a copied segment").await;
    }
}

#[tokio::test]
async fn reordered_segments_are_detected() {
    for f in fixtures().await {
        let orig = raw_bytes(&f, "a").await;
        let s = 65_552;
        let mut b = orig[..96].to_vec();
        b.extend_from_slice(&orig[96 + s..96 + 2 * s]);
        b.extend_from_slice(&orig[96..96 + s]);
        b.extend_from_slice(&orig[96 + 2 * s..]);
        set_raw(&f, "a", b).await;
        assert_detected(&f, "a", "segments 0 and 1 swapped").await;
    }
}

#[tokio::test]
async fn swapped_objects_are_detected() {
    for f in fixtures().await {
        let a = raw_bytes(&f, "a").await;
        let b = raw_bytes(&f, "b").await;
        set_raw(&f, "a", b).await;
        set_raw(&f, "b", a).await;
        assert_detected(&f, "a", "object b stored at a").await;
        assert_detected(&f, "b", "object a stored at b").await;
    }
}

#[tokio::test]
async fn replaced_header_is_detected() {
    for f in fixtures().await {
        let a = raw_bytes(&f, "a").await;
        let b = raw_bytes(&f, "b").await;
        // b's header on a's body: the key does not unwrap for this path.
        let mut x = b[..96].to_vec();
        x.extend_from_slice(&a[96..]);
        set_raw(&f, "a", x).await;
        assert_detected(&f, "a", "header of b on body of a").await;
        // A header re-encrypted for this very path, but with a different data key.
        let g = fixture().await;
        let fresh = raw_bytes(&g, "a").await;
        let mut y = a[..96].to_vec();
        y.extend_from_slice(&fresh[96..]);
        set_raw(&f, "a", y).await;
        assert_detected(&f, "a", "body encrypted under another key").await;
    }
}

#[tokio::test]
async fn other_keys_cannot_read() {
    for f in fixtures().await {
        let stranger = EncryptedStore::new(f.raw.clone(), StorageKeys::ephemeral());
        let read = match stranger.get(&Path::from("small")).await {
            Ok(r) => r.bytes().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let err = read.expect_err("other master key");
        assert!(integrity_error(&err).is_some(), "{err}");
    }
}

#[tokio::test]
async fn plaintext_objects_are_refused() {
    for f in fixtures().await {
        set_raw(&f, "plain", b"just some plaintext that is long enough to have a header......................................................".to_vec()).await;
        assert_detected(&f, "plain", "plaintext object").await;
    }
}

/// Objects large enough for the file-specific read paths: several chunks decrypted on
/// several threads (9 MiB), and streamed in chunks (70 MiB). A flipped byte late in the
/// object, a truncation and an extension are named by full reads and by range reads.
#[tokio::test]
async fn large_local_objects_are_checked_on_every_read_path() {
    let f = file_fixture().await;
    for (name, len) in [("nine", 9usize << 20), ("seventy", 70 << 20)] {
        let data = pattern(len, 7);
        f.enc
            .put(&Path::from(name), PutPayload::from(data.clone()))
            .await
            .expect("put");
        let got = f.enc.get(&Path::from(name)).await.expect("get");
        assert!(got.bytes().await.expect("bytes").as_ref() == data.as_slice());
        let ranges = [
            0..10,
            (len as u64 / 2)..(len as u64 / 2 + len as u64 / 4),
            (len as u64 - 3)..(len as u64),
        ];
        let parts = f
            .enc
            .get_ranges(&Path::from(name), &ranges)
            .await
            .expect("ranges");
        for (r, part) in ranges.iter().zip(&parts) {
            assert!(
                part.as_ref() == &data[r.start as usize..r.end as usize],
                "{name} {r:?}"
            );
        }
        let orig = raw_bytes(&f, name).await;
        let mut flipped = orig.clone();
        let at = orig.len() - 100_000;
        flipped[at] ^= 0x10;
        set_raw(&f, name, flipped).await;
        assert_detected(&f, name, &format!("{name}: flip at {at}")).await;
        let err = f
            .enc
            .get_ranges(
                &Path::from(name),
                &[0..10, (len as u64 - 90_000)..(len as u64 - 80_000)],
            )
            .await
            .expect_err("a range over the flipped segment fails");
        assert!(integrity_error(&err).is_some(), "{err}");
        set_raw(&f, name, orig[..orig.len() - 70_000].to_vec()).await;
        assert_detected(&f, name, &format!("{name}: truncated")).await;
        let mut longer = orig.clone();
        longer.extend_from_slice(&[0u8; 16]);
        set_raw(&f, name, longer).await;
        assert_detected(&f, name, &format!("{name}: extended")).await;
    }
}
