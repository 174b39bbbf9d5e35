//! Results go to the sink the caller chooses: a dataset export, the auditor's copy of the log
//! and an acceptance report land complete in memory or in a local directory, never over an
//! earlier result, never half-written when the call fails or is cancelled, and the event
//! records where they went.

mod common;

use common::Fixture;
use shh_hub::audit::{AuditExportRequest, EventFilter};
use shh_hub::ops::{DatasetRef, ExportRequest};
use shh_hub::{DirSink, ErrorKind, MemorySink, Task};

fn export_of(name: &str) -> ExportRequest {
    ExportRequest {
        dataset: DatasetRef::parse(name).expect("ref"),
    }
}

#[tokio::test]
async fn an_export_lands_whole_in_the_callers_sink_and_never_over_an_earlier_one() {
    let f = Fixture::with_beneficiaries(300).await;
    let s = &f.operator;

    let sink = MemorySink::new();
    let r = f
        .hub
        .export(s, &Task::silent(), &export_of("IR_BEN_R"), &sink)
        .await
        .expect("export");
    let files = sink.result(&r.name).expect("committed");
    assert!(files.contains_key("manifest.json") && files.contains_key("manifest.canonical.json"));
    let mut rows = 0;
    for name in &r.files {
        let bytes = files.get(name).expect("listed").clone();
        for b in parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("plain Parquet")
            .build()
            .expect("reader")
        {
            rows += b.expect("batch").num_rows() as u64;
        }
    }
    assert_eq!(rows, r.rows);

    // The event says where it went.
    let events = f
        .hub
        .audit_events(
            s,
            &EventFilter {
                action: Some("dataset.export".into()),
                ..Default::default()
            },
        )
        .await
        .expect("events");
    let last = events.last().expect("recorded");
    assert_eq!(last.targets.object.as_deref(), Some(r.location.as_str()));

    // Again, into a local directory holding that result: refused as a conflict, and the
    // message a remote client would see names the result, not the local path.
    let dir = f.tmp.path().join("exports");
    std::fs::create_dir_all(dir.join(&r.name)).expect("taken");
    let e = f
        .hub
        .export(
            s,
            &Task::silent(),
            &export_of("IR_BEN_R"),
            &DirSink::new(&dir),
        )
        .await
        .expect_err("exists");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.public_message().contains(&r.name),
        "{}",
        e.public_message()
    );
    assert!(!e.public_message().contains(&dir.display().to_string()));
    assert!(
        e.detail().contains(&dir.display().to_string()),
        "{}",
        e.detail()
    );
    let left: Vec<_> = std::fs::read_dir(&dir).expect("ls").flatten().collect();
    assert_eq!(left.len(), 1, "nothing staged is left behind: {left:?}");
}

#[tokio::test]
async fn a_cancelled_export_leaves_nothing_in_the_sink() {
    let f = Fixture::with_beneficiaries(100).await;
    let s = &f.operator;
    let task = Task::silent();
    task.cancel();
    let sink = MemorySink::new();
    let e = f
        .hub
        .export(s, &task, &export_of("IR_BEN_R"), &sink)
        .await
        .expect_err("cancelled");
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(sink.names().is_empty(), "{:?}", sink.names());
}

#[tokio::test]
async fn the_auditors_copy_goes_to_any_sink_and_verifies_without_the_hub() {
    let f = Fixture::new().await;
    let s = &f.operator;
    let sink = MemorySink::new();
    let req = AuditExportRequest {
        name: "audit-copy".into(),
    };
    let summary = f.hub.audit_export(s, &req, &sink).await.expect("export");
    let files = sink.result("audit-copy").expect("committed");
    let events = files.get("events.ndjson").expect("events");
    let lines = events
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines as u64, summary.events);

    let dir = f.tmp.path().join("auditor");
    std::fs::create_dir_all(&dir).expect("dir");
    let summary = f
        .hub
        .audit_export(s, &req, &DirSink::new(&dir))
        .await
        .expect("export");
    let key = f.hub.audit_public_key().await.expect("key");
    let v =
        shh_hub::audit::verify_export(&dir.join("audit-copy"), &[key], Vec::new()).expect("verify");
    assert!(v.ok, "{v:?}");
    assert_eq!(v.events, summary.events);
    // A name that would leave the sink is invalid input.
    let e = f
        .hub
        .audit_export(
            s,
            &AuditExportRequest {
                name: "../escape".into(),
            },
            &DirSink::new(&dir),
        )
        .await
        .expect_err("bad name");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!f.tmp.path().join("escape").exists());
}
