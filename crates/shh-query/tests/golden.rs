//! Golden SQL tests, in the manner of DataFusion's sqllogictest: each `tests/golden/*.test`
//! file holds cases of SQL and what it must give, rows (CSV) or a refusal (its rule). The
//! data is a fixed synthetic table and the keys are fixed, so pseudonyms and noise are the
//! same on every run. `SHH_BLESS=1 cargo test -p shh-query --test golden` rewrites the
//! expected outputs after a deliberate change (and the diff is then reviewed).
//!
//! A case:
//!
//! ```text
//! # what it shows
//! query aggregate            (or: query extract)
//! SELECT …
//! ----
//! refused disclosure.function   (or CSV lines, header first)
//! ```

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use shh_query::disclosure::overlap::MemoryLedger;
use shh_query::disclosure::{self, Settings};
use shh_query::pseudonyms::Pseudonyms;
use shh_query::table::{VersionFile, VersionTable};
use shh_query::view::{ViewSpec, build};
use shh_query::{Limits, QueryError, Sandbox};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

const PATIENTS: i64 = 400;

/// `IR_BEN_R`-like rows: a hub pseudonym, sex, birth year, département; fixed.
fn table() -> (Arc<Schema>, RecordBatch) {
    let ident = HashMap::from([("shh.class".to_owned(), "identifier".to_owned())]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("BEN_NIR_PSA", DataType::Utf8, false).with_metadata(ident),
        Field::new("BEN_SEX_COD", DataType::Utf8, false),
        Field::new("BEN_NAI_ANN", DataType::Int64, false),
        Field::new("BEN_RES_DPT", DataType::Utf8, false),
        Field::new("PRS_PAI_MNT", DataType::Int64, false),
    ]));
    let mut x: u64 = 2026;
    let mut next = || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        x >> 33
    };
    let (mut id, mut sex, mut year, mut dpt, mut amount) = (vec![], vec![], vec![], vec![], vec![]);
    for p in 0..PATIENTS {
        id.push(format!("hub-{p:05}"));
        sex.push(if next() % 2 == 0 { "1" } else { "2" }.to_owned());
        year.push(1930 + (next() % 90) as i64);
        // Most in three départements, a few elsewhere (small cells).
        let d = match next() % 100 {
            0..=39 => "035",
            40..=69 => "029",
            70..=94 => "056",
            95..=97 => "022",
            _ => "044",
        };
        dpt.push(d.to_owned());
        amount.push((next() % 500) as i64);
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(id)),
            Arc::new(StringArray::from(sex)),
            Arc::new(Int64Array::from(year)),
            Arc::new(StringArray::from(dpt)),
            Arc::new(Int64Array::from(amount)),
        ],
    )
    .expect("batch");
    (schema, batch)
}

async fn sandbox() -> (Sandbox, Arc<Pseudonyms>) {
    let (schema, batch) = table();
    let mut buf = Vec::new();
    {
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut buf, schema.clone(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }
    let store = Arc::new(object_store::memory::InMemory::new());
    let size = buf.len() as u64;
    use object_store::ObjectStoreExt as _;
    store
        .put(
            &object_store::path::Path::from("IR_BEN_R/0.parquet"),
            buf.into(),
        )
        .await
        .expect("put");
    let s = Sandbox::new(Limits::default()).expect("sandbox");
    s.register_store(store).expect("store");
    let keys = Pseudonyms::new(&[7u8; 32], &[9u8; 32]);
    let t = Arc::new(VersionTable::new(
        schema,
        vec![VersionFile {
            path: "IR_BEN_R/0.parquet".into(),
            size,
        }],
    ));
    let spec = ViewSpec {
        name: "IR_BEN_R".into(),
        columns: None,
        predicate: Some("BEN_RES_DPT <> '044' OR BEN_SEX_COD = '1'".into()),
        identifiers: vec!["BEN_NIR_PSA".into()],
        patient: Some("BEN_NIR_PSA".into()),
    };
    let view = build(&s, t, &spec, &keys).expect("view");
    s.register("IR_BEN_R", view).expect("register");
    (s, keys)
}

fn csv(batches: &[RecordBatch]) -> String {
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

struct Case {
    comment: Vec<String>,
    mode: String,
    sql: String,
    expected: String,
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = text.lines().peekable();
    let mut comment = Vec::new();
    while let Some(l) = lines.next() {
        if l.starts_with('#') {
            comment.push(l.to_owned());
            continue;
        }
        let Some(mode) = l.strip_prefix("query ") else {
            assert!(l.trim().is_empty(), "unexpected line {l:?}");
            continue;
        };
        let mut sql = Vec::new();
        for l in lines.by_ref() {
            if l == "----" {
                break;
            }
            sql.push(l);
        }
        let mut expected = Vec::new();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            expected.push(lines.next().unwrap_or_default());
        }
        cases.push(Case {
            comment: std::mem::take(&mut comment),
            mode: mode.trim().to_owned(),
            sql: sql.join("\n"),
            expected: expected.join("\n"),
        });
    }
    cases
}

fn render(cases: &[Case]) -> String {
    let mut out = String::new();
    for c in cases {
        for l in &c.comment {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&format!(
            "query {}\n{}\n----\n{}\n\n",
            c.mode, c.sql, c.expected
        ));
    }
    out
}

#[tokio::test]
async fn golden_sql() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("SHH_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in files {
        // A fresh sandbox and ledger per file: the cases of a file run in order, sharing it.
        let (s, keys) = sandbox().await;
        let ledger = MemoryLedger::default();
        let views: BTreeSet<String> = ["IR_BEN_R".to_owned()].into();
        let text = std::fs::read_to_string(&file).expect("read");
        let mut cases = parse(&text);
        for c in &mut cases {
            let got = match s.plan(&c.sql).await {
                Err(e) => Err(e),
                Ok(plan) => match c.mode.as_str() {
                    "extract" => s.collect(plan).await,
                    "aggregate" => {
                        disclosure::answer(&s, plan, &views, &keys, &Settings::default(), &ledger)
                            .await
                            .map(|(b, _)| b)
                    }
                    other => panic!("{}: mode {other:?}", file.display()),
                },
            };
            let got = match got {
                Ok(b) => csv(&b).trim_end().to_owned(),
                Err(QueryError::Refused(r)) => format!("refused {}", r.rule),
                Err(e) => format!("error {}", e.to_string().lines().next().unwrap_or("")),
            };
            if got != c.expected {
                if bless {
                    c.expected = got;
                } else {
                    failures.push(format!(
                        "{}:\n{}\nexpected:\n{}\ngot:\n{got}",
                        file.display(),
                        c.sql,
                        c.expected
                    ));
                }
            }
        }
        if bless {
            std::fs::write(&file, render(&cases)).expect("bless");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
