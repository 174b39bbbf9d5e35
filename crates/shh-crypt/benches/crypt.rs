//! Encryption benchmark, printed as figures and ratios measured in the same run:
//! - encrypt and decrypt throughput on one core (the segment state machines, no I/O);
//! - full-object read through `EncryptedStore` over file:// against the same store unwrapped.
//!
//! Run: `cargo bench -p shh-crypt --bench crypt` (SHH_BENCH_MIB sets the object size; the
//! default, 32 MiB, stays clear of the page reclaim that makes larger buffers on the project's
//! VMs measure the hypervisor instead of the code).

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

/// A whole-object read as Parquet readers and exports do it: `get` then collect.
/// (Streaming a `LocalFileSystem` payload chunk by chunk reads 8 KiB at a time, which would
/// measure that chunk size rather than the encryption.)
async fn read_all(store: &dyn ObjectStore, p: &Path) -> usize {
    store
        .get(p)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .len()
}

/// Reads the object as 1 MiB ranges, the access pattern of a Parquet column-chunk reader.
async fn read_ranges(store: &dyn ObjectStore, p: &Path, size: usize) -> usize {
    let step = 1usize << 20;
    let ranges: Vec<_> = (0..size)
        .step_by(step)
        .map(|s| s as u64..(s + step).min(size) as u64)
        .collect();
    let parts = store.get_ranges(p, &ranges).await.expect("ranges");
    parts.iter().map(|b| b.len()).sum()
}

fn main() {
    let mib: usize = std::env::var("SHH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
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

    // 1. Encrypt / decrypt on one core, no I/O: as reads and plain writes do it, and as
    //    dataset writes do it (also hashing plaintext and ciphertext with BLAKE3 for the manifest).
    let mut stored = Vec::with_capacity(size + size / 1000 + 4096);
    let mut enc_t = Vec::new();
    let mut enc_digest_t = Vec::new();
    for _ in 0..runs {
        for digests in [false, true] {
            stored.clear();
            let key =
                ObjectKey::generate(keys.as_ref(), "bench/object", DEFAULT_SEGMENT).expect("key");
            let t = Instant::now();
            let mut e = if digests {
                SegmentEncryptor::with_digests(key)
            } else {
                SegmentEncryptor::new(key)
            };
            for chunk in data.chunks(1 << 20) {
                e.push(chunk, &mut stored).expect("push");
            }
            e.finish(&mut stored).expect("finish");
            if digests {
                &mut enc_digest_t
            } else {
                &mut enc_t
            }
            .push(t.elapsed());
        }
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
    let enc_digest = gbps(size, median(enc_digest_t));
    let dec = gbps(size, median(dec_t));
    println!("encrypt, one core:            {enc:6.2} GB/s");
    println!("encrypt + both BLAKE3 digests: {enc_digest:5.2} GB/s (dataset writes)");
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
    let (plain_t, enc_read_t, plain_r, enc_r) = rt.block_on(async {
        let pp = Path::from("plain.bin");
        let ep = Path::from("enc.bin");
        fs.put(&pp, PutPayload::from(data.clone()))
            .await
            .expect("put plain");
        enc_store
            .put(&ep, PutPayload::from(data.clone()))
            .await
            .expect("put enc");
        let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            assert_eq!(read_all(fs.as_ref(), &pp).await, size);
            a.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(read_all(&enc_store, &ep).await, size);
            b.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(read_ranges(fs.as_ref(), &pp, size).await, size);
            c.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(read_ranges(&enc_store, &ep, size).await, size);
            d.push(t.elapsed());
        }
        (median(a), median(b), median(c), median(d))
    });
    let plain = gbps(size, plain_t);
    let encr = gbps(size, enc_read_t);
    println!("file:// whole read, unwrapped:      {plain:6.2} GB/s");
    println!("file:// whole read, EncryptedStore: {encr:6.2} GB/s");
    overhead("whole-object read", enc_read_t, plain_t);
    println!(
        "file:// 1 MiB ranges, unwrapped:      {:6.2} GB/s",
        gbps(size, plain_r)
    );
    println!(
        "file:// 1 MiB ranges, EncryptedStore: {:6.2} GB/s",
        gbps(size, enc_r)
    );
    overhead("1 MiB range reads", enc_r, plain_r);
}

fn overhead(what: &str, wrapped: Duration, plain: Duration) {
    let ratio = wrapped.as_secs_f64() / plain.as_secs_f64();
    println!(
        "{what}: EncryptedStore overhead {:+.1}% (time ratio {ratio:.2})",
        (ratio - 1.0) * 100.0
    );
}
