//! Encryption benchmark, printed as figures and ratios measured in the same run:
//! - encrypt and decrypt throughput on one core (the segment state machines, no I/O);
//! - full-object read through `EncryptedStore` over file:// against the same store unwrapped.
//!
//! Run: `cargo bench -p shh-crypt --bench crypt` (SHH_BENCH_MIB sets the object size).

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use shh_crypt::format::DEFAULT_SEGMENT;
use shh_crypt::{EncryptedStore, ObjectKey, SegmentDecryptor, SegmentEncryptor};
use shh_keys::StorageKeys;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

async fn read_all(store: &dyn ObjectStore, p: &Path) -> usize {
    let mut n = 0;
    let mut s = store.get(p).await.expect("get").into_stream();
    while let Some(c) = s.try_next().await.expect("chunk") {
        n += c.len();
    }
    n
}

fn main() {
    let mib: usize = std::env::var("SHH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let size = mib << 20;
    let runs = 7;
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes()[7])
        .collect();
    let keys = StorageKeys::ephemeral();
    println!(
        "object size {mib} MiB, segment {} KiB, median of {runs} runs",
        DEFAULT_SEGMENT / 1024
    );

    // 1. Encrypt / decrypt on one core, no I/O.
    let mut stored = Vec::with_capacity(size + size / 1000 + 4096);
    let mut enc_t = Vec::new();
    for _ in 0..runs {
        stored.clear();
        let key = ObjectKey::generate(keys.as_ref(), "bench/object", DEFAULT_SEGMENT).expect("key");
        let t = Instant::now();
        let mut e = SegmentEncryptor::new(key);
        for chunk in data.chunks(1 << 20) {
            e.push(chunk, &mut stored).expect("push");
        }
        e.finish(&mut stored).expect("finish");
        enc_t.push(t.elapsed());
    }
    let mut dec_t = Vec::new();
    let mut out = Vec::with_capacity(2 << 20);
    for _ in 0..runs {
        let t = Instant::now();
        let mut d = SegmentDecryptor::new(keys.clone(), "bench/object", stored.len() as u64);
        for chunk in stored.chunks(1 << 20) {
            out.clear();
            d.push(chunk, &mut out).expect("push");
        }
        d.finish().expect("finish");
        dec_t.push(t.elapsed());
    }
    let enc = gbps(size, median(enc_t));
    let dec = gbps(size, median(dec_t));
    println!("encrypt, one core:            {enc:6.2} GB/s");
    println!("decrypt, one core:            {dec:6.2} GB/s");

    // 2. Full reads through object_store on file:// (warm page cache), both in this run.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let fs: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs"));
    let enc_store = EncryptedStore::new(fs.clone(), keys.clone());
    let (plain_t, enc_read_t) = rt.block_on(async {
        let pp = Path::from("plain.bin");
        let ep = Path::from("enc.bin");
        fs.put(&pp, PutPayload::from(data.clone()))
            .await
            .expect("put plain");
        enc_store
            .put(&ep, PutPayload::from(data.clone()))
            .await
            .expect("put enc");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            assert_eq!(read_all(fs.as_ref(), &pp).await, size);
            a.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(read_all(&enc_store, &ep).await, size);
            b.push(t.elapsed());
        }
        (median(a), median(b))
    });
    let plain = gbps(size, plain_t);
    let encr = gbps(size, enc_read_t);
    println!("file:// read, unwrapped:      {plain:6.2} GB/s");
    println!("file:// read, EncryptedStore: {encr:6.2} GB/s");
    println!(
        "read overhead of EncryptedStore: {:+.1}% (time ratio {:.2})",
        (enc_read_t.as_secs_f64() / plain_t.as_secs_f64() - 1.0) * 100.0,
        enc_read_t.as_secs_f64() / plain_t.as_secs_f64()
    );
}
