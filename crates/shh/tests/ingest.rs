//! Ingest end to end through the real binary: a synthetic SNDS population goes in and no raw
//! NIR comes out anywhere; bad input of every kind fails with file, line and field and leaves
//! the current version and the store as they were; the leak guard, opt-outs, foreign keys, the
//! shared SNDS tables and the FHIR files.

mod common;

use arrow::array::AsArray;
use common::{files_under as files, json, ok, shh};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const PASS: &str = "ingest-test-pass";

fn init(dir: &Path) -> PathBuf {
    let hub = dir.join("hub");
    ok(&shh(&hub, PASS, &["init", "--insecure-fast-kdf"]));
    hub
}

fn shared() -> PathBuf {
    std::env::var_os("SHH_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata"))
}

fn synth(dir: &Path, patients: u64) -> PathBuf {
    let out = dir.join("synth");
    ok(&shh(
        &dir.join("nohub"),
        PASS,
        &[
            "synth",
            "snds",
            "--patients",
            &patients.to_string(),
            "--seed",
            "7",
            "--out",
            out.to_str().expect("utf8"),
        ],
    ));
    out
}

fn ingest_table(hub: &Path, synth: &Path, t: &str, extra: &[&str]) -> std::process::Output {
    let s = |x: &str| synth.join(x).display().to_string();
    let (schema, policy, csv) = (
        s(&format!("{t}.json")),
        s(&format!("{t}.policy.toml")),
        s(&format!("{t}.csv")),
    );
    let mut args = vec![
        "--json",
        "ingest",
        "--dataset",
        t,
        "--schema",
        &schema,
        "--policy",
        &policy,
    ];
    args.extend_from_slice(extra);
    args.push(&csv);
    shh(hub, PASS, &args)
}

fn nirs(synth: &Path) -> HashSet<Vec<u8>> {
    let text = std::fs::read_to_string(synth.join("IR_BEN_R.csv")).expect("csv");
    text.lines()
        .skip(1)
        .map(|l| l.split(',').next().expect("nir").as_bytes().to_vec())
        .collect()
}

fn count_nirs_in(bytes: &[u8], nirs: &HashSet<Vec<u8>>) -> usize {
    bytes.windows(15).filter(|w| nirs.contains(*w)).count()
}

fn current(hub: &Path, dataset: &str) -> Option<String> {
    let list = json(&shh(hub, PASS, &["--json", "datasets", "list"]));
    list.as_array()
        .expect("array")
        .iter()
        .find(|d| d["name"] == dataset)
        .and_then(|d| d["current"].as_str().map(str::to_owned))
}

