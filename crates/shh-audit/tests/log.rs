//! The audit log as a hub uses it: encrypted store, group commit, crash recovery, concurrent
//! writers, and every kind of tampering an auditor must catch, in the store and in an export.

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use shh_audit::{
    Actor, AuditLog, Draft, SignedTreeHead, Signer, VerifyReport, merkle, verify_export,
};
use shh_crypt::EncryptedStore;
use shh_keys::StorageKeys;
use std::sync::Arc;

struct Hub {
    raw: Arc<dyn ObjectStore>,
    store: Arc<dyn ObjectStore>,
}

fn hub() -> Hub {
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Arc::new(EncryptedStore::new(raw.clone(), StorageKeys::ephemeral()));
    Hub { raw, store }
}

fn signer() -> Signer {
    Signer::from_seed(&[42; 32]).expect("key")
}

async fn open(h: &Hub) -> AuditLog {
    AuditLog::open(h.store.clone(), "hub-1", signer())
        .await
        .expect("open")
}

fn alice() -> Actor {
    Actor::new("alice", "operator")
}

async fn append_n(log: &AuditLog, from: u64, n: u64) {
    for i in from..from + n {
        let seq = log
            .append(&alice(), Draft::new("dataset.export").detail("i", i))
            .await
            .expect("append");
        assert_eq!(seq, i);
    }
}

async fn raw_paths(h: &Hub, prefix: &str) -> Vec<Path> {
    use futures::TryStreamExt;
    let mut v: Vec<Path> = h
        .raw
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .expect("list");
    v.sort();
    v
}

fn bad(r: &VerifyReport) -> Option<u64> {
    assert_eq!(r.ok, r.first_bad_seq.is_none(), "{r:?}");
    r.first_bad_seq
}

#[tokio::test]
async fn appends_survive_reopen_and_verify() {
    let h = hub();
    let log = open(&h).await;
    append_n(&log, 0, 10).await;
    drop(log);
    let log = open(&h).await;
    assert_eq!(log.size().await, 10);
    append_n(&log, 10, 5).await;
    let r = log.verify(Vec::new()).await.expect("verify");
    assert!(r.ok, "{r:?}");
    assert_eq!((r.events, r.heads, r.unsigned_tail), (15, 15, 0));
    let mut seen = Vec::new();
    log.for_each_event(|e| seen.push((e.seq, e.actor, e.action)))
        .await
        .expect("events");
    assert_eq!(seen.len(), 15);
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, e)| e.0 == i as u64 && e.1 == "alice")
    );
}

#[tokio::test]
async fn concurrent_appends_are_grouped_without_gaps() {
    let h = hub();
    let log = Arc::new(open(&h).await);
    let mut tasks = Vec::new();
    for w in 0..50u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..20u64 {
                let d = Draft::new("dataset.query").detail("w", w).detail("i", i);
                mine.push(log.append(&alice(), d).await.expect("append"));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<u64>>());
    let segments = raw_paths(&h, "audit/log").await.len();
    assert!(
        segments < 1000,
        "group commit wrote {segments} segments for 1000 events"
    );
    let r = log.verify(Vec::new()).await.expect("verify");
    assert!(r.ok && r.events == 1000, "{r:?}");
    // Heads of busy batches are stored alongside the next segment; once the burst is over,
    // every batch has its signed head and nothing is left unsigned.
    let heads = raw_paths(&h, "audit/heads").await.len();
    assert_eq!(heads, segments, "one signed head per batch");
    assert_eq!(r.heads as usize, segments, "{r:?}");
    assert_eq!(r.unsigned_tail, 0, "{r:?}");
}

#[tokio::test]
async fn two_writers_on_one_store_race_without_losing_or_duplicating() {
    let h = hub();
    let a = Arc::new(open(&h).await);
    let b = Arc::new(open(&h).await);
    let mut tasks = Vec::new();
    for (k, log) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                let d = Draft::new("x").detail("k", k as u64).detail("i", i);
                log.append(&alice(), d).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let fresh = open(&h).await;
    assert_eq!(fresh.size().await, 100);
    let r = fresh.verify(Vec::new()).await.expect("verify");
    assert!(r.ok, "{r:?}");
}

