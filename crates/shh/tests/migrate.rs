//! `shh migrate` against real servers on 127.0.0.1: file → S3 (moto), S3 → file, Azurite → S3,
//! with the faults a real migration meets: `kill -9` half-way, a proxy that drops
//! connections, a corrupted or truncated object at the destination, a destination the
//! residency policy refuses, and the keys real buckets hold (non-ASCII names, folder markers).

mod common;

use common::{json, ok, server, shh_env};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const PASS: &str = "migrate test passphrase";
const MIB: usize = 1024 * 1024;

fn shh(hub: &Path, args: &[&str]) -> Output {
    shh_env(hub, PASS, &[], args)
}

/// A fresh sub-prefix of the server URL, optionally through another endpoint port (a proxy).
fn fresh(url: &str, tag: &str, port: Option<u16>) -> String {
    let url = common::fresh(url, tag);
    match port {
        None => url,
        Some(p) => {
            let (head, tail) = url
                .split_once("endpoint=http://127.0.0.1:")
                .expect("endpoint");
            let rest = tail.find('&').map(|i| &tail[i..]).unwrap_or("");
            format!("{head}endpoint=http://127.0.0.1:{p}{rest}")
        }
    }
}

fn endpoint_port(url: &str) -> u16 {
    let tail = url
        .split("endpoint=http://127.0.0.1:")
        .nth(1)
        .expect("endpoint");
    let end = tail
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(tail.len());
    tail[..end].parse().expect("port")
}

/// A TCP proxy on 127.0.0.1 that counts the bytes clients send, and can drop every `k`-th
/// connection after it forwarded `after` bytes upstream (with a budget, only the first that
/// many connections to get that far).
struct Proxy {
    port: u16,
    up: Arc<AtomicU64>,
    conns: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
}

fn proxy(target: u16, drop_every: Option<(u64, u64)>) -> Proxy {
    proxy_with(target, drop_every, None)
}

fn proxy_with(target: u16, drop_every: Option<(u64, u64)>, budget: Option<u64>) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let up = Arc::new(AtomicU64::new(0));
    let conns = Arc::new(AtomicU64::new(0));
    let cuts = Arc::new(AtomicU64::new(0));
    let (up2, conns2, cuts2) = (up.clone(), conns.clone(), cuts.clone());
    let budget = budget.map(|b| Arc::new(AtomicU64::new(b)));
    std::thread::spawn(move || {
        // Lives as long as the test process; each connection is bounded by its peers.
        for c in l.incoming() {
            let Ok(client) = c else { continue };
            let n = conns2.fetch_add(1, Ordering::SeqCst) + 1;
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let cut = drop_every.and_then(|(k, after)| (n % k == 0).then_some(after));
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (up, cuts, budget) = (up2.clone(), cuts2.clone(), budget.clone());
            std::thread::spawn(move || {
                if pump(client, server, Some(up), cut, budget) {
                    cuts.fetch_add(1, Ordering::SeqCst);
                }
            });
            std::thread::spawn(move || pump(s2, c2, None, None, None));
        }
    });
    Proxy {
        port,
        up,
        conns,
        cuts,
    }
}

/// Copies until EOF; true if the connection was cut. With a `budget`, a connection passing
/// the limit is cut only while the budget lasts (each cut spends one).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    count: Option<Arc<AtomicU64>>,
    mut cut: Option<u64>,
    budget: Option<Arc<AtomicU64>>,
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut.is_some_and(|limit| sent + n as u64 > limit)
            && budget.as_ref().is_some_and(|b| {
                b.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_err()
            })
        {
            cut = None;
        }
        if cut.is_some_and(|limit| sent + n as u64 > limit) {
            // Mid-request: the connection just dies.
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return true;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if let Some(c) = &count {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    false
}

/// A hub on local disk with a dataset, plus `big` raw objects of `big_mib` MiB (sent part by
/// part) and `small` small ones. Returns the hub and its store directory.
fn hub_with_data(dir: &Path, allow: &[&str], big: usize, big_mib: usize, small: usize) -> PathBuf {
    let hub = dir.join("hub");
    let mut args = vec!["init", "--insecure-fast-kdf"];
    for a in allow {
        args.push("--allow");
        args.push(a);
    }
    ok(&shh(&hub, &args));
    ok(&shh(
        &hub,
        &[
            "debug",
            "write-sample",
            "--dataset",
            "claims",
            "--rows",
            "20000",
            "--rows-per-file",
            "5000",
        ],
    ));
    let blobs = hub.join("store").join("blobs");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    // One MiB of noise, stamped per MiB so no two MiB (and no two parts) are alike; quick even
    // in an unoptimized test build.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let block: Vec<u8> = (0..MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let object = |id: u64, len: usize| {
        let mut out = Vec::with_capacity(len);
        let mut n = 0u64;
        while out.len() < len {
            let start = out.len();
            out.extend_from_slice(&block[..MIB.min(len - start)]);
            let stamp = [id.to_le_bytes(), n.to_le_bytes()].concat();
            let end = (start + stamp.len()).min(out.len());
            out[start..end].copy_from_slice(&stamp[..end - start]);
            n += 1;
        }
        out
    };
    for i in 0..big {
        let data = object(i as u64, big_mib * MIB + 12345);
        std::fs::write(blobs.join(format!("big-{i}.bin")), data).expect("big");
    }
    for i in 0..small {
        let data = object(1000 + i as u64, 1000 + i * 37);
        std::fs::write(blobs.join(format!("small-{i:03}.bin")), data).expect("small");
    }
    hub
}

