//! The audit log seen from outside: every operation leaves an event, an auditor verifies an
//! export with only the public key, tampering with the stored log or the export is named, and a
//! process killed in a burst of appends leaves a log without gaps.

mod common;

use common::{json, kill_after_progress, ok, shh, shh_env};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PASS: &str = "correct horse battery staple";

fn init(dir: &Path) -> PathBuf {
    let hub = dir.join("hub");
    ok(&shh(&hub, PASS, &["init", "--insecure-fast-kdf"]));
    hub
}

/// Writes `n` small datasets `t0`…: one `dataset.version.write` event each.
fn write_tables(hub: &Path, n: usize) {
    for i in 0..n {
        let name = format!("t{i}");
        ok(&shh(
            hub,
            PASS,
            &["debug", "write-sample", "--dataset", &name, "--rows", "10"],
        ));
    }
}

fn events(hub: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["--json", "audit", "log"];
    a.extend_from_slice(args);
    json(&shh(hub, PASS, &a))
        .as_array()
        .cloned()
        .expect("array")
}

#[test]
fn every_operation_is_recorded_and_the_log_verifies() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    let env = [("SHH_ACTOR", "carol"), ("SHH_ROLE", "custodian")];
    ok(&shh_env(
        &hub,
        PASS,
        &env,
        &[
            "debug",
            "write-sample",
            "--dataset",
            "claims",
            "--rows",
            "500",
        ],
    ));
    ok(&shh(&hub, PASS, &["datasets", "verify", "claims"]));
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
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
    ok(&shh_env(
        &hub,
        PASS,
        &[("SHH_NEW_PASSPHRASE", "new pass")],
        &["keys", "passwd"],
    ));
    let pass = "new pass";

    let all = json(&shh(hub.as_path(), pass, &["--json", "audit", "log"]));
    let actions: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "hub.init",
            "dataset.version.write",
            "dataset.verify",
            "dataset.export",
            "keys.passwd"
        ]
    );
    let write = &all[1];
    assert_eq!(write["actor"], "carol");
    assert_eq!(write["role"], "custodian");
    assert_eq!(write["details"]["rows"], 500);
    assert!(
        write["targets"]["dataset"]
            .as_str()
            .expect("ds")
            .starts_with("claims@")
    );
    assert_eq!(all[3]["details"]["rows_out"], 500);
    for (i, e) in all.as_array().expect("array").iter().enumerate() {
        assert_eq!(e["seq"], i as u64);
    }

    // Filters.
    let only = json(&shh(
        &hub,
        pass,
        &["--json", "audit", "log", "--action", "dataset.*"],
    ));
    assert_eq!(only.as_array().map(Vec::len), Some(3));
    let carol = json(&shh(
        &hub,
        pass,
        &["--json", "audit", "log", "--actor", "carol"],
    ));
    assert_eq!(carol.as_array().map(Vec::len), Some(1));
    let future = json(&shh(
        &hub,
        pass,
        &["--json", "audit", "log", "--since", "2999-01-01"],
    ));
    assert_eq!(future.as_array().map(Vec::len), Some(0));

    let v = shh(&hub, pass, &["audit", "verify"]);
    assert!(ok(&v).contains("OK"), "{}", ok(&v));
}

