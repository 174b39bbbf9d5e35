//! Audit log benchmark, in one run on file:// (fsync'd, encrypted, as a hub stores it):
//! - durable appends per second with group commit (many concurrent appenders, as a server
//!   has), against the same events appended one at a time (one segment each) as a peer;
//! - verification rate of the stored log and of a plaintext export.
//!
//! Run: `cargo bench -p shh-audit --bench audit` (SHH_BENCH_EVENTS sets the count).

use shh_audit::{Actor, AuditLog, Draft, Signer, verify_export};
use shh_crypt::EncryptedStore;
use shh_keys::StorageKeys;
use std::sync::Arc;
use std::time::Instant;

fn draft(i: u64) -> Draft {
    Draft::new("dataset.query")
        .dataset("claims@0123456789ab")
        .project("p-2026-017")
        .permit("permit-42")
        .detail("query_sha256", format!("{:064x}", i))
        .detail("rows_out", i % 1000)
        .detail("bytes_out", i * 17 % 100_000)
}

fn main() {
    let n: u64 = std::env::var("SHH_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let writers: u64 = 1024;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = shh_store::StoreUrl::parse(&format!("file://{}", dir.path().display())).expect("url");
    let raw =
        shh_store::open_store(&url, &shh_store::ResidencyPolicy::local_only()).expect("store");
    let store: Arc<dyn object_store::ObjectStore> =
        Arc::new(EncryptedStore::new(raw, StorageKeys::ephemeral()));
    let actor = Actor::new("researcher-1", "researcher");
    rt.block_on(async {
        let log = Arc::new(
            AuditLog::open(
                store.clone(),
                "bench-hub",
                Signer::from_seed(&[3; 32]).expect("key"),
            )
            .await
            .expect("open"),
        );
        // Peer: one durable append at a time (what a naive write-ahead log does).
        let single = 500u64;
        let t = Instant::now();
        for i in 0..single {
            log.append(&actor, draft(i)).await.expect("append");
        }
        let one_by_one = single as f64 / t.elapsed().as_secs_f64();

        let t = Instant::now();
        let per = n / writers;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let log = log.clone();
            let actor = actor.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    log.append(&actor, draft(w * per + i))
                        .await
                        .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let grouped = (per * writers) as f64 / t.elapsed().as_secs_f64();
        let total = log.size().await;
        println!(
            "events: {total} ({writers} concurrent appenders), store: file:// fsync'd, encrypted"
        );
        println!("durable appends, group commit:   {grouped:>10.0} /s");
        println!("durable appends, one at a time:  {one_by_one:>10.0} /s");
        println!(
            "group commit speed-up:           {:>10.1}x",
            grouped / one_by_one
        );

        let t = Instant::now();
        let report = log.verify(Vec::new()).await.expect("verify");
        let stored = report.events as f64 / t.elapsed().as_secs_f64();
        assert!(report.ok, "{report:?}");
        // The one-at-a-time phase signed one head per event; the rest are group commits.
        println!(
            "signed heads: {} (group commits: mean batch {:.0} events)",
            report.heads,
            (report.events - single) as f64 / report.heads.saturating_sub(single).max(1) as f64
        );
        println!("verify stored log (decrypt+hash+signatures): {stored:>10.0} events/s");

        let out = dir.path().join("export");
        log.export(&shh_sink::DirSink::new(dir.path()), "export")
            .await
            .expect("export");
        let t = Instant::now();
        let report = verify_export(&out, &[log.public_key()], Vec::new()).expect("verify export");
        let exported = report.events as f64 / t.elapsed().as_secs_f64();
        assert!(report.ok, "{report:?}");
        println!("verify export (parse+hash+signatures)     :  {exported:>10.0} events/s");
    });
}
