//! End-to-end tests of the `shh` binary on the embedded default (local disk + SQLite): what a
//! user relies on, observed from outside the process.

mod common;

use common::{json, kill_after_progress, ok, shh};
use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "correct horse battery staple";

fn init(dir: &Path) -> PathBuf {
    let hub = dir.join("hub");
    ok(&shh(&hub, PASS, &["init", "--insecure-fast-kdf"]));
    hub
}

fn write_sample(hub: &Path, name: &str, rows: u64, marker: Option<&str>) -> String {
    let rows = rows.to_string();
    let mut args = vec![
        "debug",
        "write-sample",
        "--dataset",
        name,
        "--rows",
        &rows,
        "--rows-per-file",
        "20000",
    ];
    if let Some(m) = marker {
        args.extend(["--marker", m]);
    }
    ok(&shh(hub, PASS, &args)).trim().to_owned()
}

/// Every file under `dir` with its content.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    common::files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect()
}

fn data_files(hub: &Path, dataset: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = files(&hub.join("store/datasets").join(dataset).join("data"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    v.sort();
    v
}

#[test]
fn no_plaintext_at_rest_and_export_restores_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    let marker = "PLAINTEXT-MARKER-7c1e";
    // Uncompressed would be the easy case; zstd hides nothing we rely on: the control below
    // shows the marker is present in the plaintext Parquet the export writes.
    write_sample(&hub, "claims", 50_000, Some(marker));
    for (p, bytes) in files(&hub.join("store")) {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "marker in {}",
            p.display()
        );
        assert_eq!(
            &bytes[..6],
            b"SHHENC",
            "{} is not in the encrypted format",
            p.display()
        );
    }
    let out = dir.path().join("export");
    ok(&shh(
        &hub,
        PASS,
        &[
            "datasets",
            "export",
            "claims",
            "--out",
            out.to_str().expect("utf8"),
        ],
    ));
    let exported = files(&out);
    assert!(exported.iter().any(|(p, _)| p.ends_with("manifest.json")));
    let parquet: Vec<_> = exported
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(parquet.len(), 3, "50,000 rows at 20,000 per file");
    for (p, b) in &parquet {
        assert_eq!(&b[..4], b"PAR1", "{} is plain Parquet", p.display());
    }
    // The canonical manifest hashes to the version id, checkable without shh.
    let (_, canonical) = exported
        .iter()
        .find(|(p, _)| p.ends_with("manifest.canonical.json"))
        .expect("canonical");
    let id = blake3::hash(canonical).to_hex().to_string();
    let shown = json(&shh(&hub, PASS, &["--json", "datasets", "show", "claims"]));
    assert_eq!(shown["id"], id);
}

#[test]
fn wrong_passphrase_is_clear_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    write_sample(&hub, "claims", 1000, None);
    let before = files(&hub);
    let o = shh(&hub, "not the passphrase", &["datasets", "list"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_shh"))
        .args(["--hub", hub.to_str().expect("utf8"), "keys", "passwd"])
        .env("SHH_PASSPHRASE", "nope")
        .env("SHH_NEW_PASSPHRASE", "other")
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert_eq!(
        before,
        files(&hub),
        "a failed open must not change any file"
    );
}

#[test]
fn passwd_rewraps_keys_without_touching_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    write_sample(&hub, "claims", 30_000, None);
    let store_before = files(&hub.join("store"));
    let o = Command::new(env!("CARGO_BIN_EXE_shh"))
        .args(["--hub", hub.to_str().expect("utf8"), "keys", "passwd"])
        .env("SHH_PASSPHRASE", PASS)
        .env("SHH_NEW_PASSPHRASE", "a new passphrase")
        .output()
        .expect("run");
    ok(&o);
    // Every object that existed is byte-for-byte unchanged; the only new ones are the audit
    // log's record of the change (a segment and its signed head).
    let after = files(&hub.join("store"));
    for (path, bytes) in &store_before {
        let now = after.iter().find(|(p, _)| p == path).map(|(_, b)| b);
        assert_eq!(now, Some(bytes), "{} changed", path.display());
    }
    let added: Vec<_> = after
        .iter()
        .filter(|(p, _)| !store_before.iter().any(|(q, _)| q == p))
        .map(|(p, _)| {
            p.strip_prefix(hub.join("store"))
                .expect("under store")
                .to_owned()
        })
        .collect();
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(added.iter().all(|p| p.starts_with("audit")), "{added:?}");
    assert!(
        !shh(&hub, PASS, &["datasets", "list"]).status.success(),
        "old passphrase must stop working"
    );
    ok(&shh(
        &hub,
        "a new passphrase",
        &["datasets", "verify", "claims"],
    ));
}