#[test]
fn an_auditor_verifies_an_export_with_only_the_public_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    write_tables(&hub, 3);
    let key = dir.path().join("hub.pem");
    std::fs::write(&key, ok(&shh(&hub, PASS, &["audit", "pubkey"]))).expect("key");
    let kept = dir.path().join("head.json");
    std::fs::write(&kept, ok(&shh(&hub, PASS, &["audit", "head"]))).expect("head");
    let out = dir.path().join("audit-export");
    ok(&shh(
        &hub,
        PASS,
        &["audit", "export", "--out", out.to_str().expect("utf8")],
    ));

    // No hub, no passphrase: a different directory and an empty environment.
    let verify = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_shh"));
        c.args(["audit", "verify", "--export"])
            .arg(&out)
            .arg("--pubkey")
            .arg(&key)
            .args(extra)
            .env_clear()
            .current_dir(dir.path())
            .stdin(Stdio::null());
        c.output().expect("run")
    };
    let good = verify(&["--known-head", kept.to_str().expect("utf8")]);
    assert!(ok(&good).contains("4 events"), "{}", ok(&good));

    // Alter the third event's content: verification fails and names it.
    let ev = out.join("events.ndjson");
    let text = std::fs::read_to_string(&ev).expect("read");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = lines[2].replace("\"rows\":10", "\"rows\":11");
    std::fs::write(&ev, lines.join("\n") + "\n").expect("write");
    let bad = verify(&[]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("first bad event 2"), "{err}");

    // A key that is not the hub's verifies nothing.
    std::fs::write(&ev, text).expect("restore");
    let other = dir.path().join("other.pem");
    std::fs::write(&other, format!("{}\n", "11".repeat(32))).expect("key");
    let o = Command::new(env!("CARGO_BIN_EXE_shh"))
        .args(["audit", "verify", "--export"])
        .arg(&out)
        .arg("--pubkey")
        .arg(&other)
        .env_clear()
        .output()
        .expect("run");
    assert!(!o.status.success());
}

#[test]
fn tampering_with_the_stored_log_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    write_tables(&hub, 4);
    ok(&shh(&hub, PASS, &["audit", "verify"]));
    // Swap the ciphertext of the segments holding events 1 and 3.
    let seg = |n: u64| hub.join("store/audit/log").join(format!("{n:020}.ndjson"));
    let (a, b) = (
        std::fs::read(seg(1)).expect("a"),
        std::fs::read(seg(3)).expect("b"),
    );
    std::fs::write(seg(1), &b).expect("w");
    std::fs::write(seg(3), &a).expect("w");
    let o = shh(&hub, PASS, &["audit", "verify"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("first bad event 1"), "{err}");
}

#[test]
fn inclusion_proof_is_checkable_by_any_rfc6962_verifier() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    write_tables(&hub, 6);
    let p = json(&shh(&hub, PASS, &["audit", "proof", "3"]));
    assert_eq!(p["leaf_index"], 3);
    assert_eq!(p["tree_size"], 7);
    let event = p["event"].as_str().expect("event");
    let leaf = shh_hub::audit::merkle::leaf_hash(event.as_bytes());
    assert_eq!(hex::encode(leaf), p["leaf_hash"]);
    let path: Vec<[u8; 32]> = p["audit_path"]
        .as_array()
        .expect("path")
        .iter()
        .map(|h| {
            hex::decode(h.as_str().expect("hex"))
                .expect("hex")
                .try_into()
                .expect("32")
        })
        .collect();
    let root: [u8; 32] = hex::decode(p["root"].as_str().expect("root"))
        .expect("hex")
        .try_into()
        .expect("32");
    assert_eq!(p["head"]["root"], p["root"]);
    assert!(shh_hub::audit::merkle::verify_inclusion(
        3, 7, &leaf, &path, &root
    ));
    assert!(!shh(&hub, PASS, &["audit", "proof", "99"]).status.success());
}

#[test]
fn killed_burst_of_appends_leaves_a_log_without_gaps() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    let seen = kill_after_progress(
        &hub,
        PASS,
        &[
            "debug",
            "audit-burst",
            "--count",
            "10000000",
            "--writers",
            "32",
        ],
        "appended ",
        3,
    );
    assert_eq!(seen, 3, "the burst should have reported progress");

    let v = json(&shh(&hub, PASS, &["--json", "audit", "verify"]));
    assert_eq!(v["ok"], true, "{v}");
    let n = v["events"].as_u64().expect("events");
    assert!(n > 3000, "{n} events");
    // The next append continues the sequence, and the log still verifies.
    ok(&shh(
        &hub,
        PASS,
        &[
            "debug",
            "write-sample",
            "--dataset",
            "after",
            "--rows",
            "10",
        ],
    ));
    let last = events(&hub, &["--action", "dataset.version.write"]);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["seq"], n);
    let v = json(&shh(&hub, PASS, &["--json", "audit", "verify"]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["unsigned_tail"], 0);
}