#[tokio::test]
async fn a_crash_between_segment_and_head_is_signed_on_reopen() {
    let h = hub();
    let log = open(&h).await;
    append_n(&log, 0, 4).await;
    drop(log);
    // The crash: the last batch's segment is stored, its head is not.
    let heads = raw_paths(&h, "audit/heads").await;
    h.raw
        .delete(heads.last().expect("head"))
        .await
        .expect("delete");
    let log = open(&h).await;
    assert_eq!(log.size().await, 4);
    let r = log.verify(Vec::new()).await.expect("verify");
    assert!(r.ok && r.unsigned_tail == 0, "{r:?}");
    append_n(&log, 4, 1).await;
}

#[tokio::test]
async fn stored_tampering_names_the_first_bad_event() {
    // Flip one byte of the segment holding event 3.
    let h = hub();
    append_n(&open(&h).await, 0, 6).await;
    let segs = raw_paths(&h, "audit/log").await;
    let p = &segs[3];
    let mut b = h
        .raw
        .get(p)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("b")
        .to_vec();
    let last = b.len() - 5;
    b[last] ^= 1;
    h.raw.put(p, PutPayload::from(b)).await.expect("put");
    let r = open_for_verify(&h).await;
    assert_eq!(bad(&r), Some(3), "{r:?}");
    assert!(
        r.problem
            .as_deref()
            .unwrap_or("")
            .contains("00000000000000000003")
    );

    // Delete the segment of event 2.
    let h = hub();
    append_n(&open(&h).await, 0, 6).await;
    let segs = raw_paths(&h, "audit/log").await;
    h.raw.delete(&segs[2]).await.expect("delete");
    assert_eq!(bad(&open_for_verify(&h).await), Some(2));

    // Swap two segments (their ciphertext is bound to their names).
    let h = hub();
    append_n(&open(&h).await, 0, 6).await;
    let segs = raw_paths(&h, "audit/log").await;
    swap(&h, &segs[1], &segs[4]).await;
    assert_eq!(bad(&open_for_verify(&h).await), Some(1));

    // Swap two signed heads.
    let h = hub();
    append_n(&open(&h).await, 0, 6).await;
    let heads = raw_paths(&h, "audit/heads").await;
    swap(&h, &heads[2], &heads[3]).await;
    let r = open_for_verify(&h).await;
    assert_eq!(bad(&r), Some(2), "{r:?}");
}

/// Verifies without recovering (opening would re-sign): the writer is not involved.
async fn open_for_verify(h: &Hub) -> VerifyReport {
    // A reader needs the writer's key only for its public half; heads are checked, not written.
    let log = match AuditLog::open(h.store.clone(), "hub-1", signer()).await {
        Ok(l) => l,
        Err(e) => {
            // Damage in the tail is what opening for append refuses; report it like verify.
            return VerifyReport {
                ok: false,
                events: 0,
                heads: 0,
                last_head: None,
                unsigned_tail: 0,
                first_bad_seq: match &e {
                    shh_audit::AuditError::Corrupt { seq, .. } => Some(*seq),
                    _ => Some(u64::MAX),
                },
                problem: Some(e.to_string()),
                decisions: 0,
                deciders: Vec::new(),
            };
        }
    };
    log.verify(Vec::new()).await.expect("verify")
}

async fn swap(h: &Hub, a: &Path, b: &Path) {
    let x = h.raw.get(a).await.expect("a").bytes().await.expect("a");
    let y = h.raw.get(b).await.expect("b").bytes().await.expect("b");
    h.raw.put(a, PutPayload::from(y)).await.expect("put");
    h.raw.put(b, PutPayload::from(x)).await.expect("put");
}

async fn exported(n: u64) -> (tempfile::TempDir, std::path::PathBuf, AuditLog) {
    let h = hub();
    let log = open(&h).await;
    append_n(&log, 0, n).await;
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("export");
    let s = log
        .export(&shh_sink::DirSink::new(dir.path()), "export")
        .await
        .expect("export");
    assert_eq!(s.out, out.display().to_string());
    assert_eq!((s.events, s.heads), (n, n));
    (dir, out, log)
}