/// Runs `verify` and returns stderr, asserting a non-zero exit.
fn verify_fails(hub: &Path) -> String {
    let o = shh(hub, PASS, &["datasets", "verify", "claims"]);
    assert!(
        !o.status.success(),
        "verify must fail; stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn rel(hub: &Path, p: &Path) -> String {
    p.strip_prefix(hub.join("store"))
        .expect("in store")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn tampering_makes_verify_fail_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    write_sample(&hub, "claims", 60_000, None);
    ok(&shh(&hub, PASS, &["datasets", "verify", "claims"]));
    let files = data_files(&hub, "claims");
    assert_eq!(files.len(), 3);
    let (a, b) = (files[0].clone(), files[1].clone());
    let orig_a = std::fs::read(&a).expect("read");
    let orig_b = std::fs::read(&b).expect("read");
    let restore = || {
        std::fs::write(&a, &orig_a).expect("restore");
        std::fs::write(&b, &orig_b).expect("restore");
    };

    let mut x = orig_a.clone();
    x[orig_a.len() / 2] ^= 0x01;
    std::fs::write(&a, &x).expect("write");
    let err = verify_fails(&hub);
    assert!(
        err.contains(&rel(&hub, &a)) && err.contains("integrity"),
        "flip: {err}"
    );
    restore();

    std::fs::write(&a, &orig_a[..orig_a.len() - 100]).expect("truncate");
    assert!(verify_fails(&hub).contains(&rel(&hub, &a)), "truncate");
    restore();

    std::fs::write(&a, &orig_b).expect("swap");
    std::fs::write(&b, &orig_a).expect("swap");
    let err = verify_fails(&hub);
    assert!(
        err.contains(&rel(&hub, &a)) || err.contains(&rel(&hub, &b)),
        "swap: {err}"
    );
    let report = serde_json::from_slice::<serde_json::Value>(
        &shh(&hub, PASS, &["--json", "datasets", "verify", "claims"]).stdout,
    )
    .expect("json");
    let bad: Vec<String> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| f["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut want = vec![rel(&hub, &a), rel(&hub, &b)];
    want.sort();
    let mut bad = bad;
    bad.sort();
    assert_eq!(bad, want, "both swapped files must fail");
    restore();

    let mut y = orig_b[..96].to_vec();
    y.extend_from_slice(&orig_a[96..]);
    std::fs::write(&a, &y).expect("header");
    assert!(
        verify_fails(&hub).contains(&rel(&hub, &a)),
        "replaced header"
    );
    restore();

    std::fs::remove_file(&b).expect("delete");
    let err = verify_fails(&hub);
    assert!(err.contains(&rel(&hub, &b)), "missing file: {err}");
    restore();
    ok(&shh(&hub, PASS, &["datasets", "verify", "claims"]));
}

#[test]
fn tampered_manifest_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    write_sample(&hub, "claims", 1000, None);
    let m = files(&hub.join("store/datasets/claims/manifests"))
        .remove(0)
        .0;
    let mut b = std::fs::read(&m).expect("read");
    let n = b.len();
    b[n - 20] ^= 0x04;
    std::fs::write(&m, b).expect("write");
    let err = verify_fails(&hub);
    assert!(err.contains("manifests/"), "{err}");
}

#[test]
fn killed_write_leaves_no_version_and_the_next_write_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    let first = write_sample(&hub, "claims", 1000, None);
    let current =
        |hub: &Path| json(&shh(hub, PASS, &["--json", "datasets", "list"]))[0]["current"].clone();
    let before = current(&hub);

    // A long write, killed once it has written some files but long before it finishes.
    let seen = kill_after_progress(
        &hub,
        PASS,
        &[
            "debug",
            "write-sample",
            "--dataset",
            "claims",
            "--rows",
            "5000000",
            "--rows-per-file",
            "50000",
        ],
        "file ",
        3,
    );
    assert_eq!(seen, 3, "the writer should have reported three files");

    assert_eq!(current(&hub), before, "the pointer must not move");
    let versions = json(&shh(
        &hub,
        PASS,
        &["--json", "datasets", "versions", "claims"],
    ));
    assert_eq!(
        versions.as_array().map(Vec::len),
        Some(1),
        "no new version may be visible"
    );
    ok(&shh(&hub, PASS, &["datasets", "verify", "claims"]));
    let second = write_sample(&hub, "claims", 2000, None);
    assert_ne!(first, second);
    let versions = json(&shh(
        &hub,
        PASS,
        &["--json", "datasets", "versions", "claims"],
    ));
    assert_eq!(versions.as_array().map(Vec::len), Some(2));
    assert_eq!(versions[1]["parent"], versions[0]["id"]);
    ok(&shh(&hub, PASS, &["datasets", "verify", "claims"]));
    ok(&shh(&hub, PASS, &["datasets", "verify", &first]));
}