/// A command that touches data records its failure too, with a reason that names what is
/// wrong (never a value): a verify or export on a missing or altered manifest, a verify that
/// finds a bad data file (failed, not allowed), an export into a directory refused by name.
#[test]
fn failures_of_data_commands_are_recorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    write_tables(&hub, 2);
    let failed = |action: &str| -> Vec<serde_json::Value> {
        events(&hub, &["--action", action])
            .into_iter()
            .filter(|e| e["outcome"]["result"] == "failed")
            .collect()
    };
    let manifests =
        |t: &str| common::files_under(&hub.join("store/datasets").join(t).join("manifests"));
    let data = |t: &str| common::files_under(&hub.join("store/datasets").join(t).join("data"));

    // t0: its manifest gone.
    std::fs::remove_file(&manifests("t0")[0]).expect("rm");
    assert!(
        !shh(&hub, PASS, &["datasets", "verify", "t0"])
            .status
            .success()
    );
    let out = dir.path().join("out");
    assert!(
        !shh(
            &hub,
            PASS,
            &[
                "datasets",
                "export",
                "t0",
                "--out",
                out.to_str().expect("o")
            ]
        )
        .status
        .success()
    );
    // t1: a data file altered.
    let f = &data("t1")[0];
    let mut b = std::fs::read(f).expect("read");
    let n = b.len();
    b[n / 2] ^= 1;
    std::fs::write(f, b).expect("write");
    assert!(
        !shh(&hub, PASS, &["datasets", "verify", "t1"])
            .status
            .success()
    );
    // Unknown dataset.
    assert!(
        !shh(&hub, PASS, &["datasets", "verify", "nothing"])
            .status
            .success()
    );

    let verify = failed("dataset.verify");
    assert_eq!(verify.len(), 3, "{verify:#?}");
    let reasons: Vec<String> = verify
        .iter()
        .map(|e| {
            e["outcome"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("manifests/")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("data/")), "{reasons:?}");
    assert!(
        events(&hub, &["--action", "dataset.verify"])
            .iter()
            .all(|e| e["outcome"]["result"] == "failed"),
        "a verify that found a bad file is not recorded as allowed"
    );
    assert_eq!(
        failed("dataset.export").len(),
        1,
        "{:#?}",
        events(&hub, &["--action", "dataset.export"])
    );
    let v = ok(&shh(&hub, PASS, &["audit", "verify"]));
    assert!(v.contains("OK"), "{v}");
}

/// Who acted is kept as given, an e-mail address included (staff are not patients); only a
/// NIR in an actor's id is redacted.
#[test]
fn actors_are_kept_but_a_nir_in_one_is_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    // A verify of nothing fails, and its failure is recorded with its actor.
    let o = shh_env(
        &hub,
        PASS,
        &[("SHH_ACTOR", "alice@hub.example.fr")],
        &["datasets", "verify", "nothing"],
    );
    assert!(!o.status.success());
    let out = dir.path().join("x");
    ok(&shh_env(
        &hub,
        PASS,
        &[("SHH_ACTOR", "bob 185057800608491")],
        &["audit", "export", "--out", out.to_str().expect("x")],
    ));
    let actors: Vec<String> = events(&hub, &[])
        .iter()
        .map(|e| e["actor"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        actors.iter().any(|a| a == "alice@hub.example.fr"),
        "{actors:?}"
    );
    assert!(actors.iter().any(|a| a == "bob [NIR]"), "{actors:?}");
    assert!(
        !actors.iter().any(|a| a.contains("185057800608491")),
        "{actors:?}"
    );
}