fn edit(out: &std::path::Path, file: &str, f: impl FnOnce(&mut Vec<String>)) {
    let p = out.join(file);
    let mut lines: Vec<String> = std::fs::read_to_string(&p)
        .expect("read")
        .lines()
        .map(String::from)
        .collect();
    f(&mut lines);
    std::fs::write(&p, lines.join("\n") + "\n").expect("write");
}

fn check(out: &std::path::Path, log: &AuditLog) -> VerifyReport {
    verify_export(out, &[log.public_key()], Vec::new()).expect("verify")
}

#[tokio::test]
async fn export_verifies_offline_and_catches_every_tampering() {
    let (_d, out, log) = exported(8).await;
    let r = check(&out, &log);
    assert!(r.ok && r.events == 8 && r.heads == 8, "{r:?}");

    // A key that is not the hub's.
    let other = Signer::from_seed(&[1; 32]).expect("key").public();
    assert!(!verify_export(&out, &[other], Vec::new()).expect("v").ok);

    type Edit = Box<dyn Fn(&mut Vec<String>)>;
    let cases: Vec<(&str, Edit, &str, u64)> = vec![
        (
            "change",
            Box::new(|l| l[5] = l[5].replace("\"i\":5", "\"i\":6")),
            "events",
            5,
        ),
        (
            "delete",
            Box::new(|l| {
                l.remove(4);
            }),
            "events",
            4,
        ),
        ("reorder", Box::new(|l| l.swap(2, 3)), "events", 2),
        (
            "insert",
            Box::new(|l| {
                let dup = l[6].clone();
                l.insert(6, dup);
            }),
            "events",
            7,
        ),
        (
            "truncate",
            Box::new(|l| {
                l.pop();
            }),
            "events",
            7,
        ),
        (
            "non-canonical",
            Box::new(|l| l[1] = l[1].replacen('{', "{ ", 1)),
            "events",
            1,
        ),
        ("swap heads", Box::new(|l| l.swap(3, 4)), "heads", 5),
        (
            "forge a head",
            Box::new(|l| l[6] = l[6].replace("\"size\":7", "\"size\":70")),
            "heads",
            6,
        ),
    ];
    for (what, f, file, want) in cases {
        let (_d, out, log) = exported(8).await;
        edit(&out, &format!("{file}.ndjson"), f);
        let r = check(&out, &log);
        assert_eq!(bad(&r), Some(want), "{what}: {r:?}");
    }
}