fn data_objects(hub: &Path, dataset: &str) -> usize {
    let dir = hub.join("store/datasets").join(dataset).join("data");
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn synthetic_population_leaves_no_nir_anywhere() {
    let tmp = tempfile::tempdir().expect("tmp");
    let syn = synth(tmp.path(), 3000);
    let hub = init(tmp.path());
    let nirs = nirs(&syn);
    assert_eq!(nirs.len(), 3000, "one unique NIR per patient");
    // Opt two patients out before anything is ingested.
    let mut out_ids: Vec<String> = nirs
        .iter()
        .take(2)
        .map(|n| String::from_utf8(n.clone()).expect("utf8"))
        .collect();
    out_ids.sort();
    let o = json(&shh(
        &hub,
        PASS,
        &["--json", "optout", "add", &out_ids[0], &out_ids[1]],
    ));
    assert_eq!(o["added"], 2);
    for t in ["IR_BEN_R", "ER_PRS_F", "ER_PHA_F", "T_MCO_B"] {
        let r = json(&ingest_table(&hub, &syn, t, &["--strict-fk"]));
        assert!(r["rows_written"].as_u64().expect("rows") > 0, "{t}: {r}");
        for fk in r["foreign_keys"].as_array().expect("fks") {
            assert_eq!(fk["checked"], true, "{t}: {fk}");
            assert_eq!(fk["violations"], 0, "{t}: {fk}");
        }
        if t == "IR_BEN_R" {
            assert_eq!(r["opted_out"], 2, "both opted-out patients excluded");
            assert_eq!(r["rows_written"], 2998);
            assert!(r["risk"]["classes"].as_u64().expect("classes") > 0);
        }
    }
    // The hub directory (store, catalog, keystore, config), an audit export, and plain exports
    // of every dataset: no raw NIR, byte for byte.
    let audit = tmp.path().join("audit");
    ok(&shh(
        &hub,
        PASS,
        &["audit", "export", "--out", audit.to_str().expect("utf8")],
    ));
    let mut checked = 0;
    for f in files(&hub).into_iter().chain(files(&audit)) {
        let bytes = std::fs::read(&f).expect("read");
        assert_eq!(
            count_nirs_in(&bytes, &nirs),
            0,
            "raw NIR in {}",
            f.display()
        );
        checked += 1;
    }
    assert!(checked > 10);
    let events = std::fs::read_to_string(audit.join("events.ndjson")).expect("events");
    assert_eq!(events.matches("\"dataset.ingest\"").count(), 4);
    // Exported Parquet is compressed: read the values themselves.
    let exp = tmp.path().join("exp");
    std::fs::create_dir_all(&exp).expect("mkdir");
    let mut values = 0;
    for t in ["IR_BEN_R", "ER_PRS_F", "T_MCO_B"] {
        ok(&shh(
            &hub,
            PASS,
            &[
                "datasets",
                "export",
                t,
                "--out",
                exp.to_str().expect("utf8"),
            ],
        ));
    }
    let mut ben: HashSet<String> = HashSet::new();
    let mut prs: HashSet<String> = HashSet::new();
    for f in files(&exp)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
    {
        let file = std::fs::File::open(&f).expect("open");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        for b in reader {
            let b = b.expect("batch");
            for (i, field) in b.schema().fields().iter().enumerate() {
                if let Some(s) = b.column(i).as_string_opt::<i32>() {
                    for v in s.iter().flatten() {
                        values += 1;
                        assert!(
                            !nirs.contains(v.as_bytes()),
                            "raw NIR in {} column {}",
                            f.display(),
                            field.name()
                        );
                        assert!(!shh_is_nir(v), "NIR-shaped value in {}", field.name());
                        if field.name() == "BEN_NIR_PSA" {
                            let dir = f.display().to_string();
                            if dir.contains("IR_BEN_R") {
                                ben.insert(v.to_owned());
                            } else {
                                prs.insert(v.to_owned());
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(values > 10_000);
    // Same NIR, same pseudonym in both tables: every claim's patient is a known beneficiary.
    assert!(!prs.is_empty() && prs.is_subset(&ben));
    assert!(ben.iter().all(|p| p.len() == 22));
}

fn shh_is_nir(v: &str) -> bool {
    v.len() == 15
        && v.bytes().all(|b| b.is_ascii_alphanumeric())
        && v.bytes().filter(u8::is_ascii_digit).count() >= 13
}

struct Bad {
    name: &'static str,
    format: &'static str,
    content: Vec<u8>,
    line: &'static str,
    field: &'static str,
}

#[test]
fn bad_input_fails_with_file_line_field_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let schema = tmp.path().join("t.json");
    std::fs::write(
        &schema,
        r#"{"fields":[
            {"name":"NIR","type":"string","constraints":{"required":true,"minLength":15,"maxLength":15}},
            {"name":"AGE","type":"integer","constraints":{"minimum":0,"maximum":120}},
            {"name":"DAY","type":"date"},
            {"name":"CODE","type":"string","constraints":{"enum":["A","B"]}}],
           "primaryKey":["NIR"]}"#,
    )
    .expect("schema");
    let policy = tmp.path().join("t.policy.toml");
    std::fs::write(&policy, "[columns]\nNIR = \"identifier\"\n").expect("policy");
    let good =
        "NIR,AGE,DAY,CODE\n184127645108946,40,2024-01-02,A\n255081416802538,7,2023-12-31,B\n";
    let f = tmp.path().join("good.csv");
    std::fs::write(&f, good).expect("good");
    let args = |file: &Path| -> Vec<String> {
        [
            "--json",
            "ingest",
            "--dataset",
            "t",
            "--schema",
            schema.to_str().expect("s"),
            "--policy",
            policy.to_str().expect("p"),
            file.to_str().expect("f"),
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        shh(&hub, PASS, &a)
    };
    let v1 = json(&run(args(&f)));
    assert_eq!(v1["rows_written"], 2);
    let before = current(&hub, "t");
    let objects = data_objects(&hub, "t");
    let cases = vec![
        Bad {
            name: "unequal.csv",
            format: "csv",
            content: format!("{good}184127645108946,40\n").into_bytes(),
            line: ":4:",
            field: "(row)",
        },
        Bad {
            name: "type.csv",
            format: "csv",
            content: format!("{good}294037512345606,forty,2024-01-02,A\n").into_bytes(),
            line: ":4:",
            field: "AGE",
        },
        Bad {
            name: "range.csv",
            format: "csv",
            content: format!("{good}294037512345606,140,2024-01-02,A\n").into_bytes(),
            line: ":4:",
            field: "AGE",
        },
        Bad {
            name: "enum.csv",
            format: "csv",
            content: format!("{good}294037512345606,14,2024-01-02,C\n").into_bytes(),
            line: ":4:",
            field: "CODE",
        },
        Bad {
            name: "date.csv",
            format: "csv",
            content: format!("{good}294037512345606,14,2024-02-30,A\n").into_bytes(),
            line: ":4:",
            field: "DAY",
        },
        Bad {
            name: "required.csv",
            format: "csv",
            content: format!("{good},14,2024-02-03,A\n").into_bytes(),
            line: ":4:",
            field: "NIR",
        },
        Bad {
            name: "utf8.csv",
            format: "csv",
            content: [good.as_bytes(), b"294037512345606,14,2024-01-02,\xff\n"].concat(),
            line: ":4:",
            field: "CODE",
        },
        Bad {
            name: "dup.csv",
            format: "csv",
            content: format!("{good}184127645108946,41,2024-01-03,B\n").into_bytes(),
            line: "dup.csv:4",
            field: "NIR",
        },
        Bad {
            name: "header.csv",
            format: "csv",
            content: b"NIR,AGE,DAY,CODE,NAME\n".to_vec(),
            line: ":1:",
            field: "NAME",
        },
    ];
    for c in cases {
        let p = tmp.path().join(c.name);
        std::fs::write(&p, &c.content).expect("write");
        let o = run(args(&p));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{} ({}) must fail", c.name, c.format);
        assert!(
            err.contains(c.name) && err.contains(c.line) && err.contains(c.field),
            "{}: {err}",
            c.name
        );
        assert!(
            !err.contains("294037512345606"),
            "identifier value echoed: {err}"
        );
        assert_eq!(
            current(&hub, "t"),
            before,
            "{}: current version moved",
            c.name
        );
        assert_eq!(
            data_objects(&hub, "t"),
            objects,
            "{}: data left behind",
            c.name
        );
    }
    // A failed ingest is recorded too.
    let log = ok(&shh(
        &hub,
        PASS,
        &["audit", "log", "--action", "dataset.ingest"],
    ));
    assert!(log.contains("FAILED"), "{log}");

    // --max-errors: bad rows go to the rejects file (positions only), good rows in.
    let p = tmp.path().join("mixed.csv");
    std::fs::write(
        &p,
        format!("{good}294037512345606,forty,2024-01-02,A\n194037512345620,4,2024-01-02,A\n"),
    )
    .expect("w");
    let rejects = tmp.path().join("rejects.csv");
    let mut a = args(&p);
    a.splice(
        2..2,
        [
            "--max-errors".to_owned(),
            "5".to_owned(),
            "--rejects".to_owned(),
            rejects.display().to_string(),
        ],
    );
    let r = json(&run(a));
    assert_eq!(r["rows_written"], 3);
    assert_eq!(r["rows_rejected"], 1);
    let rej = std::fs::read_to_string(&rejects).expect("rejects");
    assert!(
        rej.contains(",4,AGE,") && !rej.contains("294037512345606"),
        "{rej}"
    );
}

#[test]
fn nir_in_an_undeclared_column_fails_the_ingest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let schema = tmp.path().join("t.json");
    std::fs::write(
        &schema,
        r#"{"fields":[{"name":"ID"},{"name":"NUM_SECU"},{"name":"V","type":"integer"}]}"#,
    )
    .expect("s");
    let policy = tmp.path().join("p.toml");
    std::fs::write(&policy, "[columns]\nID = \"identifier\"\n").expect("p");
    let csv = tmp.path().join("leak.csv");
    std::fs::write(&csv, "ID,NUM_SECU,V\na,x,1\nb,2 55 08 14 168 025 38,2\n").expect("c");
    let o = shh(
        &hub,
        PASS,
        &[
            "ingest",
            "--dataset",
            "leak",
            "--lenient",
            "--schema",
            schema.to_str().expect("s"),
            "--policy",
            policy.to_str().expect("p"),
            csv.to_str().expect("c"),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("leak.csv:3") && err.contains("NUM_SECU") && err.contains("NIR"),
        "{err}"
    );
    assert!(!err.contains("168 025"), "{err}");
    assert_eq!(current(&hub, "leak"), None);
    // Declared as an identifier, the same file goes in, pseudonymized.
    std::fs::write(
        &policy,
        "[columns]\nID = \"identifier\"\nNUM_SECU = \"identifier\"\n",
    )
    .expect("p");
    ok(&shh(
        &hub,
        PASS,
        &[
            "ingest",
            "--dataset",
            "leak",
            "--schema",
            schema.to_str().expect("s"),
            "--policy",
            policy.to_str().expect("p"),
            csv.to_str().expect("c"),
        ],
    ));
}

#[test]
fn broken_ndjson_and_truncated_parquet_fail_cleanly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let data = shared();
    let good = data.join("fhir/Patient.000.ndjson");
    let v = json(&shh(
        &hub,
        PASS,
        &[
            "--json",
            "ingest",
            "--dataset",
            "pat",
            good.to_str().expect("p"),
        ],
    ));
    assert_eq!(v["rows_written"], 13);
    let before = current(&hub, "pat");
    let text = std::fs::read_to_string(&good).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4] = "{\"resourceType\": \"Patient\", \"id\": ";
    let broken = tmp.path().join("Patient.broken.ndjson");
    std::fs::write(&broken, lines.join("\n")).expect("w");
    let o = shh(
        &hub,
        PASS,
        &["ingest", "--dataset", "pat", broken.to_str().expect("p")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("Patient.broken.ndjson:5") && err.contains("(json)"),
        "{err}"
    );
    assert_eq!(current(&hub, "pat"), before);

    // Parquet: export a version, ingest it back (round trip), then a truncated copy.
    let exp = tmp.path().join("exp");
    std::fs::create_dir_all(&exp).expect("mkdir");
    let schema = tmp.path().join("s.json");
    std::fs::write(
        &schema,
        r#"{"fields":[{"name":"id"},{"name":"n","type":"integer","constraints":{"minimum":0}}]}"#,
    )
    .expect("s");
    let csv = tmp.path().join("s.csv");
    let mut body = String::from("id,n\n");
    for i in 0..5000 {
        body.push_str(&format!("p{i},{i}\n"));
    }
    std::fs::write(&csv, body).expect("w");
    ok(&shh(
        &hub,
        PASS,
        &[
            "ingest",
            "--dataset",
            "s",
            "--schema",
            schema.to_str().expect("s"),
            csv.to_str().expect("c"),
        ],
    ));
    let r = json(&shh(
        &hub,
        PASS,
        &[
            "--json",
            "datasets",
            "export",
            "s",
            "--out",
            exp.to_str().expect("e"),
        ],
    ));
    let pq = PathBuf::from(r["files"][0].as_str().expect("file"));
    let v = json(&shh(
        &hub,
        PASS,
        &[
            "--json",
            "ingest",
            "--dataset",
            "s2",
            "--schema",
            schema.to_str().expect("s"),
            pq.to_str().expect("p"),
        ],
    ));
    assert_eq!(v["rows_written"], 5000);
    let bytes = std::fs::read(&pq).expect("read");
    let cut = tmp.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("w");
    let before = current(&hub, "s2");
    let o = shh(
        &hub,
        PASS,
        &[
            "ingest",
            "--dataset",
            "s2",
            "--schema",
            schema.to_str().expect("s"),
            cut.to_str().expect("p"),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cut.parquet"), "{err}");
    assert_eq!(current(&hub, "s2"), before);
}

#[test]
fn shared_snds_tables_and_fhir_files_ingest_with_their_own_schemas() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let data = shared();
    let mut tables = 0;
    for dir in files(&data.join("snds")) {
        if dir.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let name = dir
            .file_stem()
            .expect("stem")
            .to_str()
            .expect("utf8")
            .to_owned();
        let schema = dir.with_extension("json");
        // The published files break their own schemas here and there (random values):
        // --lenient stores them and reports each violation with its line.
        let r = json(&shh(
            &hub,
            PASS,
            &[
                "--json",
                "ingest",
                "--lenient",
                "--dataset",
                &name,
                "--schema",
                schema.to_str().expect("s"),
                dir.to_str().expect("c"),
            ],
        ));
        assert_eq!(r["rows_read"], 10, "{name}");
        assert_eq!(r["rows_written"], 10, "{name}");
        tables += 1;
    }
    assert_eq!(tables, 31);
    // Strict mode names the first violation precisely.
    let prs = data.join("snds/DCIR/ER_PRS_F.csv");
    let o = shh(
        &hub,
        PASS,
        &[
            "ingest",
            "--dataset",
            "strict",
            "--schema",
            prs.with_extension("json").to_str().expect("s"),
            prs.to_str().expect("c"),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("ER_PRS_F.csv:2: field "),
        "{err}"
    );

    let mut fhir = 0;
    for f in files(&data.join("fhir")) {
        if f.extension().is_none_or(|e| e != "ndjson") {
            continue;
        }
        let name = format!(
            "fhir_{}",
            f.file_name()
                .expect("n")
                .to_str()
                .expect("u")
                .split('.')
                .next()
                .expect("t")
        );
        let r = json(&shh(
            &hub,
            PASS,
            &[
                "--json",
                "ingest",
                "--dataset",
                &name,
                f.to_str().expect("f"),
            ],
        ));
        assert!(r["rows_written"].as_u64().expect("n") > 0, "{name}");
        fhir += 1;
    }
    assert_eq!(fhir, 6);
    // Patient names, addresses and telecom never reach the hub.
    let show = json(&shh(
        &hub,
        PASS,
        &["--json", "datasets", "show", "fhir_Patient"],
    ));
    let cols: Vec<&str> = show["columns"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c[0].as_str().expect("n"))
        .collect();
    assert_eq!(
        cols,
        [
            "id",
            "gender",
            "birth_month",
            "deceased_month",
            "deceased",
            "marital_status",
            "language"
        ]
    );
    // An unmapped resource type is refused, not guessed.
    let other = tmp.path().join("Device.000.ndjson");
    std::fs::write(
        &other,
        "{\"resourceType\":\"Device\",\"id\":\"d1\",\"status\":\"active\"}\n",
    )
    .expect("w");
    let o = shh(
        &hub,
        PASS,
        &["ingest", "--dataset", "dev", other.to_str().expect("o")],
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--fhir-generic"));
    let r = json(&shh(
        &hub,
        PASS,
        &[
            "--json",
            "ingest",
            "--fhir-generic",
            "--dataset",
            "dev",
            other.to_str().expect("o"),
        ],
    ));
    assert_eq!(r["rows_written"], 1);
}

/// A file with a header and no row (or whose every row is rejected) writes no version unless
/// `--allow-empty` says an empty version is wanted; an empty file names itself.
#[test]
fn a_file_without_rows_writes_no_version_unless_asked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let schema = tmp.path().join("t.json");
    std::fs::write(
        &schema,
        r#"{"fields":[{"name":"ID"},{"name":"N","type":"integer"}]}"#,
    )
    .expect("s");
    let ingest = |file: &Path, extra: &[&str]| {
        let mut a = vec![
            "--json",
            "ingest",
            "--dataset",
            "t",
            "--schema",
            schema.to_str().expect("s"),
        ];
        a.extend_from_slice(extra);
        a.push(file.to_str().expect("f"));
        shh(&hub, PASS, &a)
    };
    let header = tmp.path().join("header.csv");
    std::fs::write(&header, "ID,N\n").expect("w");
    let o = ingest(&header, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no row to store") && err.contains("--allow-empty"),
        "{err}"
    );
    assert_eq!(current(&hub, "t"), None);
    let all_bad = tmp.path().join("bad.csv");
    std::fs::write(&all_bad, "ID,N\na,x\nb,y\n").expect("w");
    assert!(!ingest(&all_bad, &["--max-errors", "5"]).status.success());
    assert_eq!(current(&hub, "t"), None);
    let r = json(&ingest(&header, &["--allow-empty"]));
    assert_eq!(r["rows_written"], 0);
    assert!(current(&hub, "t").is_some());
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "").expect("w");
    let err = String::from_utf8_lossy(&ingest(&empty, &[]).stderr).into_owned();
    assert!(err.contains("empty.csv") && err.contains("empty"), "{err}");
}

/// The opt-out register takes NIRs (in any written form) and nothing else: a file with one
/// bad line adds nothing and names the line, never its text.
#[test]
fn opt_out_ids_are_nirs_all_or_none() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let list = tmp.path().join("ids.txt");
    std::fs::write(&list, "1 84 12 76 451 089 46\nbad\n255081416802538\n").expect("w");
    let o = shh(&hub, PASS, &["optout", "import", list.to_str().expect("l")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("#2") && err.contains("not a NIR"),
        "{err}"
    );
    assert!(!err.contains("bad"), "{err}");
    let l = json(&shh(&hub, PASS, &["--json", "optout", "list"]));
    assert_eq!(l.as_array().map(Vec::len), Some(0), "nothing added");
    std::fs::write(&list, "1-84-12-76-451-089-46\n255081416802538\n").expect("w");
    ok(&shh(
        &hub,
        PASS,
        &["optout", "import", list.to_str().expect("l")],
    ));
    // The dashed form opts out the same patient as the plain one in a data file.
    let schema = tmp.path().join("b.json");
    std::fs::write(&schema, r#"{"fields":[{"name":"NIR"},{"name":"V"}]}"#).expect("s");
    let policy = tmp.path().join("b.toml");
    std::fs::write(&policy, "[columns]\nNIR = \"identifier\"\n").expect("p");
    let csv = tmp.path().join("b.csv");
    std::fs::write(&csv, "NIR,V\n184127645108946,a\n294037512345606,b\n").expect("c");
    let r = json(&shh(
        &hub,
        PASS,
        &[
            "--json",
            "ingest",
            "--dataset",
            "b",
            "--schema",
            schema.to_str().expect("s"),
            "--policy",
            policy.to_str().expect("p"),
            csv.to_str().expect("c"),
        ],
    ));
    assert_eq!(
        (r["rows_written"].as_u64(), r["opted_out"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
}

/// FHIR keeps no free text: display labels are not read, a unit must be a UCUM code, and a
/// line that is not UTF-8 is named by its number.
#[test]
fn fhir_free_text_is_dropped_or_checked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let show = |d: &str| -> Vec<String> {
        json(&shh(&hub, PASS, &["--json", "datasets", "show", d]))["columns"]
            .as_array()
            .expect("c")
            .iter()
            .map(|c| c[0].as_str().expect("n").to_owned())
            .collect()
    };
    let cond = shared().join("fhir/Condition.000.ndjson");
    ok(&shh(
        &hub,
        PASS,
        &["ingest", "--dataset", "cond", cond.to_str().expect("c")],
    ));
    assert!(
        !show("cond").iter().any(|c| c.contains("display")),
        "{:?}",
        show("cond")
    );
    let obs = tmp.path().join("Observation.000.ndjson");
    let line = |id: &str, unit: &str| {
        format!(
            r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"8302-2"}}]}},"valueQuantity":{{"value":170,"unit":"{unit}"}}}}"#
        )
    };
    std::fs::write(
        &obs,
        format!("{}\n{}\n", line("o1", "cm"), line("o2", "Marguerite")),
    )
    .expect("w");
    let o = shh(
        &hub,
        PASS,
        &["ingest", "--dataset", "obs", obs.to_str().expect("o")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(":2: field value_unit") && err.contains("UCUM"),
        "{err}"
    );
    assert!(!err.contains("Marguerite"), "{err}");
    let bytes = [
        line("o1", "cm").as_bytes(),
        b"\n{\"resourceType\":\"Observation\",\"id\":\"\xff\"}\n",
    ]
    .concat();
    std::fs::write(&obs, bytes).expect("w");
    let o = shh(
        &hub,
        PASS,
        &["ingest", "--dataset", "obs", obs.to_str().expect("o")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("Observation.000.ndjson:2") && err.contains("UTF-8"),
        "{err}"
    );
}

/// Waiving the guard is an explicit per-column opt-in, and the manifest and the audit event
/// say which column waived what.
#[test]
fn a_waived_guard_is_recorded_in_the_manifest_and_the_event() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = init(tmp.path());
    let schema = tmp.path().join("t.json");
    std::fs::write(
        &schema,
        r#"{"fields":[{"name":"ID"},{"name":"CODE"},{"name":"SITE"}]}"#,
    )
    .expect("s");
    let policy = tmp.path().join("p.toml");
    std::fs::write(
        &policy,
        "[columns]\nID = \"identifier\"\nCODE = { class = \"keep\", allow_nir_like = true }\n\
         SITE = { class = \"keep\", allow_contact_like = true }\n",
    )
    .expect("p");
    let csv = tmp.path().join("t.csv");
    std::fs::write(
        &csv,
        "ID,CODE,SITE\na,255081416802538,standard@chu.example.fr\n",
    )
    .expect("c");
    let args = [
        "--json",
        "ingest",
        "--dataset",
        "t",
        "--schema",
        schema.to_str().expect("s"),
        "--policy",
        policy.to_str().expect("p"),
        csv.to_str().expect("c"),
    ];
    ok(&shh(&hub, PASS, &args));
    let show = json(&shh(&hub, PASS, &["--json", "datasets", "show", "t"]));
    let waived = &show["params"]["guard_waived"];
    assert_eq!(
        waived,
        &serde_json::json!([
            {"column": "CODE", "waived": ["allow_nir_like"]},
            {"column": "SITE", "waived": ["allow_contact_like"]}
        ]),
        "{show}"
    );
    let ev = json(&shh(
        &hub,
        PASS,
        &["--json", "audit", "log", "--action", "dataset.ingest"],
    ));
    assert_eq!(&ev[0]["details"]["guard_waived"], waived, "{ev}");
    // Without the waiver, the same file is refused.
    std::fs::write(
        &policy,
        "[columns]\nID = \"identifier\"\nCODE = \"keep\"\nSITE = \"keep\"\n",
    )
    .expect("p");
    assert!(!shh(&hub, PASS, &args).status.success());
}

/// Ctrl-C in the middle of an ingest: the command says it stopped and exits 130, no version
/// is published and no data object of it is left in the store, the attempt is in the audit
/// log, and running the same command again completes.
#[test]
fn ctrl_c_mid_ingest_leaves_no_version_and_a_rerun_completes() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = init(dir.path());
    let data = synth(dir.path(), 100_000);
    let s = |x: &str| data.join(x).display().to_string();
    let (schema, policy, csv) = (
        s("ER_PRS_F.json"),
        s("ER_PRS_F.policy.toml"),
        s("ER_PRS_F.csv"),
    );
    let args = [
        "ingest",
        "--dataset",
        "ER_PRS_F",
        "--schema",
        &schema,
        "--policy",
        &policy,
        &csv,
    ];
    let mut child = common::spawn(&hub, PASS, &args);
    let started = std::time::Instant::now();
    // 1.1 M rows take several seconds even in an optimized build: one second in, it is
    // reading (and `interrupt_when` fails the test if it had finished).
    let code = common::interrupt_when(&mut child, "one second in", || {
        started.elapsed() > std::time::Duration::from_secs(1)
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    let list = json(&shh(&hub, PASS, &["--json", "datasets", "list"]));
    assert_eq!(list, serde_json::json!([]), "no version published");
    let data_objects: Vec<_> = files(&hub.join("store"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("datasets/"))
        .collect();
    assert!(data_objects.is_empty(), "{data_objects:?}");
    let events = json(&shh(
        &hub,
        PASS,
        &["--json", "audit", "log", "--action", "dataset.ingest"],
    ));
    assert!(
        events
            .as_array()
            .is_some_and(|e| e.len() == 1 && e[0]["outcome"].to_string().contains("cancelled")),
        "{events}"
    );

    let mut again = vec!["--json"];
    again.extend(args);
    let r = json(&shh(&hub, PASS, &again));
    assert!(r["rows_written"].as_u64() > Some(1_000_000), "{r}");
    ok(&shh(&hub, PASS, &["datasets", "verify", "ER_PRS_F"]));
}
