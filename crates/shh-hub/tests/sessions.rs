//! Many sessions on one `Arc<Hub>`: each event carries the actor of the session that caused
//! it, however the operations interleave; a store switch drains the operations in flight and
//! holds new ones back, or says the hub is busy.

mod common;

use common::Fixture;
use shh_hub::audit::EventFilter;
use shh_hub::migrate::MirrorRequest;
use shh_hub::{ErrorKind, ProgressSink, Task};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Holds an operation at its first progress report until `parties` operations are there.
struct Meet {
    arrived: Mutex<usize>,
    all: Condvar,
    parties: usize,
    timed_out: AtomicBool,
}

impl Meet {
    fn new(parties: usize) -> Arc<Meet> {
        Arc::new(Meet {
            arrived: Mutex::new(0),
            all: Condvar::new(),
            parties,
            timed_out: AtomicBool::new(false),
        })
    }
}

/// One operation's sink: waits at the meeting point once.
struct AtMeet(Arc<Meet>, AtomicBool);

impl ProgressSink for AtMeet {
    fn advance(&self, _: u64) {
        if self.1.swap(true, Ordering::SeqCst) {
            return;
        }
        let m = &self.0;
        let mut n = m.arrived.lock().expect("lock");
        *n += 1;
        m.all.notify_all();
        let (n, t) = m
            .all
            .wait_timeout_while(n, Duration::from_secs(30), |n| *n < m.parties)
            .expect("wait");
        drop(n);
        if t.timed_out() {
            m.timed_out.store(true, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sessions_at_once_each_find_their_actor_on_their_own_events() {
    let f = Fixture::new().await;
    let bob = f.session("bob@lab", "producer").await;
    let carol = f.session("carol@lab", "producer").await;
    let meet = Meet::new(2);
    let tb = Task::new(Arc::new(AtMeet(meet.clone(), AtomicBool::new(false))));
    let tc = Task::new(Arc::new(AtMeet(meet.clone(), AtomicBool::new(false))));
    let (rb, rc) = (
        f.ingest_request(2_000, "IR_BEN_R"),
        f.ingest_request(2_000, "ER_PHA_F"),
    );
    let (hb, hc) = (f.hub.clone(), f.hub.clone());
    let b = tokio::spawn(async move { hb.ingest(&bob, &tb, &rb).await });
    let c = tokio::spawn(async move { hc.ingest(&carol, &tc, &rc).await });
    b.await.expect("join").expect("bob's ingest");
    c.await.expect("join").expect("carol's ingest");
    assert!(
        !meet.timed_out.load(Ordering::SeqCst),
        "the two ingests never ran at the same time"
    );

    let events = f
        .hub
        .audit_events(
            &f.operator,
            &EventFilter {
                action: Some("dataset.ingest".into()),
                ..Default::default()
            },
        )
        .await
        .expect("events");
    let by_dataset: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let d = e.targets.dataset.clone().unwrap_or_default();
            (d, e.actor.clone(), e.role.clone())
        })
        .collect();
    assert_eq!(by_dataset.len(), 2, "{by_dataset:?}");
    for (d, actor, role) in &by_dataset {
        let want = if d.starts_with("IR_BEN_R@") {
            "bob@lab"
        } else {
            "carol@lab"
        };
        assert_eq!((actor.as_str(), role.as_str()), (want, "producer"), "{d}");
    }
    // The creator is on the hub's first event.
    let init = f
        .hub
        .audit_events(&f.operator, &EventFilter::default())
        .await
        .expect("events");
    assert_eq!(init[0].action, "hub.init");
    assert_eq!(init[0].actor, "alice@test");
}

/// Blocks an operation at its first progress report until released.
struct Gate {
    entered: tokio::sync::Notify,
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl ProgressSink for Gate {
    fn advance(&self, _: u64) {
        if let Some(rx) = self.release.lock().expect("lock").take() {
            self.entered.notify_one();
            let _ = rx.recv_timeout(Duration::from_secs(60));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switch_drains_operations_in_flight_and_holds_new_ones_back() {
    let f = Fixture::new().await;
    let s = f.operator.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let gate = Arc::new(Gate {
        entered: tokio::sync::Notify::new(),
        release: Mutex::new(Some(rx)),
    });
    let task = Task::new(gate.clone());
    let req = f.ingest_request(2_000, "IR_BEN_R");
    let (hub, s1) = (f.hub.clone(), s.clone());
    let ingest = tokio::spawn(async move { hub.ingest(&s1, &task, &req).await });
    gate.entered.notified().await;

    // The ingest outlasts the switch's wait: busy, and nothing changed.
    let mirror = format!("file://{}", f.tmp.path().join("mirror").display());
    let e = f
        .hub
        .migrate_mirror(
            &s,
            &MirrorRequest {
                to: Some(mirror.clone()),
                wait: Duration::from_millis(300),
            },
        )
        .await
        .expect_err("an ingest is in flight");
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(f.hub.config().await.mirror.is_none());

    // A switch with time to wait waits; an operation started meanwhile waits behind it.
    let (hub, s2, m) = (f.hub.clone(), s.clone(), mirror.clone());
    let switch = tokio::spawn(async move {
        hub.migrate_mirror(
            &s2,
            &MirrorRequest {
                to: Some(m.clone()),
                wait: Duration::from_secs(30),
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (hub, s3) = (f.hub.clone(), s.clone());
    let later = tokio::spawn(async move { hub.datasets(&s3).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!switch.is_finished() && !later.is_finished());

    tx.send(()).expect("release");
    ingest.await.expect("join").expect("the ingest completes");
    switch.await.expect("join").expect("then the switch");
    // The later operation ran on the new configuration: the ingest's version is there, and
    // the hub now mirrors.
    let ds = later
        .await
        .expect("join")
        .expect("then the later operation");
    assert_eq!(ds.len(), 1);
    assert_eq!(
        f.hub.config().await.mirror.as_deref(),
        Some(mirror.as_str())
    );
}