fn store_bytes(hub: &Path) -> u64 {
    common::files_under(&hub.join("store"))
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

const PARTS: [&str; 4] = ["--multipart-threshold", "6M", "--part-size", "5M"];

/// `shh migrate verify --to URL [--deep] --out DIR`, as JSON.
fn verified(hub: &Path, to: &str, deep: bool, out: &Path) -> serde_json::Value {
    let out = out.to_str().expect("utf8");
    let mut args = vec!["--json", "migrate", "verify", "--to", to];
    if deep {
        args.push("--deep");
    }
    args.extend(["--out", out]);
    json(&shh(hub, &args))
}

/// `shh migrate plan --to URL --out PLAN`, as JSON.
fn plan_to(hub: &Path, to: &str, plan: &Path) -> serde_json::Value {
    json(&shh(
        hub,
        &[
            "--json",
            "migrate",
            "plan",
            "--to",
            to,
            "--out",
            plan.to_str().expect("utf8"),
        ],
    ))
}

/// s3s-fs checks the SHA-256 of every signed body and the signature of every chunk, like
/// AWS: the probe finds both by sending a body with a wrong signed hash and a chunk changed
/// after signing (each refused, nothing stored), and the run then relies on them instead of
/// reading objects back, for objects streamed in signed chunks whole or part by part. The
/// end-to-end `verify` against the manifests still passes; `--verify readback` still reads
/// everything. A streamed upload whose connection is cut is sent again.
#[test]
fn a_target_that_checks_payload_hashes_is_not_read_back() {
    let Some(s3s) = server("SHH_TEST_S3_SIGNED_URL") else {
        return;
    };
    // The first connection to carry 2 MiB dies: that is the streamed 9 MiB object's.
    let px = proxy_with(endpoint_port(&s3s), Some((1, 2 * MIB as u64)), Some(1));
    let flaky = fresh(&s3s, "cut-stream", Some(px.port));
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[&s3s, &flaky], 1, 9, 20);
    let to = fresh(&s3s, "checked", None);
    let plan = dir.path().join("plan.json");
    let h = plan_to(&hub, &to, &plan);
    let caps = &h["capabilities"]["to"];
    assert_eq!(caps["payload_sha256_checked"], true, "{h}");
    assert_eq!(caps["chunked_uploads"], true, "{h}");
    assert_eq!(caps["chunk_signatures_checked"], true, "{h}");
    let mut args = vec!["--json", "migrate", "run", "--to", &to];
    args.extend(PARTS);
    let r = json(&shh(&hub, &args));
    assert!(r["stats"]["copied"]["objects"].as_u64() >= Some(20), "{r}");
    assert_eq!(r["stats"]["bytes_read_back"], 0, "nothing read back: {r}");
    // The 9 MiB object went part by part, each part streamed in signed chunks.
    assert_eq!(r["stats"]["chunk_signed"]["objects"], 1, "{r}");
    assert!(
        r["stats"]["verification"]
            .as_str()
            .is_some_and(|v| v.contains("SHA-256")),
        "{r}"
    );
    let v = json(&shh(
        &hub,
        &["--json", "migrate", "verify", "--to", &to, "--deep"],
    ));
    assert_eq!(v["summary"]["failed"], 0, "{v}");

    // Below the multipart threshold the 9 MiB objects stream in signed chunks. Some names need
    // encoding in a URL, and some are ones `object_store` would percent-encode when made from a
    // string (non-ASCII, `~ % ? [`): each must reach the destination under its own name, and
    // come back from it under that name.
    let blobs = hub.join("store").join("blobs");
    let odd = [
        blobs.join("odd name +=,;.bin"),
        blobs.join("données é~%?[1].bin"),
    ];
    let small = blobs.join("petit é~%.bin");
    for o in &odd {
        std::fs::copy(blobs.join("big-0.bin"), o).expect("copy");
    }
    std::fs::write(&small, b"small").expect("write");
    let again = fresh(&s3s, "readback", None);
    let args = [
        "--json", "migrate", "run", "--to", &again, "--verify", "readback",
    ];
    let r = json(&shh(&hub, &args));
    let back = dir.path().join("back");
    let from_s3 = json(&shh(
        &hub,
        &[
            "--json",
            "migrate",
            "run",
            "--from",
            &again,
            "--to",
            &format!("file://{}", back.display()),
        ],
    ));
    assert_eq!(
        from_s3["stats"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{from_s3}"
    );
    for o in odd.iter().chain([&small]) {
        let name = o.file_name().expect("name");
        let came_back = std::fs::read(back.join("blobs").join(name)).expect("same name back");
        assert!(came_back == std::fs::read(o).expect("source"), "{name:?}");
        std::fs::remove_file(o).expect("remove");
    }
    assert_eq!(r["stats"]["chunk_signed"]["objects"], 3, "{r}");
    assert_eq!(
        r["stats"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{r}"
    );
    assert!(
        r["stats"]["bytes_read_back"].as_u64() >= r["stats"]["bytes_sent"].as_u64(),
        "--verify readback reads every object back: {r}"
    );

    let r = json(&shh(&hub, &["--json", "migrate", "run", "--to", &flaky]));
    assert_eq!(px.cuts.load(Ordering::SeqCst), 1, "the stream was cut");
    assert_eq!(
        r["stats"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{r}"
    );
    assert_eq!(r["stats"]["chunk_signed"]["objects"], 1, "{r}");
    assert!(r["stats"]["retries"].as_u64() >= Some(1), "{r}");
    assert_eq!(r["stats"]["bytes_read_back"], 0, "{r}");
    let v = json(&shh(
        &hub,
        &["--json", "migrate", "verify", "--to", &flaky, "--deep"],
    ));
    assert_eq!(v["summary"]["failed"], 0, "{v}");
}

#[test]
fn file_to_s3_and_back_verified_end_to_end_and_damage_is_named() {
    let Some(s3) = server("SHH_TEST_S3_URL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[&s3], 2, 7, 30);
    let to = fresh(&s3, "mig", None);
    let plan = dir.path().join("plan.json");
    let h = plan_to(&hub, &to, &plan);
    assert_eq!(h["summary"]["same"]["objects"], 0, "{h}");
    for (capability, found, why) in [
        ("conditional_create", true, "moto refuses a second create"),
        (
            "payload_sha256_checked",
            false,
            "moto stores a body whose signed SHA-256 is wrong, so shh must read back",
        ),
        ("chunked_uploads", true, "moto decodes chunk-signed uploads"),
        (
            "chunk_signatures_checked",
            false,
            "moto stores a chunk changed after signing",
        ),
    ] {
        assert_eq!(h["capabilities"]["to"][capability], found, "{why}: {h}");
    }
    assert!(h["plan_hash"].as_str().is_some_and(|s| s.len() == 64));
    let copies = h["summary"]["copy"]["objects"].as_u64().expect("copies");

    let mut args = vec![
        "--json",
        "migrate",
        "run",
        "--plan",
        plan.to_str().expect("utf8"),
    ];
    args.extend(PARTS);
    let r = json(&shh(&hub, &args));
    assert_eq!(
        r["stats"]["copied"]["objects"].as_u64(),
        Some(copies),
        "{r}"
    );
    assert_eq!(
        r["stats"]["bytes_sent"].as_u64(),
        h["summary"]["copy"]["bytes"].as_u64()
    );
    assert!(
        r["stats"]["bytes_read_back"].as_u64() >= r["stats"]["bytes_sent"].as_u64(),
        "every object read back: {r}"
    );

    // A re-run finds everything there and sends only the audit log's new segment and head
    // (the first run's own event).
    let again = json(&shh(&hub, &["--json", "migrate", "run", "--to", &to]));
    assert_eq!(
        again["stats"]["same"]["objects"].as_u64(),
        Some(copies),
        "{again}"
    );
    assert_eq!(again["stats"]["copied"]["objects"], 2, "{again}");

    let rep = dir.path().join("report-s3");
    let v = verified(&hub, &to, true, &rep);
    assert_eq!(v["summary"]["failed"], 0, "{v}");
    assert!(
        v["summary"]["objects"].as_u64() >= Some(3),
        "data files, a manifest, the audit log: {v}"
    );
    let pubkey = dir.path().join("audit.pub");
    std::fs::write(&pubkey, ok(&shh(&hub, &["audit", "pubkey"]))).expect("pubkey");
    ok(&shh(
        &hub,
        &[
            "migrate",
            "check-report",
            rep.to_str().expect("utf8"),
            "--pubkey",
            pubkey.to_str().expect("utf8"),
        ],
    ));

    // S3 → file: the copy of the copy still matches the manifests.
    let back = dir.path().join("back");
    let back_url = format!("file://{}", back.display());
    let mut args = vec!["migrate", "run", "--from", &to, "--to", &back_url];
    args.extend(PARTS);
    ok(&shh(&hub, &args));
    let deep = dir.path().join("report-back");
    ok(&shh(
        &hub,
        &[
            "migrate",
            "verify",
            "--to",
            &back_url,
            "--deep",
            "--out",
            deep.to_str().expect("utf8"),
        ],
    ));

    // One data object flipped, another truncated: verify names them and exits non-zero.
    let data: Vec<PathBuf> = common::files_under(&back)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/data/"))
        .collect();
    assert!(data.len() >= 2, "{data:?}");
    let mut bytes = std::fs::read(&data[0]).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&data[0], bytes).expect("flip");
    let len = std::fs::metadata(&data[1]).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data[1])
        .expect("open")
        .set_len(len - 10)
        .expect("truncate");
    let bad = shh(
        &hub,
        &[
            "migrate",
            "verify",
            "--to",
            &back_url,
            "--out",
            dir.path().join("bad").to_str().expect("utf8"),
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    let name = |p: &Path| p.file_name().expect("name").to_string_lossy().into_owned();
    assert!(
        err.contains("first bad object")
            && (err.contains(&name(&data[0])) || err.contains(&name(&data[1]))),
        "{err}"
    );
    let lines =
        std::fs::read_to_string(dir.path().join("bad").join("objects.jsonl")).expect("objects");
    for p in &data[..2] {
        let line = lines
            .lines()
            .find(|l| l.contains(&name(p)))
            .expect("reported");
        assert!(line.contains("\"ok\":false"), "{line}");
    }
    assert!(
        lines.contains("size ") && lines.contains("BLAKE3 differs"),
        "{lines}"
    );
}

#[test]
fn azurite_to_s3() {
    let (Some(az), Some(s3)) = (server("SHH_TEST_AZURE_URL"), server("SHH_TEST_S3_URL")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let hub = dir.path().join("hub");
    let source = fresh(&az, "mig-src", None);
    ok(&shh(
        &hub,
        &[
            "init",
            "--insecure-fast-kdf",
            "--store",
            &source,
            "--allow",
            &s3,
        ],
    ));
    ok(&shh(
        &hub,
        &[
            "debug",
            "write-sample",
            "--dataset",
            "claims",
            "--rows",
            "20000",
            "--rows-per-file",
            "5000",
        ],
    ));
    let to = fresh(&s3, "from-azure", None);
    let r = json(&shh(&hub, &["--json", "migrate", "run", "--to", &to]));
    assert!(r["stats"]["copied"]["objects"].as_u64() >= Some(5), "{r}");
    assert_eq!(
        r["stats"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{r}"
    );
    let v = verified(&hub, &to, true, &dir.path().join("rep"));
    assert_eq!(v["summary"]["failed"], 0, "{v}");

    // Cut over to S3, write there (dual-written to Azure), roll back, nothing lost.
    ok(&shh(
        &hub,
        &[
            "migrate",
            "cutover",
            "--to",
            &to,
            "--out",
            dir.path().join("cut").to_str().expect("utf8"),
        ],
    ));
    let cfg = std::fs::read_to_string(hub.join("shh.toml")).expect("config");
    assert!(
        cfg.contains("[migration]") && cfg.contains(&format!("mirror = \"{source}\"")),
        "{cfg}"
    );
    ok(&shh(
        &hub,
        &[
            "debug",
            "write-sample",
            "--dataset",
            "after",
            "--rows",
            "100",
        ],
    ));
    let cmp = json(&shh(
        &hub,
        &["--json", "migrate", "compare", "--sample", "100"],
    ));
    assert_eq!(
        (
            cmp["missing"].as_array().map(Vec::len),
            cmp["differ"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0)),
        "{cmp}"
    );
    ok(&shh(&hub, &["migrate", "rollback"]));
    ok(&shh(&hub, &["datasets", "verify", "after"]));
    let a = json(&shh(&hub, &["--json", "audit", "verify"]));
    assert_eq!(a["ok"], true, "{a}");
}

#[test]
fn kill_nine_half_way_then_rerun_sends_little_again() {
    let Some(s3) = server("SHH_TEST_S3_URL") else {
        return;
    };
    let px = proxy(endpoint_port(&s3), None);
    let to = fresh(&s3, "kill", Some(px.port));
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[&to], 8, 24, 200);
    let total = store_bytes(&hub);

    let mut child = Command::new(env!("CARGO_BIN_EXE_shh"))
        .arg("--hub")
        .arg(&hub)
        // Bytes in flight (sent, not yet acknowledged) are lost by a kill: at most
        // transfers × part-transfers × part size = 10 MiB of the 192 MiB here.
        .args([
            "migrate",
            "run",
            "--to",
            &to,
            "--bwlimit",
            "40M",
            "--transfers",
            "2",
            "--part-transfers",
            "1",
        ])
        .args(PARTS)
        .env("SHH_PASSPHRASE", PASS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Past half-way, so the kill lands inside large objects' uploads (at exactly half, it would
    // fall between the fourth and fifth of the eight).
    common::kill_when(&mut child, "half-way", || {
        px.up.load(Ordering::SeqCst) >= total * 3 / 5
    });
    let first = px.up.load(Ordering::SeqCst);

    let r = json(&shh(&hub, &{
        let mut a = vec!["--json", "migrate", "run", "--to", &to];
        a.extend(PARTS);
        a
    }));
    let second = px.up.load(Ordering::SeqCst) - first;
    assert!(
        r["stats"]["parts_resumed"].as_u64() > Some(0),
        "unfinished uploads resumed: {r}"
    );
    // Every byte sent twice is waste; HTTP headers add a little to both runs.
    let resent = (first + second).saturating_sub(total);
    assert!(
        resent * 10 <= total,
        "re-sent {resent} of {total} bytes (first run {first}, second {second}): {r}"
    );
    let v = verified(&hub, &to, false, &dir.path().join("rep"));
    assert_eq!(v["summary"]["failed"], 0, "{v}");
}

#[test]
fn dropped_connections_are_retried_and_a_refused_destination_gets_no_byte() {
    let Some(s3) = server("SHH_TEST_S3_URL") else {
        return;
    };
    // The first four connections to carry 200 KiB die there: mid-upload for parts and large
    // reads (which connections carry them depends on the pools, so no k-th rule is sure to).
    let px = proxy_with(endpoint_port(&s3), Some((1, 200 * 1024)), Some(4));
    let to = fresh(&s3, "flaky", Some(px.port));
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[&to], 2, 9, 40);
    let mut args = vec!["--json", "migrate", "run", "--to", &to];
    args.extend(PARTS);
    let r = json(&shh(&hub, &args));
    assert_eq!(
        r["stats"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{r}"
    );
    // The same through the same proxy with the large objects streamed in signed chunks
    // (moto does not check them: they are read back).
    let streamed = fresh(&s3, "flaky-streamed", Some(px.port));
    let r = json(&shh(&hub, &["--json", "migrate", "run", "--to", &streamed]));
    assert_eq!(
        r["stats"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{r}"
    );
    assert_eq!(r["stats"]["chunk_signed"]["objects"], 2, "{r}");
    assert!(
        r["stats"]["bytes_read_back"].as_u64() >= r["stats"]["chunk_signed"]["bytes"].as_u64(),
        "{r}"
    );
    assert!(
        px.cuts.load(Ordering::SeqCst) > 0,
        "connections were cut mid-transfer"
    );
    let v = verified(&hub, &to, true, &dir.path().join("rep"));
    assert_eq!(v["summary"]["failed"], 0, "{v}");
    let v = json(&shh(
        &hub,
        &["--json", "migrate", "verify", "--to", &streamed, "--deep"],
    ));
    assert_eq!(v["summary"]["failed"], 0, "{v}");

    // A destination outside the residency policy: refused before any connection is made.
    let watch = proxy(endpoint_port(&s3), None);
    let elsewhere =
        fresh(&s3, "refused", Some(watch.port)).replace("region=us-east-1", "region=us-west-2");
    for args in [
        vec!["migrate", "run", "--to", elsewhere.as_str()],
        vec![
            "migrate",
            "plan",
            "--to",
            elsewhere.as_str(),
            "--out",
            "/dev/null",
        ],
        vec!["migrate", "cutover", "--to", elsewhere.as_str()],
    ] {
        let o = shh(&hub, &args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("residency") || err.contains("not allowed"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        watch.conns.load(Ordering::SeqCst),
        0,
        "no request reached the refused store"
    );
    let cfg = std::fs::read_to_string(hub.join("shh.toml")).expect("config");
    assert!(
        !cfg.contains("read_only") && !cfg.contains("[migration]"),
        "{cfg}"
    );
}

/// Two S3 services with different keys (moving between two S3 providers): the target URL names
/// a credential set (`creds=s3s`) whose keys come from `SHH_CREDS_S3S_*`, while the source uses
/// the default `AWS_*` keys, which s3s-fs would refuse. A credential set whose keys are missing
/// is an error naming the variable, never a fall-back to the default keys.
#[test]
fn s3_to_s3_with_different_keys_per_url() {
    let (Some(moto), Some(s3s)) = (server("SHH_TEST_S3_URL"), server("SHH_TEST_S3_SIGNED_URL"))
    else {
        return;
    };
    let key = std::env::var("SHH_TEST_S3S_KEY").expect("s3s key");
    let secret = std::env::var("SHH_TEST_S3S_SECRET").expect("s3s secret");
    let envs = [
        ("AWS_ACCESS_KEY_ID", "default-account"),
        ("AWS_SECRET_ACCESS_KEY", "default-secret"),
        ("SHH_CREDS_S3S_AWS_ACCESS_KEY_ID", key.as_str()),
        ("SHH_CREDS_S3S_AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let run = |hub: &Path, args: &[&str]| shh_env(hub, PASS, &envs, args);
    let dir = tempfile::tempdir().expect("tmp");
    let from = fresh(&moto, "keys-src", None);
    let to = format!("{}&creds=s3s", fresh(&s3s, "keys-dst", None));
    let hub = hub_with_data(dir.path(), &[&moto, &s3s], 1, 9, 10);
    ok(&run(&hub, &["migrate", "run", "--to", &from]));
    let r = json(&run(
        &hub,
        &["--json", "migrate", "run", "--from", &from, "--to", &to],
    ));
    assert_eq!(
        r["stats"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{r}"
    );
    assert!(r["stats"]["copied"]["objects"].as_u64() >= Some(10), "{r}");
    // Chunk-signed with the named keys, and checked by s3s-fs on receipt.
    assert_eq!(r["stats"]["chunk_signed"]["objects"], 1, "{r}");
    let v = json(&run(
        &hub,
        &["--json", "migrate", "verify", "--to", &to, "--deep"],
    ));
    assert_eq!(v["summary"]["failed"], 0, "{v}");

    // Without the credential set, the default keys reach s3s-fs and are refused.
    let plain = to.replace("&creds=s3s", "");
    let o = run(&hub, &["migrate", "verify", "--to", &plain]);
    assert!(
        !o.status.success(),
        "the default keys must not work at s3s-fs"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("403"));
    // A set whose keys are not in the environment is refused before any request.
    let missing = to.replace("creds=s3s", "creds=nosuch");
    let o = run(&hub, &["migrate", "verify", "--to", &missing]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("SHH_CREDS_NOSUCH_AWS_ACCESS_KEY_ID"),
        "names the missing variable: {err}"
    );
}

/// A cut-over must be alone with the hub: while another process has it open (here the test
/// holds the shared lock every shh process holds), the cut-over gives up after `--wait` and
/// leaves the hub as it was. While a switch holds the hub, opening it fails at once and says
/// why. Alone, the cut-over goes through.
#[test]
fn a_cutover_waits_for_other_processes_and_keeps_them_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[], 0, 0, 3);
    let target = format!("file://{}", dir.path().join("new-store").display());
    let config = || std::fs::read_to_string(hub.join("shh.toml")).expect("config");
    let before = config();
    let lock = || std::fs::File::open(hub.join("hub.lock")).expect("lock file");

    let other = lock();
    other.lock_shared().expect("shared");
    let o = shh(
        &hub,
        &["migrate", "cutover", "--to", &target, "--wait", "1"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("other shh processes have this hub open"),
        "{err}"
    );
    assert_eq!(config(), before, "nothing changed");
    drop(other);

    let switching = lock();
    switching.lock().expect("exclusive");
    let o = shh(&hub, &["datasets", "list"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("switching this hub's store"), "{err}");
    drop(switching);

    ok(&shh(&hub, &["migrate", "cutover", "--to", &target]));
    assert!(config().contains("new-store"), "{}", config());
    ok(&shh(&hub, &["datasets", "list"]));
}

/// Objects written at the destination after the plan was made (by another run) are found by
/// the create-only writes, whole or streamed in signed chunks, then read back and compared
/// instead of overwritten; one that differs is a conflict, named, and left alone.
#[test]
fn objects_written_after_the_plan_are_compared_not_overwritten() {
    let Some(s3) = server("SHH_TEST_S3_URL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[&s3], 1, 9, 5);
    let to = fresh(&s3, "meanwhile", None);
    let plan = dir.path().join("plan.json");
    let h = plan_to(&hub, &to, &plan);
    assert_eq!(h["capabilities"]["to"]["conditional_create"], true, "{h}");
    let copies = h["summary"]["copy"]["objects"].as_u64().expect("copies");
    // Another run copies everything meanwhile, then one small object is changed there.
    ok(&shh(&hub, &["migrate", "run", "--to", &to]));
    let (base, query) = to.split_once('?').expect("query");
    let blobs = format!("{base}/blobs?{query}");
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("small-000.bin"), b"not what the hub holds").expect("write");
    let other = format!("file://{}", other.display());
    ok(&shh(
        &hub,
        &["migrate", "run", "--from", &other, "--to", &blobs],
    ));

    let o = shh(
        &hub,
        &[
            "--json",
            "migrate",
            "run",
            "--plan",
            plan.to_str().expect("utf8"),
        ],
    );
    assert!(!o.status.success(), "a conflict fails the run");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    let failures = r["stats"]["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{r}");
    assert!(
        failures[0]["path"] == "blobs/small-000.bin"
            && failures[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("not overwritten")),
        "{r}"
    );
    assert_eq!(
        r["stats"]["already_there"]["objects"].as_u64(),
        Some(copies - 1),
        "{r}"
    );
    assert_eq!(r["stats"]["chunk_signed"]["objects"], 0, "{r}");
    assert_eq!(r["stats"]["bytes_sent"], 0, "{r}");
}

/// A folder marker in an S3 source (an empty key ending in `/`, as cloud consoles make) lists
/// without its slash and cannot be read: it is counted and named, the run does not fail, and
/// the folder's objects arrive.
#[test]
fn folder_markers_in_an_s3_source_do_not_fail_the_run() {
    let Some(s3) = server("SHH_TEST_S3_URL") else {
        return;
    };
    let src = fresh(&s3, "markers", None);
    let (bucket_prefix, _) = src
        .trim_start_matches("s3://")
        .split_once('?')
        .expect("query");
    let port = endpoint_port(&src);
    raw_put(port, &format!("/{bucket_prefix}/folder/"), b"");
    raw_put(
        port,
        &format!("/{bucket_prefix}/folder/inside.bin"),
        b"inside",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let hub = dir.path().join("hub");
    ok(&shh(&hub, &["init", "--insecure-fast-kdf", "--allow", &s3]));
    let dst = dir.path().join("dst");
    let to = format!("file://{}", dst.display());
    let out = shh(
        &hub,
        &["--json", "migrate", "run", "--from", &src, "--to", &to],
    );
    let r = json(&out);
    assert!(out.status.success(), "{r}");
    assert_eq!(r["stats"]["empty_gone"]["objects"], 1, "{r}");
    assert_eq!(r["stats"]["empty_gone_names"][0], "folder", "{r}");
    assert_eq!(r["stats"]["copied"]["objects"], 1, "{r}");
    assert_eq!(
        std::fs::read(dst.join("folder").join("inside.bin")).expect("inside"),
        b"inside"
    );
}

/// An unsigned PUT straight to the S3 test server (moto accepts them), for keys `object_store`
/// cannot write.
fn raw_put(port: u16, path: &str, body: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("body");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    assert!(resp.contains(" 200 "), "PUT {path}: {resp}");
}

/// Proxies are part of the residency decision: the environment's (`HTTP_PROXY`,
/// `HTTPS_PROXY`, `ALL_PROXY`, lower case too) are never used, so a request to an allowed
/// endpoint goes to that endpoint and never to an address nobody allowed; the one proxy the
/// hub's configuration names (`init --proxy`) carries every request to a remote store, and
/// plans and audit events name it.
#[test]
fn the_environments_proxies_are_ignored_and_the_configured_one_is_used() {
    let Some(s3) = server("SHH_TEST_S3_URL") else {
        return;
    };
    let trap = proxy(endpoint_port(&s3), None);
    let env_proxy = format!("http://127.0.0.1:{}", trap.port);
    let envs: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k, env_proxy.as_str()))
    .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let to = fresh(&s3, "envproxy", None);
    let hub = hub_with_data(dir.path(), &[&to], 0, 0, 5);
    let r = json(&shh_env(
        &hub,
        PASS,
        &envs,
        &["--json", "migrate", "run", "--to", &to],
    ));
    assert!(r["stats"]["copied"]["objects"].as_u64() > Some(0), "{r}");
    assert_eq!(
        trap.conns.load(Ordering::SeqCst),
        0,
        "a proxy from the environment was used"
    );

    // The configured proxy (here a relay to the S3 server) carries the requests.
    let relay = proxy(endpoint_port(&s3), None);
    let via = format!("http://127.0.0.1:{}", relay.port);
    let dir2 = tempfile::tempdir().expect("tmp");
    let hub2 = dir2.path().join("hub");
    let to2 = fresh(&s3, "cfgproxy", None);
    ok(&shh(
        &hub2,
        &[
            "init",
            "--insecure-fast-kdf",
            "--allow",
            &to2,
            "--proxy",
            &via,
        ],
    ));
    ok(&shh(
        &hub2,
        &[
            "debug",
            "write-sample",
            "--dataset",
            "claims",
            "--rows",
            "100",
        ],
    ));
    let plan = dir2.path().join("plan.json");
    let p = plan_to(&hub2, &to2, &plan);
    assert_eq!(p["proxy"], serde_json::json!(via), "{p}");
    let r = json(&shh_env(
        &hub2,
        PASS,
        &envs,
        &[
            "--json",
            "migrate",
            "run",
            "--plan",
            plan.to_str().expect("p"),
        ],
    ));
    assert!(r["stats"]["copied"]["objects"].as_u64() > Some(0), "{r}");
    assert!(
        relay.conns.load(Ordering::SeqCst) > 0,
        "the configured proxy carried nothing"
    );
    assert!(relay.up.load(Ordering::SeqCst) > 1000);
    assert_eq!(trap.conns.load(Ordering::SeqCst), 0);
    let events = json(&shh(
        &hub2,
        &["--json", "audit", "log", "--action", "migrate.run"],
    ));
    assert_eq!(
        events[0]["details"]["proxy"],
        serde_json::json!(via),
        "{events}"
    );
    // A proxy that is not an address is refused at init.
    let o = shh(
        &dir2.path().join("other"),
        &[
            "init",
            "--insecure-fast-kdf",
            "--proxy",
            "socks5://127.0.0.1:1",
        ],
    );
    assert!(!o.status.success());
}

/// Ctrl-C in the middle of a migration: exit 130 once the objects in flight are finished
/// and journaled, and the re-run resumes from the journal (nothing done is sent again) and
/// completes; the destination then verifies.
#[test]
fn ctrl_c_mid_migration_exits_130_and_a_rerun_resumes_and_completes() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[], 4, 8, 100);
    let target = dir.path().join("target");
    let to = format!("file://{}", target.display());
    let args = [
        "migrate",
        "run",
        "--to",
        &to,
        "--bwlimit",
        "4M",
        "--transfers",
        "2",
    ];
    let mut child = common::spawn(&hub, PASS, &args);
    let code = common::interrupt_when(&mut child, "a few objects copied", || {
        target.exists() && common::files_under(&target).len() >= 3
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");

    let r = json(&shh(&hub, &["--json", "migrate", "run", "--to", &to]));
    assert!(r["journal_done_before"].as_u64() > Some(0), "resumed: {r}");
    assert_eq!(r["stats"]["failures"], serde_json::json!([]), "{r}");
    let v = verified(&hub, &to, false, &dir.path().join("rep"));
    assert_eq!(v["summary"]["failed"], 0, "{v}");
}

/// What verification means for a local target: the bytes are hashed as they are handed to the
/// file system and each file's size is checked on its open handle before the rename; nothing is
/// read back (a read-back would come from the page cache), and the files are synced together
/// before the run reports success. What is already there is compared by content when asked
/// (`--checksum`), and `migrate verify` re-reads everything against the manifests.
#[test]
fn a_local_target_is_not_read_back_and_a_changed_file_is_found_by_checksum() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = hub_with_data(dir.path(), &[], 1, 7, 20);
    let target = dir.path().join("target");
    let to = format!("file://{}", target.display());
    let mut args = vec!["--json", "migrate", "run", "--to", &to];
    args.extend(PARTS);
    let r = json(&shh(&hub, &args));
    let s = &r["stats"];
    assert!(
        s["verification"]
            .as_str()
            .is_some_and(|v| v.starts_with("local disk")),
        "{r}"
    );
    assert_eq!(s["bytes_read_back"], 0, "{r}");
    assert_eq!(s["failures"], serde_json::json!([]), "{r}");
    assert!(s["copied"]["objects"].as_u64() > Some(20), "{r}");

    // One byte of one copied file changed behind the hub's back, its size kept.
    let victim = common::files_under(&target)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("blobs"))
        .expect("a blob");
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[0] ^= 1;
    std::fs::write(&victim, bytes).expect("write");
    let r = json(&shh(
        &hub,
        &["--json", "migrate", "run", "--to", &to, "--checksum"],
    ));
    assert_eq!(r["stats"]["replaced"]["objects"], 1, "{r}");
    let v = verified(&hub, &to, true, &dir.path().join("rep"));
    assert_eq!(v["summary"]["failed"], 0, "{v}");
}
