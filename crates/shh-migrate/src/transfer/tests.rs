use super::*;

use object_store::memory::InMemory;

fn side(store: Arc<InMemory>) -> Side {
    let url = StoreUrl::parse("memory://").expect("url");
    let mut caps = Capabilities::unprobed("memory://");
    caps.conditional_create = Some(true);
    caps.min_part = 1;
    Side {
        url,
        backend: Backend {
            s3: None,
            local: None,
            store: store.clone(),
            multipart: Some(store),
        },
        caps,
    }
}

fn item(path: &str, action: Action, size: u64) -> Result<Item> {
    Ok(Item {
        path: path.into(),
        action,
        size,
        dst_size: None,
    })
}

/// Runs `items` from `a` to `b` without progress output.
async fn run(
    items: Vec<Result<Item>>,
    a: Arc<InMemory>,
    b: Arc<InMemory>,
    journal: Arc<Journal>,
    opts: Options,
) -> RunStats {
    execute(
        items.into_iter(),
        side(a),
        side(b),
        journal,
        opts,
        Task::silent(),
    )
    .await
    .expect("run")
}

/// Small and part-by-part copies arrive intact; an object that appeared at the
/// destination with other content is reported, never overwritten; a journalled upload's
/// finished parts are not sent again.
#[tokio::test]
async fn copies_are_verified_conflicts_kept_and_uploads_resumed() {
    let (a, b) = (Arc::new(InMemory::new()), Arc::new(InMemory::new()));
    let big: Vec<u8> = (0..655_360u32).flat_map(|i| i.to_le_bytes()).collect();
    let ps = MIB as usize;
    a.put(&Path::from("big"), PutPayload::from(big.clone()))
        .await
        .expect("put");
    a.put(&Path::from("small"), PutPayload::from_static(b"hello"))
        .await
        .expect("put");
    a.put(&Path::from("clash"), PutPayload::from_static(b"source"))
        .await
        .expect("put");
    b.put(&Path::from("clash"), PutPayload::from_static(b"theirs"))
        .await
        .expect("put");

    // A crashed earlier run: an upload of "big" (2.5 MiB) with part 0 of 1 MiB done.
    let mp: &dyn MultipartStore = b.as_ref();
    let id = mp.create_multipart(&Path::from("big")).await.expect("mpu");
    let p0 = mp
        .put_part(
            &Path::from("big"),
            &id,
            0,
            PutPayload::from(big[..ps].to_vec()),
        )
        .await
        .expect("part");
    let dir = tempfile::tempdir().expect("tmp");
    let journal = Arc::new(Journal::open(&dir.path().join("j")).expect("journal"));
    journal
        .upload_started("big", big.len() as u64, MIB, &id)
        .expect("j");
    let h0 = blake3::hash(&big[..ps]).to_hex().to_string();
    journal.part_done("big", 0, &p0.content_id, &h0).expect("j");
    drop(journal);
    let journal = Arc::new(Journal::open(&dir.path().join("j")).expect("journal"));

    let opts = Options {
        multipart_threshold: 1000,
        part_size: MIB,
        retry: BackoffConfig {
            max_attempts: 2,
            ..BackoffConfig::default()
        },
        ..Options::default()
    };
    let items = vec![
        item("big", Action::Copy, big.len() as u64),
        item("clash", Action::Copy, 6),
        item("small", Action::Copy, 5),
    ];
    let stats = run(items, a, b.clone(), journal, opts).await;
    assert_eq!(stats.parts_resumed, 1, "{stats:?}");
    assert_eq!(stats.bytes_sent, big.len() as u64 - MIB + 5, "{stats:?}");
    assert_eq!(
        b.get(&Path::from("big"))
            .await
            .expect("big")
            .bytes()
            .await
            .expect("b")
            .as_ref(),
        &big[..]
    );
    assert_eq!(stats.failures.len(), 1, "{stats:?}");
    assert_eq!(stats.failures[0].path, "clash");
    assert!(
        stats.failures[0].error.contains("not overwritten"),
        "{stats:?}"
    );
    assert_eq!(
        b.get(&Path::from("clash"))
            .await
            .expect("c")
            .bytes()
            .await
            .expect("b")
            .as_ref(),
        b"theirs"
    );
}

/// A folder marker (`dir/` on S3) lists as an empty `dir` that no request finds: counted
/// and named, not a failure. An object with bytes that vanished is still a failure.
#[tokio::test]
async fn empty_objects_gone_from_the_source_are_counted_not_failed() {
    let (a, b) = (Arc::new(InMemory::new()), Arc::new(InMemory::new()));
    a.put(&Path::from("dir/inside"), PutPayload::from_static(b"x"))
        .await
        .expect("put");
    let dir = tempfile::tempdir().expect("tmp");
    let journal = Arc::new(Journal::open(&dir.path().join("j")).expect("journal"));
    let items = vec![
        item("dir", Action::Copy, 0),
        item("dir/inside", Action::Copy, 1),
        item("vanished", Action::Copy, 7),
    ];
    let opts = Options {
        retry: BackoffConfig {
            max_attempts: 1,
            ..BackoffConfig::default()
        },
        ..Options::default()
    };
    let stats = run(items, a, b.clone(), journal, opts).await;
    assert_eq!(stats.empty_gone.objects, 1, "{stats:?}");
    assert_eq!(stats.empty_gone_names, ["dir"], "{stats:?}");
    assert_eq!(stats.copied.objects, 1, "{stats:?}");
    let failed: Vec<&str> = stats.failures.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(failed, ["vanished"], "{stats:?}");
    assert!(
        b.head(&Path::from("dir")).await.is_err(),
        "nothing written for the marker"
    );
}

proptest::proptest! {
    /// Any name a listing can give (segments of any printable characters, `é ~ % ? [`
    /// included) addresses itself, so reads and writes go to the object that was listed.
    #[test]
    fn listed_names_address_themselves(
        segments in proptest::collection::vec("[^/\\p{Cc}]{1,12}", 1..5)
    ) {
        let name = segments.join("/");
        proptest::prop_assume!(segments.iter().all(|s| s != "." && s != ".."));
        let p = listed(&name).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        proptest::prop_assert_eq!(p.as_ref(), name.as_str());
    }
}

#[test]
fn part_ranges_cover_the_object_exactly() {
    let size = 10 * MIB + 3;
    let ps = 4 * MIB;
    let n = size.div_ceil(ps) as usize;
    let mut next = 0;
    for i in 0..n {
        let r = part_range(i, ps, size);
        assert_eq!(r.start, next);
        next = r.end;
    }
    assert_eq!(next, size);
}

#[test]
fn only_transient_errors_are_retried() {
    let gone = ObjErr::Store(
        "read",
        object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        },
    );
    assert!(!gone.retriable());
    let flaky = ObjErr::Store(
        "read",
        object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        },
    );
    assert!(flaky.retriable());
    assert!(ObjErr::Mismatch("x".into()).retriable());
    assert!(!ObjErr::Changed("x".into()).retriable());
}
