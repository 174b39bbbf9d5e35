//! Property tests: any plaintext size and any range round-trip, through put and multipart.

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proptest::prelude::*;
use shh_crypt::EncryptedStore;
use shh_crypt::format::DEFAULT_SEGMENT;
use shh_keys::StorageKeys;
use shh_store::conformance::pattern;

const SEG: usize = DEFAULT_SEGMENT as usize;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(SEG - 1),
        Just(SEG),
        Just(SEG + 1),
        Just(3 * SEG),
        0usize..4 * SEG,
        (4 * SEG)..(6 << 20),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn put_get_and_ranges_round_trip(len in sizes(), seed in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
        rt().block_on(async {
            let store = EncryptedStore::new(InMemory::new(), StorageKeys::ephemeral());
            let data = pattern(len, seed);
            let p = Path::from("x");
            store.put(&p, PutPayload::from(data.clone())).await.expect("put");
            let got = store.get(&p).await.expect("get").bytes().await.expect("bytes");
            prop_assert_eq!(got.as_ref(), data.as_slice());
            let inner_len = store.inner().head(&p).await.expect("head").size;
            prop_assert_eq!(inner_len, shh_crypt::Layout { segment: SEG as u64 }.stored_len(len as u64));
            if len > 0 {
                let (s, e) = ((a % len as u64), (b % len as u64));
                let (s, e) = (s.min(e), s.max(e) + 1);
                let r = store.get_range(&p, s..e).await.expect("range");
                prop_assert_eq!(r.as_ref(), &data[s as usize..e as usize]);
            }
            Ok(())
        })?;
    }

    #[test]
    fn streaming_writer_matches_one_shot(len in sizes(), seed in any::<u64>(), piece in 1usize..200_000) {
        rt().block_on(async {
            let store = EncryptedStore::new(InMemory::new(), StorageKeys::ephemeral());
            let data = pattern(len, seed);
            let p = Path::from("w");
            let mut w = store.writer(&p).expect("writer");
            for chunk in data.chunks(piece) {
                w.write(chunk).await.expect("write");
            }
            let digest = w.finish().await.expect("finish");
            prop_assert_eq!(digest.plain_len, len as u64);
            prop_assert_eq!(digest.plain_blake3, *blake3::hash(&data).as_bytes());
            let raw = store.inner().get(&p).await.expect("raw").bytes().await.expect("raw bytes");
            prop_assert_eq!(digest.stored_blake3, *blake3::hash(&raw).as_bytes());
            prop_assert_eq!(store.read_digest(&p).await.expect("verify"), digest);
            let got = store.get(&p).await.expect("get").bytes().await.expect("bytes");
            prop_assert_eq!(got.as_ref(), data.as_slice());
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Local disk has its own whole-read and range paths: any size, any set of ranges
    /// (overlapping, adjacent, far apart, in any order) reads back exactly.
    #[test]
    fn local_whole_reads_and_range_sets_round_trip(
        len in prop_oneof![0usize..4 * SEG, (4 * SEG)..(12 << 20)],
        seed in any::<u64>(),
        cuts in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..12),
    ) {
        rt().block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
            let store = EncryptedStore::new(fs, StorageKeys::ephemeral());
            let data = pattern(len, seed);
            let p = Path::from("f");
            store.put(&p, PutPayload::from(data.clone())).await.expect("put");
            let got = store.get(&p).await.expect("get").bytes().await.expect("bytes");
            prop_assert_eq!(got.as_ref(), data.as_slice());
            if len > 0 {
                let ranges: Vec<_> = cuts
                    .iter()
                    .map(|(a, b)| {
                        let (s, e) = (a % len as u64, b % len as u64);
                        s.min(e)..s.max(e) + 1
                    })
                    .collect();
                let parts = store.get_ranges(&p, &ranges).await.expect("ranges");
                prop_assert_eq!(parts.len(), ranges.len());
                for (r, part) in ranges.iter().zip(&parts) {
                    prop_assert_eq!(part.as_ref(), &data[r.start as usize..r.end as usize]);
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn many_megabytes_round_trip_through_multipart() {
    rt().block_on(async {
        let store = EncryptedStore::new(InMemory::new(), StorageKeys::ephemeral());
        let data = pattern(40 << 20, 42);
        let p = Path::from("big");
        let mut w = store.writer(&p).expect("writer");
        for chunk in data.chunks(3 << 20) {
            w.write(chunk).await.expect("write");
        }
        w.finish().await.expect("finish");
        let got = store
            .get(&p)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert!(got.as_ref() == data.as_slice());
        let r = store
            .get_range(&p, (20 << 20) - 7..(20 << 20) + 70_000)
            .await
            .expect("range");
        assert!(r.as_ref() == &data[(20 << 20) - 7..(20 << 20) + 70_000]);
    });
}
