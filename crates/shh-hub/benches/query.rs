//! The query benchmark's harness (`bench/query.sh` runs it; see that script): SNDS-like
//! queries through `Hub::query` (encrypted store, the permit's views, disclosure control on),
//! timed, with each query's peak RSS; and the same queries with the perturbation off, run by
//! the same engine on the hub's own clear export, whose results must equal DuckDB's. That
//! switch exists here only: no flag of the CLI turns disclosure control off.
//!
//! Usage: `cargo bench -p shh-hub --bench query -- WORK` with `WORK/hub` (the hub, passphrase
//! in `SHH_PASSPHRASE`), `WORK/export/<TABLE>/*.parquet` (its clear export), `WORK/queries.json`
//! (name → SQL) and `WORK/duckdb/<name>.csv` (DuckDB's results). Prints one JSON line per
//! query.

use shh_hub::query::QueryRequest;
use shh_hub::{
    Authenticator, Hub, LocalAuthenticator, LocalOperator, Role, UserAuthenticator, UserLogin,
};
use shh_query::disclosure::overlap::MemoryLedger;
use shh_query::disclosure::{self, Settings};
use shh_query::pseudonyms::Pseudonyms;
use shh_query::table::{VersionFile, VersionTable};
use shh_query::view::{ViewSpec, build};
use shh_query::{Limits, Sandbox};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const TABLES: [&str; 4] = ["IR_BEN_R", "ER_PRS_F", "ER_PHA_F", "T_MCO_B"];
/// Runs per query (the median is reported); `SHH_BENCH_REPS` changes it (a profile wants one).
fn reps() -> usize {
    std::env::var("SHH_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

fn peak_reset() {
    // Writing 5 resets the peak resident set (VmHWM) of this process.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Rows of a CSV text, each cell normalized (numbers to 9 significant digits), sorted.
fn normalized(csv: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|c| {
                    let c = c.trim_matches('"');
                    match c.parse::<f64>() {
                        Ok(v) => format!("{v:.9e}"),
                        Err(_) => c.to_owned(),
                    }
                })
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

fn csv(batches: &[arrow::array::RecordBatch]) -> String {
    let mut out = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for b in batches {
            w.write(b).expect("csv");
        }
    }
    String::from_utf8(out).expect("utf8")
}

/// The export's tables as views of a sandbox, for the unperturbed run; and the same tables
/// bare in another (stock DataFusion: no views, no pseudonyms, no disclosure control), whose
/// time says how much of shh's is the engine's and how much the protection's.
async fn plain_sandbox(export: &Path) -> (Sandbox, Sandbox, Arc<Pseudonyms>, BTreeSet<String>) {
    let s = Sandbox::new(Limits::default()).expect("sandbox");
    let stock = Sandbox::new(Limits::default()).expect("sandbox");
    let store = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(export).expect("export dir"),
    );
    s.register_store(store.clone()).expect("store");
    stock.register_store(store).expect("store");
    let keys = Pseudonyms::new(&[1u8; 32], &[2u8; 32]);
    let mut views = BTreeSet::new();
    for t in TABLES {
        let mut files = Vec::new();
        let mut schema = None;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(export.join(t))
            .expect("table dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        paths.sort();
        for p in paths {
            let f = std::fs::File::open(&p).expect("open");
            let size = f.metadata().expect("meta").len();
            if schema.is_none() {
                let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .expect("parquet");
                schema = Some(b.schema().clone());
            }
            let rel = p.strip_prefix(export).expect("under export");
            files.push(VersionFile {
                path: rel.to_string_lossy().into_owned(),
                size,
            });
        }
        let schema = schema.expect("a file");
        let spec = ViewSpec::of(t, &schema, None, None);
        let table = Arc::new(VersionTable::new(schema, files));
        let view = build(&s, table.clone(), &spec, &keys).expect("view");
        s.register(t, view).expect("register");
        stock.register(t, table).expect("register");
        views.insert(t.to_owned());
    }
    (s, stock, keys, views)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let work = PathBuf::from(
        std::env::args()
            .skip(1)
            .find(|a| !a.starts_with("--"))
            .expect("usage: query WORK"),
    );
    let pass = std::env::var("SHH_PASSPHRASE").expect("SHH_PASSPHRASE");
    let queries: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(work.join("queries.json")).expect("queries.json"))
            .expect("queries");

    let hub = Hub::open(&work.join("hub"), &pass).await.expect("open hub");
    let op = LocalAuthenticator
        .authenticate(
            &hub,
            &LocalOperator {
                name: "bench".into(),
                role: "operator".into(),
            },
        )
        .await
        .expect("operator");
    let mut sessions = Vec::new();
    for (name, role) in [("rita", Role::Researcher), ("cora", Role::Committee)] {
        let passphrase = format!("{name}-bench-passphrase");
        // A hub the harness ran on before has its users already (a rerun, a profile).
        let added = hub
            .user_add(
                &op,
                &shh_hub::access::users::UserAddRequest {
                    name: name.into(),
                    roles: vec![role],
                },
            )
            .await;
        match added {
            Ok(_) => {
                hub.user_enroll(
                    &op,
                    &shh_hub::access::users::UserEnrollRequest {
                        name: name.into(),
                        passphrase: passphrase.clone(),
                    },
                )
                .await
                .expect("enroll");
            }
            Err(e) if e.kind() == shh_hub::ErrorKind::Conflict => {}
            Err(e) => panic!("user {name}: {e}"),
        }
        sessions.push(
            UserAuthenticator
                .authenticate(
                    &hub,
                    &UserLogin {
                        name: name.into(),
                        passphrase,
                    },
                )
                .await
                .expect("login"),
        );
    }
    let (rita, cora) = (&sessions[0], &sessions[1]);
    let project = hub
        .project_create(
            rita,
            &shh_hub::access::projects::ProjectCreateRequest {
                title: "Benchmark".into(),
                purpose: "SNDS-like query suite".into(),
                ..Default::default()
            },
        )
        .await
        .expect("project")
        .id;
    let mut permits = Vec::new();
    for t in TABLES {
        let now = chrono::Utc::now();
        permits.push(
            hub.permit_grant(
                cora,
                &shh_hub::access::permits::PermitGrantRequest {
                    project: project.clone(),
                    dataset: t.into(),
                    version: None,
                    columns: None,
                    predicate: None,
                    mode: shh_hub::Mode::Aggregate,
                    from: now - chrono::Duration::hours(1),
                    until: now + chrono::Duration::days(1),
                    to: ["rita".to_owned()].into(),
                },
            )
            .await
            .expect("grant")
            .permit
            .id,
        );
    }

    let (plain, stock, keys, views) = plain_sandbox(&work.join("export")).await;
    let exact = Settings {
        threshold: 0,
        rounding: 1,
        count_noise: 0,
        magnitude_noise: 0.0,
        dominance_one: 1.0,
        dominance_two: 1.0,
    };
    // `SHH_BENCH_ONLY=NAME` runs one query (a profile).
    let only = std::env::var("SHH_BENCH_ONLY").ok();
    let reps = reps();
    for (name, sql) in queries
        .iter()
        .filter(|(n, _)| only.as_ref().is_none_or(|o| o == *n))
    {
        // Which tables the query reads: a permit on each.
        let used: Vec<String> = TABLES
            .iter()
            .zip(&permits)
            .filter(|(t, _)| sql.contains(*t))
            .map(|(_, p)| p.clone())
            .collect();
        let mut times = Vec::new();
        let mut peak = 0;
        let mut cells = (0, 0);
        for _ in 0..reps {
            peak_reset();
            let t = Instant::now();
            let r = hub
                .query(
                    rita,
                    &QueryRequest {
                        permits: used.clone(),
                        sql: sql.clone(),
                    },
                )
                .await
                .expect(name);
            times.push(t.elapsed().as_secs_f64());
            peak = peak.max(peak_kib());
            let d = r.provenance.disclosure.unwrap_or_default();
            cells = (d.published, d.cells);
        }
        times.sort_by(f64::total_cmp);
        let mut stock_times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let plan = stock.plan(sql).await.expect("plan");
            stock.collect(plan).await.expect("stock DataFusion");
            stock_times.push(t.elapsed().as_secs_f64());
        }
        stock_times.sort_by(f64::total_cmp);
        // Unperturbed, on the clear export: must equal DuckDB's.
        let plan = plain.plan(sql).await.expect("plan");
        let ledger = MemoryLedger::default();
        let (b, _) = disclosure::answer(&plain, plan, &views, &keys, &exact, &ledger)
            .await
            .expect("unperturbed");
        let ours = normalized(&csv(&b));
        let duck = std::fs::read_to_string(work.join("duckdb").join(format!("{name}.csv")))
            .expect("duckdb result");
        let equal = ours == normalized(&duck);
        println!(
            "{}",
            serde_json::json!({
                "query": name,
                "shh_s": times[reps / 2],
                "datafusion_s": stock_times[reps / 2],
                "shh_peak_kib": peak,
                "published": cells.0,
                "cells": cells.1,
                "rows": ours.len(),
                "equal_duckdb": equal,
            })
        );
        if !equal {
            eprintln!(
                "{name}: unperturbed result differs from DuckDB's\nshh: {:?}\nduckdb: {:?}",
                &ours[..ours.len().min(5)],
                &normalized(&duck)[..normalized(&duck).len().min(5)]
            );
        }
    }
}
