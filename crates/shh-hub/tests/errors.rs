//! Every failure has a kind a front end maps to an exit code or an HTTP status, a public
//! message that names what is wrong with the caller's input and never a local path, and a
//! local detail that does.

mod common;

use common::{Fixture, PASS};
use shh_hub::ops::DatasetRef;
use shh_hub::{ErrorKind, Hub, HubError, Task};
use std::collections::HashSet;

fn assert_public(e: &HubError, hub: &std::path::Path) {
    let public = e.public_message();
    assert!(
        !public.contains(&hub.display().to_string()),
        "{:?} shows a local path: {public}",
        e.kind()
    );
    let body = serde_json::to_value(e.body()).expect("json");
    assert_eq!(body["code"], e.kind().code());
    assert_eq!(body["message"], public);
}

#[test]
fn codes_exit_codes_and_statuses_are_stable_and_distinct() {
    let codes: HashSet<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
    let exits: HashSet<_> = ErrorKind::ALL.iter().map(|k| k.exit_code()).collect();
    assert_eq!(codes.len(), ErrorKind::ALL.len());
    assert_eq!(exits.len(), ErrorKind::ALL.len());
    // 0 is success and 1 a command that ran and found a problem (a failed verification).
    assert!(!exits.contains(&0) && !exits.contains(&1));
    for k in ErrorKind::ALL {
        let json = serde_json::to_value(k).expect("json");
        assert_eq!(json, k.code());
        let back: ErrorKind = serde_json::from_value(json).expect("back");
        assert_eq!(back, k);
    }
    // What scripts and the README's table rely on.
    assert_eq!(ErrorKind::NotFound.code(), "not-found");
    assert_eq!(ErrorKind::InvalidInput.exit_code(), 2);
    assert_eq!(ErrorKind::Cancelled.exit_code(), 130);
    assert_eq!(ErrorKind::Unauthenticated.http_status(), 401);
}

#[tokio::test]
async fn each_failure_has_its_kind_and_a_public_message_without_local_paths() {
    let f = Fixture::new().await;
    let (hub, s) = (&f.hub, &f.operator);
    let dir = f.dir();

    // Not found: the name asked for is said, the hub's path is not.
    let e = hub
        .show(s, &DatasetRef::parse("nope").expect("ref"))
        .await
        .expect_err("no such dataset");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.public_message().contains("nope"),
        "{}",
        e.public_message()
    );
    assert_public(&e, &dir);

    // Invalid input: the file, line and field, never the value.
    let data = f.synth(200);
    let csv = std::fs::read_to_string(data.join("IR_BEN_R.csv")).expect("csv");
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "BEN_NAI_ANN")
        .expect("a birth-year column");
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    cells[col] = "not-a-year".into();
    lines[3] = cells.join(",");
    let bad = f.file("bad.csv", &(lines.join("\n") + "\n"));
    let mut req = f.ingest_request(200, "IR_BEN_R");
    req.files = vec![bad];
    let e = hub
        .ingest(s, &Task::silent(), &req)
        .await
        .expect_err("bad cell");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let public = e.public_message();
    assert!(
        public.contains("bad.csv") && public.contains(":4") && public.contains("BEN_NAI_ANN"),
        "{public}"
    );
    assert!(!public.contains("not-a-year"), "{public}");

    // Forbidden: a destination the residency policy does not allow, refused before any
    // request.
    let e = hub
        .migrate_plan(
            s,
            &shh_hub::migrate::PlanRequest {
                to: "s3://elsewhere/bucket?region=us-east-1".into(),
                out: f.tmp.path().join("plan.json"),
                ..Default::default()
            },
        )
        .await
        .expect_err("not allowed");
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
    assert_public(&e, &dir);

    // Conflict: a cut-over to the store the hub runs on.
    let store = hub.config().await.store;
    let e = hub
        .migrate_cutover(
            s,
            &Task::silent(),
            &shh_hub::migrate::CutoverRequest {
                to: store,
                report: "rep".into(),
                ..Default::default()
            },
            &shh_hub::DirSink::new(f.tmp.path()),
        )
        .await
        .expect_err("same store");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

    // Unauthenticated: a wrong passphrase; the keystore's path is only in the detail.
    let e = Hub::open(&dir, "not the passphrase")
        .await
        .expect_err("wrong passphrase");
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert_eq!(e.public_message(), "wrong passphrase");
    assert!(
        e.detail().contains(&dir.display().to_string()),
        "{}",
        e.detail()
    );

    // Not a hub: the path asked for is the caller's, but a remote client is not told where
    // the hub looked.
    let e = Hub::open(&f.tmp.path().join("elsewhere"), PASS)
        .await
        .expect_err("no hub");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(!e.public_message().contains("elsewhere"));
    assert!(e.detail().contains("elsewhere"));
}

#[tokio::test]
async fn a_read_only_hub_and_tampered_bytes_have_their_kinds() {
    let mut f = Fixture::new().await;
    let s = f.operator.clone();
    let req = f.ingest_request(200, "IR_BEN_R");
    f.hub
        .ingest(&s, &Task::silent(), &req)
        .await
        .expect("ingest");

    // A manifest whose ciphertext was altered: integrity, not an outage.
    let manifest = common_manifest(&f.dir());
    let mut bytes = std::fs::read(&manifest).expect("read");
    let n = bytes.len();
    bytes[n - 20] ^= 1;
    std::fs::write(&manifest, bytes).expect("write");
    let e = f
        .hub
        .show(&s, &DatasetRef::parse("IR_BEN_R").expect("ref"))
        .await
        .expect_err("tampered");
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert_public(&e, &f.dir());

    // Read-only (as during a cut-over): writes refused with their kind.
    let path = f.dir().join(shh_hub::CONFIG_FILE);
    let mut config: shh_hub::HubConfig =
        toml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("toml");
    config.read_only = true;
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write");
    f.reopen().await;
    let e = f
        .hub
        .optout_add(&s, &[], shh_hub::ingest::OptOutKind::Nir)
        .await
        .expect_err("read-only");
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    assert_eq!(e.kind().code(), "read-only");
}

/// The one manifest of the hub's one version.
fn common_manifest(hub: &std::path::Path) -> std::path::PathBuf {
    let dir = hub.join("store/datasets/IR_BEN_R/manifests");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .expect("manifests")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}
