//! A hub whose primary store is a real S3 server (s3s-fs, which checks SigV4 signatures) or
//! Azure Blob (Azurite): write, verify, tamper-free ciphertext, and refused bad credentials.

mod common;

use common::{fresh, ok, server, shh_env};
use std::path::Path;
use std::process::Output;

fn shh(hub: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    shh_env(hub, PASS, envs, args)
}

const PASS: &str = "remote test passphrase";

fn round_trip(url: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = dir.path().join("hub");
    ok(&shh(
        &hub,
        &[],
        &["init", "--insecure-fast-kdf", "--store", url],
    ));
    let marker = "REMOTE-PLAINTEXT-MARKER";
    ok(&shh(
        &hub,
        &[],
        &[
            "debug",
            "write-sample",
            "--dataset",
            "claims",
            "--rows",
            "30000",
            "--rows-per-file",
            "10000",
            "--marker",
            marker,
        ],
    ));
    ok(&shh(&hub, &[], &["datasets", "verify", "claims"]));
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&shh(&hub, &[], &["--json", "store", "ls"]))).expect("json");
    let shown: serde_json::Value = serde_json::from_str(&ok(&shh(
        &hub,
        &[],
        &["--json", "datasets", "show", "claims"],
    )))
    .expect("json");
    let files = shown["files"].as_array().map(Vec::len).unwrap_or_default();
    assert!(files >= 2, "30,000 rows at 10,000 per file: {shown}");
    let paths: Vec<&str> = listed
        .as_array()
        .expect("listing")
        .iter()
        .filter_map(|o| o[0].as_str())
        .collect();
    let datasets = paths.iter().filter(|p| p.starts_with("datasets/")).count();
    assert_eq!(
        datasets,
        files + 1,
        "the data files and one manifest: {listed}"
    );
    // Besides them, only the audit log: hub.init, the version write and the verify, each a
    // segment with its signed head.
    let audit = paths.iter().filter(|p| p.starts_with("audit/log/")).count();
    let heads = paths
        .iter()
        .filter(|p| p.starts_with("audit/heads/"))
        .count();
    assert_eq!((audit, heads), (3, 3), "{listed}");
    assert_eq!(
        datasets + audit + heads,
        paths.len(),
        "nothing else: {listed}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&shh(&hub, &[], &["--json", "audit", "verify"]))).expect("json");
    assert_eq!(
        (v["ok"].as_bool(), v["events"].as_u64()),
        (Some(true), Some(3)),
        "{v}"
    );
    let out = dir.path().join("export");
    ok(&shh(
        &hub,
        &[],
        &[
            "datasets",
            "export",
            "claims",
            "--out",
            out.to_str().expect("utf8"),
        ],
    ));
}

#[test]
fn hub_on_signed_s3() {
    let Some(url) = server("SHH_TEST_S3_SIGNED_URL") else {
        return;
    };
    let url = fresh(&url, "cli");
    round_trip(&url);
    // s3s-fs checks signatures: a wrong secret is refused, so the test above really signed.
    // (A second hub gets its own prefix: two hubs never share one audit log.)
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = dir.path().join("hub");
    let other = fresh(&url, "bad-signature");
    ok(&shh(
        &hub,
        &[],
        &["init", "--insecure-fast-kdf", "--store", &other],
    ));
    let o = shh(
        &hub,
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
        &["debug", "write-sample", "--dataset", "x", "--rows", "10"],
    );
    assert!(!o.status.success(), "a bad signature must be refused");
}

#[test]
fn hub_on_moto_s3() {
    let Some(url) = server("SHH_TEST_S3_URL") else {
        return;
    };
    round_trip(&fresh(&url, "cli"));
}

#[test]
fn hub_on_azurite() {
    let Some(url) = server("SHH_TEST_AZURE_URL") else {
        return;
    };
    round_trip(&fresh(&url, "cli"));
}