#[test]
fn residency_refuses_a_store_outside_the_allowlist_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    // The operator (or an attacker with file access) points the hub elsewhere without
    // allowing it: nothing listens on port 1, so a request would fail differently.
    let cfg = hub.join("shh.toml");
    let text = std::fs::read_to_string(&cfg).expect("read");
    let store_line = text
        .lines()
        .find(|l| l.starts_with("store = "))
        .expect("store line")
        .to_owned();
    let text = text.replace(
        &store_line,
        "store = \"s3://bucket/hub?endpoint=http://127.0.0.1:1&region=eu-west-3\"",
    );
    std::fs::write(&cfg, text).expect("write");
    let o = shh(&hub, PASS, &["datasets", "list"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("residency policy refuses") && err.contains("Nothing was sent"),
        "{err}"
    );
}

#[test]
fn init_refuses_an_existing_hub_and_names_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = init(dir.path());
    let o = shh(&hub, PASS, &["init", "--insecure-fast-kdf"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let r = write_sample(&hub, "claims", 10, None);
    assert!(
        r.starts_with("claims@") && r.len() == "claims@".len() + 12,
        "{r}"
    );
    let o = shh(&hub, PASS, &["datasets", "show", "claims@zzzz"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no version"));
    let o = shh(&hub, PASS, &["datasets", "show", "../etc"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid dataset name"));
}

#[test]
fn demo_runs_and_finds_no_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_shh"))
        .args([
            "--json",
            "demo",
            "--patients",
            "2000",
            "--dir",
            demo.to_str().expect("utf8"),
        ])
        .env("SHH_PASSPHRASE", PASS)
        .output()
        .expect("run");
    let r = json(&o);
    assert_eq!(r["nir_in_store"], false);
    assert_eq!(r["nirs_searched"], 2000);
    assert_eq!(r["tables"][0]["rows_written"], 2000);
    assert_eq!(r["tables"].as_array().expect("tables").len(), 4);
    assert_eq!(r["audit"]["ok"], true);
    let actions: Vec<&str> = r["audit_events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e[1].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "hub.init",
            "dataset.ingest",
            "dataset.ingest",
            "dataset.ingest",
            "dataset.ingest",
            "dataset.verify",
            "dataset.verify",
            "dataset.verify",
            "dataset.verify",
            "migrate.run",
            "migrate.verify",
            "user.add",
            "user.enroll",
            "user.add",
            "user.enroll",
            "user.add",
            "user.enroll",
            "user.add",
            "user.enroll",
            "project.create",
            "permit.request",
            "access.denied",
            "access.denied",
            "permit.grant",
            "access.denied",
            // The aggregate query, the two refused, all patients and all but a small cell.
            "query.run",
            "query.run",
            "query.run",
            "query.run",
            "query.run",
            // The airlock: the request (its result computed), a self-review refused, one
            // review, a release refused, the second review, the release (computed again).
            "query.run",
            "export.request",
            "access.denied",
            "export.review",
            "export.release",
            "export.review",
            "query.run",
            "export.release"
        ]
    );
    // A permit granted and signed by the committee; self-grants and use by the granter refused;
    // the grant's signature verified with the log.
    assert!(
        r["access"]["permit"]
            .as_str()
            .is_some_and(|p| p.starts_with("pmt-"))
    );
    assert_eq!(r["access"]["refused"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        r["access"]["release"]["reviewers"],
        serde_json::json!(["olga", "otto"])
    );
    // The aggregate answer shows suppressed cells, and the differencing attack on one of them
    // got the same answer twice.
    let d = &r["access"]["disclosure"];
    assert!(d["published"].as_u64() < d["cells"].as_u64(), "{d}");
    assert!(
        r["access"]["answer"]
            .as_str()
            .is_some_and(|a| a.contains("suppressed"))
    );
    assert_eq!(r["access"]["differencing"], true);
    assert_eq!(r["audit"]["decisions"], 3);
    assert_eq!(
        r["audit"]["deciders"],
        serde_json::json!(["cora", "olga", "otto"])
    );
    // The store was copied to a second location and accepted against the manifests.
    assert_eq!(r["migration"]["failed"], 0, "{}", r["migration"]);
    assert!(
        r["migration"]["checked"].as_u64() >= Some(9),
        "{}",
        r["migration"]
    );
    assert!(demo.join("migration-report").join("report.json").exists());
    // Running it again replaces the previous demo hub.
    let o = Command::new(env!("CARGO_BIN_EXE_shh"))
        .args([
            "demo",
            "--patients",
            "100",
            "--dir",
            demo.to_str().expect("utf8"),
        ])
        .env("SHH_PASSPHRASE", PASS)
        .output()
        .expect("run");
    ok(&o);
    // What a newcomer types: no --dir, so ./shh-demo relative to where they are.
    let o = Command::new(env!("CARGO_BIN_EXE_shh"))
        .args(["demo", "--patients", "100"])
        .current_dir(dir.path())
        .env("SHH_PASSPHRASE", PASS)
        .output()
        .expect("run");
    ok(&o);
    assert!(
        dir.path()
            .join("shh-demo")
            .join("migration-report")
            .exists()
    );
}
