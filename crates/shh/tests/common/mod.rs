//! Helpers shared by the CLI test files: run the real binary, check its exit.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `shh`, or for `debug …` the test-only `shh-testkit` (the user's CLI has no such commands).
fn binary<'a, 'b>(args: &'a [&'b str]) -> (Command, &'a [&'b str]) {
    match args.split_first() {
        Some((&"debug", rest)) => (Command::new(env!("CARGO_BIN_EXE_shh-testkit")), rest),
        _ => (Command::new(env!("CARGO_BIN_EXE_shh")), args),
    }
}

/// Runs `shh --hub HUB ARGS…` with `SHH_PASSPHRASE=pass` and extra environment variables.
pub fn shh_env(hub: &Path, pass: &str, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let (mut c, args) = binary(args);
    c.arg("--hub")
        .arg(hub)
        .args(args)
        .env("SHH_PASSPHRASE", pass)
        .env_remove("SHH_HUB")
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run shh")
}

/// Runs `shh --hub HUB ARGS…` with `SHH_PASSPHRASE=pass`.
pub fn shh(hub: &Path, pass: &str, args: &[&str]) -> Output {
    shh_env(hub, pass, &[], args)
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "shh failed: {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts success and parses stdout as JSON.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("json output")
}

/// Runs `shh --hub HUB ARGS…`, waits until it has printed `lines` stderr lines starting with
/// `progress`, then kills it (SIGKILL) mid-work. Returns how many such lines it saw.
pub fn kill_after_progress(
    hub: &Path,
    pass: &str,
    args: &[&str],
    progress: &str,
    lines: usize,
) -> usize {
    let mut child = spawn(hub, pass, args);
    let stderr = child.stderr.take().expect("stderr");
    let mut out = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = 0;
    while seen < lines {
        match out.next() {
            Some(Ok(l)) if l.starts_with(progress) => seen += 1,
            Some(_) => {}
            None => break,
        }
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    seen
}

/// Starts `shh --hub HUB ARGS…` with `SHH_PASSPHRASE=pass`, stderr piped, nothing else read.
pub fn spawn(hub: &Path, pass: &str, args: &[&str]) -> std::process::Child {
    let (mut c, args) = binary(args);
    c.arg("--hub")
        .arg(hub)
        .args(args)
        .env("SHH_PASSPHRASE", pass)
        .env_remove("SHH_HUB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits (up to 120 s) until `ready` holds; fails the test if `child` ends first.
fn wait_until(child: &mut std::process::Child, what: &str, ready: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "never {what}"
        );
        if let Ok(Some(s)) = child.try_wait() {
            panic!("ended ({s}) before {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Waits (up to 120 s) until `ready` holds, then kills `child` with SIGKILL; fails the test if
/// the child ends first.
pub fn kill_when(child: &mut std::process::Child, what: &str, ready: impl Fn() -> bool) {
    wait_until(child, what, ready);
    child.kill().expect("kill -9");
    child.wait().expect("wait");
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The URL a test server was started at (`scripts/test-servers.sh`), or `None` to skip;
/// with `SHH_REQUIRE_SERVERS=1` a missing server fails instead.
pub fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("SHH_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "{var} is not set but SHH_REQUIRE_SERVERS=1"
            );
            eprintln!("skipping: {var} not set");
            None
        }
    }
}

/// The server URL with a fresh sub-prefix, so runs do not see each other's objects.
pub fn fresh(url: &str, tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let sub = format!("/{tag}-{nanos:x}");
    match url.split_once('?') {
        Some((base, q)) => format!("{base}{sub}?{q}"),
        None => format!("{url}{sub}"),
    }
}

/// Waits (up to 120 s) until `ready` holds, then sends `child` SIGINT (as Ctrl-C would) and
/// returns its exit code; fails the test if the child ends first or does not end within 60 s.
pub fn interrupt_when(
    child: &mut std::process::Child,
    what: &str,
    ready: impl Fn() -> bool,
) -> Option<i32> {
    wait_until(child, what, ready);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success(), "kill -INT failed");
    let stopped = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code();
        }
        assert!(
            stopped.elapsed() < std::time::Duration::from_secs(60),
            "still running 60 s after SIGINT"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
