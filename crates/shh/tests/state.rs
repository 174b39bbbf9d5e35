//! No panic, no hang, no hub left stuck or half-made, through the real binary: a closed
//! stdout, a keystore asking for 4 TiB of memory, `kill -9` during a cut-over, an `init` or
//! a migration, two `keys passwd` at once, a mirror switched on while another process has the
//! hub open.

mod common;

use common::{files_under, kill_when, ok, shh_env, spawn};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "state test passphrase";

fn shh(hub: &Path, args: &[&str]) -> Output {
    shh_env(hub, PASS, &[], args)
}

fn init(dir: &Path) -> PathBuf {
    let hub = dir.join("hub");
    ok(&shh(&hub, &["init", "--insecure-fast-kdf"]));
    hub
}

fn sample(hub: &Path, name: &str, rows: &str) {
    ok(&shh(
        hub,
        &[
            "debug",
            "write-sample",
            "--dataset",
            name,
            "--rows",
            rows,
            "--rows-per-file",
            "50000",
        ],
    ));
}

fn config(hub: &Path) -> String {
    std::fs::read_to_string(hub.join("shh.toml")).expect("config")
}

/// Runs `shh ARGS` with stdout a pipe whose reader is gone, and returns the output.
fn closed_stdout(hub: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shh"))
        .arg("--hub")
        .arg(hub)
        .args(args)
        .env("SHH_PASSPHRASE", PASS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // As `| head -0`: the reader closes before the first line is written.
    drop(child.stdout.take());
    child.wait_with_output().expect("wait")
}

#[test]
fn a_closed_stdout_ends_listings_quietly_and_completed_work_stays_done() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    sample(&hub, "claims", "10");
    sample(&hub, "claims", "20");
    for args in [
        &["audit", "log"][..],
        &["--json", "audit", "log"],
        &["keys", "list"],
        &["datasets", "versions", "claims"],
        &["datasets", "list"],
        &["store", "ls"],
        &["audit", "verify"],
    ] {
        let o = closed_stdout(&hub, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A cut-over whose output nobody reads still completes.
    let target = format!("file://{}", dir.path().join("new-store").display());
    let o = closed_stdout(&hub, &["migrate", "cutover", "--to", &target]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(config(&hub).contains("new-store") && !config(&hub).contains("read_only"));
    ok(&shh(&hub, &["datasets", "verify", "claims"]));
}

#[test]
fn a_keystore_asking_for_too_much_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    let path = hub.join("keystore.json");
    let original = std::fs::read_to_string(&path).expect("keystore");
    for (field, value) in [
        ("m_cost_kib", 4_294_967_295u64),
        ("t_cost", 4_294_967_295),
        ("p_cost", 1_000_000),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&original).expect("json");
        v["kdf"][field] = value.into();
        std::fs::write(&path, serde_json::to_string(&v).expect("json")).expect("write");
        let started = Instant::now();
        let o = shh(&hub, &["datasets", "list"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("out of bounds"),
            "{field}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{field}: no work before refusing"
        );
    }
    let o = shh(&hub, &["init", "--kdf-memory-mib", "4000000"]);
    assert!(!o.status.success());
    std::fs::write(&path, original).expect("restore");
    ok(&shh(&hub, &["datasets", "list"]));
}

#[test]
fn a_cutover_killed_before_its_switch_is_undone_by_the_next_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    sample(&hub, "claims", "400000");
    let target = format!("file://{}", dir.path().join("new-store").display());
    let before = config(&hub);
    let mut child = spawn(
        &hub,
        PASS,
        &["migrate", "cutover", "--to", &target, "--bwlimit", "2M"],
    );
    kill_when(&mut child, "read-only", || {
        std::fs::read_to_string(hub.join("shh.toml")).is_ok_and(|c| c.contains("read_only = true"))
    });
    assert!(config(&hub).contains("[switch]"), "{}", config(&hub));
    // The next command finds the switch its process left and undoes it.
    let o = shh(&hub, &["--json", "datasets", "list"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(config(&hub), before, "back on the source, writable");
    let log = ok(&shh(&hub, &["audit", "log", "--action", "migrate.cutover"]));
    assert!(
        log.contains("FAILED") && log.contains("interrupted"),
        "{log}"
    );
    sample(&hub, "after", "10");
    // A re-run completes, and ends writable on the target.
    ok(&shh(&hub, &["migrate", "cutover", "--to", &target]));
    let c = config(&hub);
    assert!(
        c.contains("new-store") && !c.contains("read_only") && !c.contains("[switch]"),
        "{c}"
    );
    sample(&hub, "on-target", "10");
    ok(&shh(&hub, &["migrate", "finalize"]));
    sample(&hub, "finalized", "10");
    assert!(!config(&hub).contains("read_only"));
    let v = ok(&shh(&hub, &["audit", "verify"]));
    assert!(v.contains("OK"), "{v}");
}

#[test]
fn mirror_and_finalize_wait_for_the_processes_that_have_the_hub_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    sample(&hub, "claims", "10");
    let lock = || std::fs::File::open(hub.join("hub.lock")).expect("lock");
    let mirror = format!("file://{}", dir.path().join("mirror").display());
    let other = lock();
    other
        .lock_shared()
        .expect("another process has the hub open");
    let before = config(&hub);
    let o = shh(&hub, &["migrate", "mirror", "--to", &mirror, "--wait", "1"]);
    assert!(
        !o.status.success(),
        "a process writing without the mirror would be missed"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("busy"));
    assert_eq!(config(&hub), before);
    drop(other);
    ok(&shh(&hub, &["migrate", "mirror", "--to", &mirror]));
    assert!(config(&hub).contains("mirror"));
    sample(&hub, "mirrored", "10");
    assert!(
        files_under(&dir.path().join("mirror"))
            .iter()
            .any(|p| p.to_string_lossy().contains("mirrored"))
    );

    let target = format!("file://{}", dir.path().join("target").display());
    ok(&shh(&hub, &["migrate", "mirror", "--off"]));
    ok(&shh(&hub, &["migrate", "cutover", "--to", &target]));
    let other = lock();
    other.lock_shared().expect("shared");
    let o = shh(&hub, &["migrate", "finalize", "--wait", "1"]);
    assert!(!o.status.success());
    drop(other);
    ok(&shh(&hub, &["migrate", "finalize"]));
    assert!(!config(&hub).contains("[migration]"));
}

#[test]
fn of_two_passwd_at_once_one_wins_and_nothing_that_succeeded_is_lost() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = dir.path().join("hub");
    // A key derivation slow enough for the two to overlap.
    ok(&shh(
        &hub,
        &["init", "--kdf-memory-mib", "64", "--kdf-passes", "2"],
    ));
    let mut current = PASS.to_owned();
    for round in 0..4 {
        let news = [format!("round {round} a"), format!("round {round} b")];
        let children: Vec<_> = news
            .iter()
            .map(|n| {
                Command::new(env!("CARGO_BIN_EXE_shh"))
                    .arg("--hub")
                    .arg(&hub)
                    .args(["keys", "passwd"])
                    .env("SHH_PASSPHRASE", &current)
                    .env("SHH_NEW_PASSPHRASE", n)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait"))
            .collect();
        let won: Vec<usize> = (0..2).filter(|&i| outs[i].status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one wins: {outs:?}");
        let lost = &outs[1 - won[0]];
        let err = String::from_utf8_lossy(&lost.stderr);
        assert!(
            err.contains("changed by another process") || err.contains("wrong passphrase"),
            "round {round}: {err}"
        );
        current = news[won[0]].clone();
        let o = shh_env(&hub, &current, &[], &["keys", "list"]);
        assert!(
            o.status.success(),
            "round {round}: the winner's passphrase opens the hub"
        );
    }
}

#[test]
fn an_interrupted_init_is_completed_by_the_next_or_named_for_removal() {
    let dir = tempfile::tempdir().expect("tmp");
    // An empty passphrase changes nothing on disk.
    let hub = dir.path().join("a").join("hub");
    let o = shh_env(&hub, "", &[], &["init", "--insecure-fast-kdf"]);
    assert!(!o.status.success());
    assert!(!dir.path().join("a").exists(), "nothing created");

    let staged = |parent: &Path| -> Option<PathBuf> {
        std::fs::read_dir(parent)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".hub.shh-init-"))
            })
    };
    let parent = dir.path().join("b");
    std::fs::create_dir_all(&parent).expect("mkdir");
    let hub = parent.join("hub");
    // Killed once its staging directory is complete, before the rename (the key derivations
    // that follow take long enough to land in).
    let mut child = spawn(
        &hub,
        PASS,
        &["init", "--kdf-memory-mib", "64", "--kdf-passes", "3"],
    );
    kill_when(&mut child, "staged", || {
        staged(&parent).is_some_and(|s| s.join("shh.toml").exists())
    });
    assert!(
        !hub.exists() || !hub.join("shh.toml").exists(),
        "not a hub yet"
    );
    let o = shh(&hub, &["datasets", "list"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no hub"));
    // Another passphrase: told exactly what to remove.
    let o = shh_env(&hub, "another", &[], &["init", "--insecure-fast-kdf"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(".hub.shh-init-") && err.contains("remove"),
        "{err}"
    );
    // The same: completed, with its hub.init event once.
    let id =
        std::fs::read_to_string(staged(&parent).expect("staged").join("shh.toml")).expect("cfg");
    ok(&shh(&hub, &["init", "--insecure-fast-kdf"]));
    let cfg = config(&hub);
    let hub_id = |c: &str| {
        c.lines()
            .find(|l| l.starts_with("hub_id"))
            .map(str::to_owned)
    };
    assert_eq!(hub_id(&cfg), hub_id(&id), "the interrupted hub, completed");
    assert!(staged(&parent).is_none());
    let log = ok(&shh(&hub, &["audit", "log"]));
    assert_eq!(log.matches("hub.init").count(), 1, "{log}");

    // Killed before anything was staged: the next init starts afresh.
    let parent = dir.path().join("c");
    std::fs::create_dir_all(&parent).expect("mkdir");
    let hub = parent.join("hub");
    let mut child = spawn(
        &hub,
        PASS,
        &["init", "--kdf-memory-mib", "64", "--kdf-passes", "3"],
    );
    kill_when(&mut child, "staging", || staged(&parent).is_some());
    ok(&shh(&hub, &["init", "--insecure-fast-kdf"]));
    assert!(staged(&parent).is_none());

    // A half-made hub in place (files without shh.toml) is named file by file.
    let half = dir.path().join("d");
    std::fs::create_dir_all(&half).expect("mkdir");
    std::fs::write(half.join("keystore.json"), "{}").expect("w");
    let o = shh(&half, &["init", "--insecure-fast-kdf"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("half-made") && err.contains("keystore.json"),
        "{err}"
    );
}

#[test]
fn a_rerun_removes_what_a_killed_migration_left_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    let blobs = hub.join("store").join("blobs");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..4 {
        let data: Vec<u8> = (0..(12 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(blobs.join(format!("big-{i}.bin")), data).expect("blob");
    }
    let dest = dir.path().join("dest");
    std::fs::create_dir_all(dest.join("blobs")).expect("mkdir");
    // Someone else's staging file: not ours to remove.
    std::fs::write(dest.join("blobs").join("theirs.bin#1"), b"keep me").expect("w");
    let to = format!("file://{}", dest.display());
    let staging = || {
        files_under(&dest)
            .into_iter()
            .filter(|p| {
                let n = p.to_string_lossy();
                n.contains(".bin#") && !n.contains("theirs")
            })
            .count()
    };
    let mut child = spawn(
        &hub,
        PASS,
        &[
            "migrate",
            "run",
            "--to",
            &to,
            "--bwlimit",
            "8M",
            "--transfers",
            "2",
        ],
    );
    kill_when(&mut child, "staging files", || staging() > 0);
    assert!(staging() > 0, "a killed run leaves its staging files");
    let r = common::json(&shh(&hub, &["--json", "migrate", "run", "--to", &to]));
    assert!(
        r["stats"]["staging_removed"]["objects"].as_u64() > Some(0),
        "{r}"
    );
    assert_eq!(staging(), 0, "{:?}", files_under(&dest));
    assert!(
        dest.join("blobs").join("theirs.bin#1").exists(),
        "not ours: untouched"
    );
    for i in 0..4 {
        let name = format!("big-{i}.bin");
        assert_eq!(
            std::fs::read(dest.join("blobs").join(&name)).expect("copied"),
            std::fs::read(blobs.join(&name)).expect("source"),
            "{name}"
        );
    }
}
