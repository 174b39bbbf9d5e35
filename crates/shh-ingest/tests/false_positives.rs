//! The guard's false positives, measured on real files nobody here wrote (the SNDS tables and
//! the Synthea FHIR resources in `testdata/`) and on the synthetic population: every value
//! a kept column holds must pass, or those files could not be ingested. The counts are
//! printed (`cargo test -p shh-ingest --test false_positives -- --nocapture`).

use shh_ingest::ColumnPolicy;
use shh_ingest::policy::Class;
use shh_pseudo::guard::{Look, scan};
use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    std::env::var_os("SHH_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[derive(Default, Debug)]
struct Count {
    values: u64,
    /// Values the fast path could not dismiss (13 digits or more, or an at-sign).
    candidates: u64,
    hits: u64,
}

impl Count {
    fn add(&mut self, v: &str) -> bool {
        self.values += 1;
        if v.bytes().filter(u8::is_ascii_digit).count() >= 13 || v.contains('@') {
            self.candidates += 1;
        }
        let hit = scan(v, Look::ALL).is_some();
        self.hits += u64::from(hit);
        hit
    }
}

/// Every cell of a CSV in a column `keep` says is kept and not an identifier.
fn scan_csv(path: &Path, keep: impl Fn(&str) -> bool, count: &mut Count) -> Vec<String> {
    let mut rdr = csv::Reader::from_path(path).expect("csv");
    let header: Vec<String> = rdr
        .headers()
        .expect("h")
        .iter()
        .map(str::to_owned)
        .collect();
    let mut hits = Vec::new();
    for rec in rdr.records() {
        let rec = rec.expect("record");
        for (h, v) in header.iter().zip(rec.iter()) {
            if keep(h) && count.add(v) {
                hits.push(format!("{}: {h}", path.display()));
            }
        }
    }
    hits
}

#[test]
fn the_public_snds_tables_hold_no_false_positive() {
    let mut count = Count::default();
    let policy = ColumnPolicy::defaults();
    let mut hits = Vec::new();
    for f in files(&testdata().join("snds"), "csv") {
        hits.extend(scan_csv(
            &f,
            |c| {
                !matches!(
                    policy.rule(c).class,
                    Class::Identifier | Class::Direct | Class::Drop
                )
            },
            &mut count,
        ));
    }
    println!("SNDS tables: {count:?}");
    assert!(count.values > 2_000, "{count:?}");
    assert!(hits.is_empty(), "{hits:?}");
}

/// Every string and number anywhere in the FHIR resources (kept or not: names, addresses and
/// telecom are never read, but they show what the guard finds in free text).
#[test]
fn the_synthea_resources_hold_no_false_positive_where_kept() {
    fn walk(v: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::String(s) => out.push((path.join("/"), s.clone())),
            serde_json::Value::Number(n) => out.push((path.join("/"), n.to_string())),
            serde_json::Value::Array(a) => {
                for x in a {
                    walk(x, path, out);
                }
            }
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    path.push(k.clone());
                    walk(x, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let (mut kept, mut all) = (Count::default(), Count::default());
    let mut kept_hits = Vec::new();
    let mut other_hits = std::collections::BTreeMap::<String, u64>::new();
    for f in files(&testdata().join("fhir"), "ndjson") {
        let text = std::fs::read_to_string(&f).expect("read");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let mut values = Vec::new();
            walk(&v, &mut Vec::new(), &mut values);
            for (path, value) in values {
                // What the built-in mappings keep (identifiers aside): codes, systems,
                // statuses, dates, numbers.
                let is_kept = !path.contains("display")
                    && !path.contains("text")
                    && !path.contains("name")
                    && !path.contains("address")
                    && !path.contains("telecom")
                    && !path.contains("identifier")
                    && !path.contains("reference")
                    && !path.ends_with("/url")
                    && path != "id";
                if is_kept {
                    if kept.add(&value) {
                        kept_hits.push(format!("{}: {path}", f.display()));
                    }
                } else if all.add(&value) {
                    *other_hits.entry(path).or_default() += 1;
                }
            }
        }
    }
    println!("FHIR kept values: {kept:?}");
    println!("FHIR values never read: {all:?}, hits by path: {other_hits:?}");
    assert!(kept.values > 5_000, "{kept:?}");
    assert!(kept_hits.is_empty(), "{kept_hits:?}");
}

#[test]
fn the_synthetic_population_holds_no_false_positive() {
    let dir = tempfile::tempdir().expect("tmp");
    shh_ingest::synth::generate(dir.path(), 5_000, 11, &shh_task::Task::silent()).expect("synth");
    let mut count = Count::default();
    let mut hits = Vec::new();
    for t in shh_ingest::synth::TABLES {
        let policy =
            ColumnPolicy::from_file(&dir.path().join(format!("{t}.policy.toml"))).expect("policy");
        hits.extend(scan_csv(
            &dir.path().join(format!("{t}.csv")),
            |c| {
                !matches!(
                    policy.rule(c).class,
                    Class::Identifier | Class::Direct | Class::Drop
                )
            },
            &mut count,
        ));
    }
    println!("synthetic population (5,000 patients): {count:?}");
    assert!(count.values > 100_000, "{count:?}");
    assert!(hits.is_empty(), "{hits:?}");
}
