//! Cancelling a long operation through its `Task`: it stops at its next check with the
//! `cancelled` kind, leaves nothing half-done, and the same request run again completes.

mod common;

use common::Fixture;
use shh_hub::migrate::{RunRequest, VerifyRequest};
use shh_hub::{ErrorKind, ProgressSink, Task};
use std::sync::{Arc, OnceLock};

/// Cancels its task at the first progress report: the operation is surely under way.
#[derive(Default)]
struct CancelAtFirst(OnceLock<Task>);

impl ProgressSink for CancelAtFirst {
    fn advance(&self, _: u64) {
        if let Some(t) = self.0.get() {
            t.cancel();
        }
    }
}

fn cancelling() -> Task {
    let sink = Arc::new(CancelAtFirst::default());
    let task = Task::new(sink.clone());
    let _ = sink.0.set(task.clone());
    task
}

#[tokio::test]
async fn a_cancelled_ingest_publishes_nothing_and_the_rerun_completes() {
    let f = Fixture::new().await;
    let s = &f.operator;
    let req = f.ingest_request(20_000, "ER_PRS_F");
    let e = f
        .hub
        .ingest(s, &cancelling(), &req)
        .await
        .expect_err("cancelled");
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(f.hub.datasets(s).await.expect("list").is_empty());
    let left: Vec<_> = f
        .hub
        .raw_objects(s)
        .await
        .expect("ls")
        .into_iter()
        .filter(|(p, _)| p.starts_with("datasets/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let r = f.hub.ingest(s, &Task::silent(), &req).await.expect("rerun");
    assert!(r.stats.rows_written > 100_000, "{}", r.stats.rows_written);
}

#[tokio::test]
async fn a_cancelled_migration_keeps_its_journal_and_the_rerun_completes() {
    let f = Fixture::new().await;
    let s = &f.operator;
    for t in ["IR_BEN_R", "ER_PHA_F"] {
        let req = f.ingest_request(2_000, t);
        f.hub
            .ingest(s, &Task::silent(), &req)
            .await
            .expect("ingest");
    }
    let to = format!("file://{}", f.tmp.path().join("other").display());
    let run = || RunRequest {
        to: Some(to.clone()),
        options: shh_hub::migrate::Options {
            transfers: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = f
        .hub
        .migrate_run(s, &cancelling(), run(), |_| {})
        .await
        .expect_err("cancelled");
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");

    let r = f
        .hub
        .migrate_run(s, &Task::silent(), run(), |_| {})
        .await
        .expect("rerun");
    assert!(r.stats.failures.is_empty(), "{:?}", r.stats.failures);
    assert!(
        r.journal_done_before >= 1,
        "resumed from the journal: {r:?}"
    );
    let sink = shh_hub::MemorySink::new();
    let verify = VerifyRequest {
        to: Some(to.clone()),
        deep: true,
        concurrency: 4,
        report: "report".into(),
    };
    // A verification cancelled before its report is signed leaves no report behind.
    let e = f
        .hub
        .migrate_verify(s, &cancelling(), &verify, &sink)
        .await
        .expect_err("cancelled");
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(sink.names().is_empty(), "{:?}", sink.names());
    let v = f
        .hub
        .migrate_verify(s, &Task::silent(), &verify, &sink)
        .await
        .expect("verify");
    assert_eq!(v.summary.failed, 0, "{v:?}");
    let report = sink
        .result("report")
        .expect("the report is in the caller's sink");
    let names: Vec<&str> = report.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["objects.jsonl", "report.html", "report.json", "report.md"]
    );
}
