//! One suite every sink runs: a result is complete or absent, never overwritten, and no name
//! leaves it.

use shh_sink::{DirSink, MemorySink, Sink, SinkError};
use std::collections::BTreeMap;

type Read = Box<dyn Fn(&str) -> Option<BTreeMap<String, Vec<u8>>>>;

async fn suite(sink: &dyn Sink, read: Read) {
    // Written, then visible all at once.
    let staged = sink.stage("r1").await.expect("stage");
    staged.put("a.txt", "alpha".into()).await.expect("put");
    let mut f = staged.create("data/part-0.bin").await.expect("create");
    f.write(b"be").await.expect("write");
    f.write(b"ta").await.expect("write");
    f.finish().await.expect("finish");
    assert_eq!(read("r1"), None, "nothing is visible before the commit");
    let location = staged.commit().await.expect("commit");
    assert!(location.contains("r1"), "{location}");
    let got = read("r1").expect("committed");
    assert_eq!(got.get("a.txt").map(Vec::as_slice), Some(&b"alpha"[..]));
    assert_eq!(
        got.get("data/part-0.bin").map(Vec::as_slice),
        Some(&b"beta"[..])
    );
    assert_eq!(got.len(), 2);

    // Never overwritten: at stage time, and at commit time when another won the race.
    assert!(matches!(
        sink.stage("r1").await,
        Err(SinkError::Exists { .. })
    ));
    let a = sink.stage("r2").await.expect("stage a");
    let b = sink.stage("r2").await.expect("stage b");
    a.put("x", "from a".into()).await.expect("put");
    b.put("x", "from b".into()).await.expect("put");
    a.commit().await.expect("first commit");
    assert!(matches!(b.commit().await, Err(SinkError::Exists { .. })));
    assert_eq!(
        read("r2").and_then(|m| m.get("x").cloned()),
        Some(b"from a".to_vec())
    );

    // Dropped or aborted: nothing.
    let dropped = sink.stage("r3").await.expect("stage");
    dropped.put("x", "gone".into()).await.expect("put");
    drop(dropped);
    assert_eq!(read("r3"), None);
    let aborted = sink
        .stage("r3")
        .await
        .expect("a dropped result does not hold the name");
    aborted.put("x", "gone".into()).await.expect("put");
    aborted.abort().await;
    assert_eq!(read("r3"), None);

    // A file is written once; names stay inside the result.
    let s = sink.stage("r4").await.expect("stage");
    s.put("x", "1".into()).await.expect("put");
    assert!(matches!(
        s.put("x", "2".into()).await,
        Err(SinkError::Exists { .. })
    ));
    for bad in ["../escape", "/abs", "a//b", ""] {
        assert!(
            matches!(s.create(bad).await, Err(SinkError::BadName { .. })),
            "{bad:?}"
        );
    }
    for bad in ["..", ".hidden", "a/b"] {
        assert!(
            matches!(sink.stage(bad).await, Err(SinkError::BadName { .. })),
            "{bad:?}"
        );
    }
}

fn read_dir(root: &std::path::Path, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let dir = root.join(name);
    dir.is_dir().then(|| {
        let mut out = BTreeMap::new();
        walk(&dir, &dir, &mut out);
        out
    })
}

#[tokio::test]
async fn a_directory_sink_passes_the_suite_and_leaves_no_staging_behind() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().to_owned();
    let r = root.clone();
    suite(&DirSink::new(&root), Box::new(move |n| read_dir(&r, n))).await;
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // r3 and r4 were staged and dropped: no staging directory stays behind.
    assert_eq!(left, ["r1", "r2"]);
}

#[tokio::test]
async fn a_memory_sink_passes_the_suite() {
    let sink = MemorySink::new();
    let s = sink.clone();
    suite(
        &sink,
        Box::new(move |n| {
            s.result(n)
                .map(|m| m.into_iter().map(|(k, v)| (k, v.to_vec())).collect())
        }),
    )
    .await;
    assert_eq!(sink.names(), vec!["r1".to_owned(), "r2".to_owned()]);
}

#[tokio::test]
async fn for_path_splits_a_result_path_into_its_sink_and_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (sink, name) = DirSink::for_path(&tmp.path().join("audit-copy")).expect("split");
    assert_eq!(name, "audit-copy");
    let s = sink.stage(&name).await.expect("stage");
    s.put("events.ndjson", "{}\n".into()).await.expect("put");
    s.commit().await.expect("commit");
    assert!(tmp.path().join("audit-copy/events.ndjson").is_file());
}