#[tokio::test]
async fn a_rewritten_history_contradicts_a_head_the_auditor_kept() {
    let (_d, out, log) = exported(5).await;
    let kept: SignedTreeHead = log.latest_head().await.expect("head").expect("some");
    // The operator (who holds the key) rebuilds the log with event 2 changed, signs it anew.
    let h = hub();
    let forged = open(&h).await;
    for i in 0..5u64 {
        let v = if i == 2 { 99 } else { i };
        forged
            .append(&alice(), Draft::new("dataset.export").detail("i", v))
            .await
            .expect("append");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let fout = dir.path().join("forged");
    forged
        .export(&shh_sink::DirSink::new(dir.path()), "forged")
        .await
        .expect("export");
    assert!(check(&fout, &forged).ok, "self-consistent on its own");
    let r = verify_export(&fout, &[forged.public_key()], vec![kept.clone()]).expect("v");
    assert!(!r.ok, "{r:?}");
    assert!(
        r.problem.as_deref().unwrap_or("").contains("rewritten"),
        "{r:?}"
    );
    // The honest export agrees with the kept head.
    assert!(
        verify_export(&out, &[log.public_key()], vec![kept])
            .expect("v")
            .ok
    );
}

#[tokio::test]
async fn inclusion_proofs_check_with_the_rfc_9162_algorithm() {
    let h = hub();
    let log = open(&h).await;
    append_n(&log, 0, 13).await;
    for seq in [0u64, 6, 12] {
        let p = log.inclusion_proof(seq, None).await.expect("proof");
        let leaf = merkle::leaf_hash(p.event.as_bytes());
        assert_eq!(hex::encode(leaf), p.leaf_hash);
        let path: Vec<merkle::Hash> = p
            .audit_path
            .iter()
            .map(|h| hex::decode(h).expect("hex").try_into().expect("32"))
            .collect();
        let root = p.head.verify(&[log.public_key()]).expect("signed");
        assert!(merkle::verify_inclusion(
            seq,
            p.tree_size,
            &leaf,
            &path,
            &root
        ));
        assert!(!merkle::verify_inclusion(
            (seq + 1) % 13,
            p.tree_size,
            &leaf,
            &path,
            &root
        ));
    }
    let older = log.inclusion_proof(2, Some(5)).await.expect("older head");
    assert_eq!(older.tree_size, 5);
    assert!(log.inclusion_proof(13, None).await.is_err());
}

fn statement(by: &str) -> String {
    format!(
        r#"{{"kind":"permit.grant","hub":"hub-1","by":"{by}","decision":{{"permit":"pmt-1"}}}}"#
    )
}

fn decision(key: &Signer, text: &str) -> Draft {
    Draft::new("permit.grant")
        .detail("statement", text)
        .detail(
            "signature",
            key.sign_document(shh_audit::DECISION_DOMAIN, text.as_bytes()),
        )
        .detail("public_key", hex::encode(key.public().bytes()))
}

/// A log where cora enrolled `key` and signed one grant with it, then `tail`; verified.
async fn with_decisions(key: &Signer, tail: Vec<(Actor, Draft)>) -> VerifyReport {
    let h = hub();
    let log = open(&h).await;
    let enroll = Draft::new("user.enroll")
        .detail("user", "cora")
        .detail("public_key", hex::encode(key.public().bytes()));
    log.append(&alice(), enroll).await.expect("enroll");
    let cora = Actor::new("cora", "committee");
    log.append(&cora, decision(key, &statement("cora")))
        .await
        .expect("grant");
    for (a, d) in tail {
        log.append(&a, d).await.expect("append");
    }
    log.verify(Vec::new()).await.expect("verify")
}

/// A decision is trusted only if it verifies under the key its decider enrolled before it:
/// a decision signed by another key (a hub recording a forged approval), one whose
/// statement names another decider, one by a user who never enrolled, and a signature over
/// other bytes are each named.
#[tokio::test]
async fn signed_decisions_verify_under_the_key_their_decider_enrolled() {
    let cora_key = Signer::from_seed(&[7; 32]).expect("key");
    let other_key = Signer::from_seed(&[8; 32]).expect("key");
    let cora = || Actor::new("cora", "committee");
    let good = with_decisions(&cora_key, vec![]).await;
    assert!(good.ok, "{good:?}");
    assert_eq!(
        (good.decisions, good.deciders.clone()),
        (1, vec!["cora".to_owned()])
    );

    let forged = with_decisions(
        &cora_key,
        vec![(cora(), decision(&other_key, &statement("cora")))],
    )
    .await;
    assert_eq!(bad(&forged), Some(2), "{forged:?}");
    assert!(
        forged
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("had not enrolled"))
    );
    let impostor = with_decisions(
        &cora_key,
        vec![(cora(), decision(&cora_key, &statement("rob")))],
    )
    .await;
    assert_eq!(bad(&impostor), Some(2), "{impostor:?}");
    let never = with_decisions(
        &cora_key,
        vec![(
            Actor::new("eve", "committee"),
            decision(&other_key, &statement("eve")),
        )],
    )
    .await;
    assert_eq!(bad(&never), Some(2), "{never:?}");
    let swapped = decision(&cora_key, &statement("cora"))
        .detail("statement", statement("cora").replace("pmt-1", "pmt-2"));
    let swapped = with_decisions(&cora_key, vec![(cora(), swapped)]).await;
    assert!(
        swapped
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("does not verify")),
        "{swapped:?}"
    );
}
