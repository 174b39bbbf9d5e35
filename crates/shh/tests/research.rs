//! Research access from the command line, as the users run it: each `--as` proven by the
//! user's own passphrase; a query under a permit in every format; the airlock's two reviews
//! and the release; the public register.

mod common;

use common::{json, ok, shh, shh_env};
use std::path::Path;

const PASS: &str = "correct horse battery staple";

/// `shh --as NAME ARGS…`, proven with `NAME-passphrase`.
fn as_user(hub: &Path, name: &str, args: &[&str]) -> std::process::Output {
    let pass = format!("{name}-passphrase");
    let mut a = vec!["--as", name];
    a.extend_from_slice(args);
    shh_env(hub, PASS, &[("SHH_USER_PASSPHRASE", &pass)], &a)
}

#[test]
fn a_researcher_queries_and_a_result_leaves_through_the_airlock() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = dir.path().join("hub");
    let data = dir.path().join("synth");
    ok(&shh(&hub, PASS, &["init", "--insecure-fast-kdf"]));
    ok(&shh(
        &hub,
        PASS,
        &[
            "synth",
            "snds",
            "--patients",
            "300",
            "--out",
            data.to_str().expect("utf8"),
        ],
    ));
    let file = |n: &str| data.join(n).to_string_lossy().into_owned();
    ok(&shh(
        &hub,
        PASS,
        &[
            "ingest",
            "--dataset",
            "IR_BEN_R",
            "--schema",
            &file("IR_BEN_R.json"),
            "--policy",
            &file("IR_BEN_R.policy.toml"),
            &file("IR_BEN_R.csv"),
        ],
    ));
    for (name, role) in [
        ("rita", "researcher"),
        ("cora", "committee"),
        ("olga", "checker"),
        ("otto", "checker"),
    ] {
        ok(&shh(&hub, PASS, &["user", "add", name, "--role", role]));
        let pass = format!("{name}-passphrase");
        ok(&shh_env(
            &hub,
            PASS,
            &[("SHH_USER_PASSPHRASE", &pass)],
            &["user", "enroll", name],
        ));
    }
    let project = ok(&as_user(
        &hub,
        "rita",
        &[
            "project",
            "create",
            "--title",
            "Births",
            "--purpose",
            "Counts by sex",
        ],
    ));
    let project = project.trim();
    // Rita asks; cora grants the request as asked.
    let request = ok(&as_user(
        &hub,
        "rita",
        &[
            "permit",
            "request",
            "--project",
            project,
            "--dataset",
            "IR_BEN_R",
            "--mode",
            "aggregate",
            "--from",
            "2026-01-01",
            "--until",
            "2099-01-01",
            "--to",
            "rita",
            "--reason",
            "Counts by sex for a cohort study",
        ],
    ));
    let request = request.trim();
    assert!(request.starts_with("prq-"), "{request}");
    // A grant of a request takes no other terms: what is granted is what was asked.
    let mixed = as_user(
        &hub,
        "cora",
        &["permit", "grant", "--request", request, "--mode", "extract"],
    );
    assert!(!mixed.status.success());
    assert!(
        String::from_utf8_lossy(&mixed.stderr).contains("--request grants the terms"),
        "{mixed:?}"
    );
    let permit = json(&as_user(
        &hub,
        "cora",
        &["--json", "permit", "grant", "--request", request],
    ));
    let listed = json(&as_user(&hub, "rita", &["--json", "permit", "requests"]));
    assert_eq!(listed[0]["state"], "granted", "{listed}");
    assert_eq!(listed[0]["decision"]["permit"], permit["id"], "{listed}");
    let permit = permit["id"].as_str().expect("id").to_owned();
    let sql = "SELECT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY BEN_SEX_COD";
    let csv = ok(&as_user(
        &hub,
        "rita",
        &["query", "--permit", &permit, "--format", "csv", sql],
    ));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "BEN_SEX_COD,n", "{csv}");
    assert_eq!(lines.len(), 3, "{csv}");
    let out = dir.path().join("r.parquet");
    ok(&as_user(
        &hub,
        "rita",
        &[
            "query",
            "--permit",
            &permit,
            "--format",
            "parquet",
            "--out",
            out.to_str().expect("utf8"),
            sql,
        ],
    ));
    assert!(std::fs::read(&out).expect("parquet").starts_with(b"PAR1"));
    // Row-level output under an aggregate permit: refused, exit 6 (forbidden), the rule named.
    let o = as_user(
        &hub,
        "rita",
        &["query", "--permit", &permit, "SELECT * FROM IR_BEN_R"],
    );
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("disclosure.aggregate-only"));
    // A wrong passphrase is not rita.
    let o = shh_env(
        &hub,
        PASS,
        &[("SHH_USER_PASSPHRASE", "not-ritas")],
        &["--as", "rita", "query", "--permit", &permit, sql],
    );
    assert!(!o.status.success());

    let id = ok(&as_user(
        &hub,
        "rita",
        &[
            "export", "request", "--permit", &permit, "--query", sql, "--reason", "Table 1",
        ],
    ));
    let id = id.trim();
    for checker in ["olga", "otto"] {
        ok(&as_user(
            &hub,
            checker,
            &["export", "review", id, "--approve", "--note", "ok"],
        ));
    }
    let file_out = dir.path().join("table1.csv");
    ok(&as_user(
        &hub,
        "rita",
        &[
            "export",
            "release",
            id,
            "--out",
            file_out.to_str().expect("utf8"),
        ],
    ));
    let released = std::fs::read(&file_out).expect("released");
    assert_eq!(String::from_utf8_lossy(&released), csv);
    let shown = json(&as_user(&hub, "rita", &["--json", "export", "show", id]));
    assert_eq!(shown["state"], "approved");
    assert_eq!(
        shown["releases"][0]["blake3"],
        blake3::hash(&released).to_hex().to_string()
    );

    let reg = dir.path().join("register");
    ok(&shh(
        &hub,
        PASS,
        &["register", "export", "--out", reg.to_str().expect("utf8")],
    ));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.join("register.json")).expect("json"))
            .expect("json");
    assert_eq!(r["projects"][0]["title"], "Births");
    assert_eq!(r["projects"][0]["status"], "active");
    let md = std::fs::read_to_string(reg.join("register.md")).expect("md");
    assert!(md.contains("| Births |") && !md.contains("rita"), "{md}");
}
