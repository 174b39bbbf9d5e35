//! The readers and the converter in-process, on files written here: every row read is
//! accounted for (written, rejected or opted out), every refusal names a line and a field,
//! no message quotes a value, and the shapes that used to lose or change rows (unterminated
//! quotes, invalid UTF-8 in Parquet, NUL, keys on dropped columns, unreadable constraints) are
//! refused by name.

use arrow::array::{Array, AsArray, RecordBatch};
use proptest::prelude::*;
use shh_ingest::pipeline::{self, PipelineOptions};
use shh_ingest::source::{CsvSource, ParquetSource, Source};
use shh_ingest::{ColumnPolicy, Converter, IngestError, IngestStats, Plan, TableSchema};
use shh_pseudo::Pseudonymizer;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NIR: &str = "185057800608491";

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let d = tempfile::tempdir().expect("tmp");
        let dir = d.path().to_owned();
        Self { _dir: d, dir }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    fn schema(&self, json: &str) -> TableSchema {
        TableSchema::from_file(&self.file("t.json", json.as_bytes())).expect("schema")
    }
}

fn converter(schema: &TableSchema, policy: &str, max_errors: u64) -> Converter {
    let policy = ColumnPolicy::parse(policy).expect("policy");
    Converter {
        plan: Plan::new(schema, &policy).expect("plan"),
        pseudonymizer: Pseudonymizer::new(1, &[7; 32]),
        optout: HashSet::new(),
        fk_sets: Vec::new(),
        reject_rows: max_errors > 0,
        lenient: false,
    }
}

struct Outcome {
    result: Result<IngestStats, IngestError>,
    batches: Vec<RecordBatch>,
    rejects: String,
}

fn run(conv: &Converter, source: Box<dyn Source>, opts: PipelineOptions) -> Outcome {
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    let result = pipeline::run(
        conv,
        vec![source],
        &opts,
        Some(&mut rejects),
        &shh_task::Task::silent(),
        |b| {
            batches.push(b);
            Ok(())
        },
    );
    Outcome {
        result,
        batches,
        rejects: String::from_utf8_lossy(&rejects).into_owned(),
    }
}

fn csv(s: &Setup, conv: &Converter, schema: &TableSchema, body: &[u8], max: u64) -> Outcome {
    let p = s.file("t.csv", body);
    opened(conv, CsvSource::open(&p, schema, &conv.plan), max)
}

/// Runs an opened source with `max` rejects allowed (and an empty result allowed), or
/// returns why it could not be opened.
fn opened(conv: &Converter, src: Result<impl Source + 'static, IngestError>, max: u64) -> Outcome {
    match src {
        Ok(src) => run(
            conv,
            Box::new(src),
            PipelineOptions {
                max_errors: max,
                allow_empty: true,
                ..Default::default()
            },
        ),
        Err(e) => Outcome {
            result: Err(e),
            batches: Vec::new(),
            rejects: String::new(),
        },
    }
}

/// The cell error an outcome must be.
fn refused(o: Outcome, what: &str) -> shh_ingest::CellError {
    match o.result {
        Err(IngestError::Cell(e)) => e,
        Err(e) => panic!("{what}: refused, but not at a cell: {e}"),
        Ok(st) => panic!("{what} accepted ({} rows written)", st.rows_written),
    }
}

fn strings(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for c in b.columns() {
            if let Some(s) = c.as_string_opt::<i32>() {
                out.extend(s.iter().flatten().map(str::to_owned));
            } else {
                let f =
                    arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default())
                        .expect("fmt");
                out.extend((0..c.len()).map(|i| f.value(i).to_string()));
            }
        }
    }
    out
}

/// The records of a CSV as RFC 4180 reads them, by a parser written independently of the
/// one under test: `None` if the file is not well-formed RFC 4180 (an unterminated quote, a
/// closing quote followed by text).
fn reference_records(b: &[u8]) -> Option<usize> {
    let (mut records, mut i, mut any) = (0usize, 0usize, false);
    let mut field_start = true;
    let mut in_quotes = false;
    while i < b.len() {
        let c = b[i];
        if in_quotes {
            if c == b'"' {
                if b.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                in_quotes = false;
                match b.get(i + 1) {
                    None | Some(b',' | b'\n' | b'\r') => {}
                    Some(_) => return None,
                }
            }
            i += 1;
            continue;
        }
        match c {
            b'"' if field_start => {
                in_quotes = true;
                field_start = false;
                any = true;
            }
            b',' => {
                field_start = true;
                any = true;
            }
            b'\n' | b'\r' => {
                if any {
                    records += 1;
                }
                any = false;
                field_start = true;
                if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            _ => {
                field_start = false;
                any = true;
            }
        }
        i += 1;
    }
    if in_quotes {
        return None;
    }
    Some(records + usize::from(any))
}

const SCHEMA3: &str =
    r#"{"fields":[{"name":"ID"},{"name":"AGE","type":"integer"},{"name":"CITY"}]}"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Arbitrary bytes after a header: either the file is refused naming a line, or every
    /// row the reader read is written, rejected (with its line) or opted out, and the rows
    /// read are exactly the records an independent RFC 4180 reading finds.
    #[test]
    fn every_csv_row_is_accounted_for(body in proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(b"ab1,\"\n\r x".to_vec()),
            1 => any::<u8>(),
        ], 0..200)) {
        let s = Setup::new();
        let schema = s.schema(SCHEMA3);
        let conv = converter(&schema, "[columns]\nID = \"identifier\"", 1_000_000);
        let mut file = b"ID,AGE,CITY\n".to_vec();
        file.extend_from_slice(&body);
        let o = csv(&s, &conv, &schema, &file, 1_000_000);
        match o.result {
            Ok(st) => {
                prop_assert_eq!(st.rows_read, st.rows_written + st.rows_rejected + st.opted_out);
                let written: usize = o.batches.iter().map(RecordBatch::num_rows).sum();
                prop_assert_eq!(written as u64, st.rows_written);
                let reject_lines = o.rejects.lines().count();
                prop_assert_eq!(reject_lines as u64, st.rows_rejected);
                for l in o.rejects.lines() {
                    let line: u64 = l.split(',').nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
                    prop_assert!(line >= 2, "{}", l);
                }
                let expected = reference_records(&file).map(|n| n as u64 - 1);
                prop_assert_eq!(Some(st.rows_read), expected, "{:?}", String::from_utf8_lossy(&file));
            }
            Err(IngestError::Cell(e)) => {
                prop_assert!(e.line >= 1, "{}", e);
            }
            Err(e) => prop_assert!(false, "refused without a line: {}", e),
        }
    }

    /// Whatever a value is, the message about it never contains it.
    #[test]
    fn refusals_never_quote_the_value(v in "[A-Za-z0-9@.+-][A-Za-z0-9@.+ -]{2,28}[A-Za-z0-9@.+-]", which in 0usize..6) {
        let s = Setup::new();
        let schema = s.schema(r#"{"fields":[{"name":"ID"},
            {"name":"N","type":"integer","constraints":{"maximum":5}},
            {"name":"S","constraints":{"maxLength":3,"pattern":"[a-z]+","enum":["abc"]}},
            {"name":"D","type":"date"}]}"#);
        let conv = converter(&schema, "[columns]\nID = \"identifier\"", 0);
        let cell = |k| if k == which % 3 { v.as_str() } else { ["1", "abc", "2024-01-01"][k] };
        let row = format!("ID,N,S,D\nx,{},{},{}\n", cell(0), cell(1), cell(2));
        let o = csv(&s, &conv, &schema, row.as_bytes(), 0);
        if let Err(e) = o.result {
            let m = e.to_string();
            prop_assert!(!m.contains(v.trim()), "{}", m);
        }
    }
}

#[test]
fn an_unterminated_quote_is_refused_at_the_line_it_opened() {
    let s = Setup::new();
    let schema = s.schema(SCHEMA3);
    let conv = converter(&schema, "[columns]\nID = \"identifier\"", 5);
    for (body, line) in [
        (&b"ID,AGE,CITY\na3,30,\"Paris\na4,40,Lyon\n"[..], 2),
        (
            b"ID,AGE,CITY\na1,1,x\na3,30,\"Paris\na4,40,Lyon\na5,50,\"Nice\"\n",
            3,
        ),
    ] {
        let o = csv(&s, &conv, &schema, body, 5);
        let Err(IngestError::Cell(e)) = o.result else {
            panic!("accepted: {:?}", o.result.map(|s| s.rows_written));
        };
        assert_eq!(e.line, line, "{e}");
        assert!(e.reason.contains("quoted field"), "{e}");
        assert!(o.batches.is_empty() || e.line > 2);
    }
}

#[test]
fn nul_and_invalid_utf8_are_refused_the_same_way_everywhere() {
    let s = Setup::new();
    let schema = s.schema(SCHEMA3);
    let conv = converter(&schema, "[columns]\nID = \"identifier\"", 0);
    for (body, why) in [
        (&b"ID,AGE,CITY\na,1,Pa\0ris\n"[..], "NUL"),
        (b"ID,AGE,CITY\na,1,Pa\xffris\n", "UTF-8"),
        (b"ID,AGE,CITY\na\0,1,Paris\n", "NUL"),
        // A cell boundary inside a character: two halves that are valid only together.
        (b"ID,AGE,CITY\na,1,\xc3\n", "UTF-8"),
    ] {
        let o = csv(&s, &conv, &schema, body, 0);
        let e = refused(o, "{why} accepted");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains(why), "{e}");
    }
}

#[test]
fn a_key_on_a_dropped_column_is_still_checked() {
    let s = Setup::new();
    let schema = s.schema(
        r#"{"fields":[{"name":"NOM"},{"name":"V","type":"integer"}],"primaryKey":["NOM"]}"#,
    );
    let conv = converter(&schema, "[columns]\nNOM = \"direct\"", 0);
    assert_eq!(conv.plan.hidden, ["NOM"]);
    let o = csv(
        &s,
        &conv,
        &schema,
        b"NOM,V\nDupont,1\nMartin,2\nDupont,3\n",
        0,
    );
    let Err(e @ IngestError::Duplicate { .. }) = o.result else {
        panic!("duplicate accepted");
    };
    let m = e.to_string();
    assert!(
        m.contains("t.csv:4") && m.contains("t.csv:2") && !m.contains("Dupont"),
        "{m}"
    );
    let o = csv(&s, &conv, &schema, b"NOM,V\nDupont,1\nMartin,2\n", 0);
    let st = o.result.expect("unique");
    assert_eq!(st.rows_written, 2);
    assert!(
        !strings(&o.batches).iter().any(|v| v.contains("Dupont")),
        "the dropped column is not stored"
    );
}

#[test]
fn constraints_that_cannot_be_read_name_the_schema_file_and_field() {
    let s = Setup::new();
    for (schema, what) in [
        (
            r#"{"fields":[{"name":"A","type":"integer","constraints":{"minimum":"abc"}}]}"#,
            "minimum",
        ),
        (
            r#"{"fields":[{"name":"A","type":"date","constraints":{"maximum":"2024-13-99"}}]}"#,
            "maximum",
        ),
        (
            r#"{"fields":[{"name":"A","constraints":{"minimum":3}}]}"#,
            "minimum",
        ),
        (
            r#"{"fields":[{"name":"A","type":"integer","constraints":{"minimum":1,"exclusiveMinimum":0}}]}"#,
            "exclusiveMinimum",
        ),
        (
            r#"{"fields":[{"name":"A","type":"colour"}]}"#,
            "unknown type",
        ),
        (
            r#"{"fields":[{"name":"A","constraints":{"pattern":"(["}}]}"#,
            "pattern",
        ),
    ] {
        let t = TableSchema::from_file(&s.file("bad.json", schema.as_bytes())).expect("names ok");
        let e = Plan::new(&t, &ColumnPolicy::defaults()).expect_err(schema);
        let m = e.to_string();
        assert!(
            m.contains("bad.json") && m.contains("field A") && m.contains(what),
            "{m}"
        );
    }
    let e = TableSchema::from_file(&s.file(
        "typo.json",
        br#"{"fields":[{"name":"A","constraints":{"minimun":3}}]}"#,
    ))
    .expect_err("unknown constraint");
    assert!(
        e.to_string().contains("typo.json") && e.to_string().contains("minimun"),
        "{e}"
    );
    let e = TableSchema::from_file(&s.file(
        "nir.json",
        format!(r#"{{"fields":[{{"name":"P_{NIR}"}}]}}"#).as_bytes(),
    ))
    .expect_err("a field named after a NIR");
    assert!(
        !e.to_string().contains(NIR) && e.to_string().contains("NIR"),
        "{e}"
    );
}

#[test]
fn typed_bounds_are_enforced() {
    let s = Setup::new();
    let schema = s.schema(
        r#"{"fields":[{"name":"D","type":"date","constraints":{"minimum":"2000-01-01"}},
                      {"name":"N","type":"number","constraints":{"exclusiveMaximum":10}}]}"#,
    );
    let conv = converter(&schema, "", 0);
    for (row, field) in [("1999-12-31,1", "D"), ("2000-01-01,10", "N")] {
        let o = csv(&s, &conv, &schema, format!("D,N\n{row}\n").as_bytes(), 0);
        let e = refused(o, "{row} accepted");
        assert_eq!(e.field, field, "{e}");
    }
    let o = csv(&s, &conv, &schema, b"D,N\n2000-01-01,9.99\n", 0);
    assert_eq!(o.result.expect("in bounds").rows_written, 1);
}

#[test]
fn the_guard_refuses_identifiers_in_any_kept_cell_and_leaves_them_out_of_rejects() {
    let s = Setup::new();
    let schema =
        s.schema(r#"{"fields":[{"name":"ID"},{"name":"NOTE"},{"name":"N","type":"number"}]}"#);
    // NOTE is kept on purpose (the default policy would drop it as free text).
    let conv = converter(
        &schema,
        "[columns]\nID = \"identifier\"\nNOTE = \"keep\"",
        100,
    );
    let rows = [
        format!("patient {NIR} called"),
        "1-85-05-78-006-084-91".into(),
        "1.85.05.78.006.084.91".into(),
        "ecrire a jean.dupont@example.fr".into(),
        "tel 06 12 34 56 78".into(),
        "rappeler le +33 6 12 34 56 78".into(),
        "１８５０５７８００６０８４９１".into(),
    ];
    let mut body = String::from("ID,NOTE,N\n");
    for (i, r) in rows.iter().enumerate() {
        body.push_str(&format!("p{i},\"{r}\",1\n"));
    }
    body.push_str(&format!("p9,fine,{NIR}.0\n"));
    body.push_str("p10,fine,1.85057800608491E14\n");
    body.push_str("p11,CIP 3400930000127 ok,4818122750023768.0\n");
    let o = csv(&s, &conv, &schema, body.as_bytes(), 100);
    let st = o.result.expect("rows rejected, not the file");
    assert_eq!(st.rows_rejected, rows.len() as u64 + 2, "{}", o.rejects);
    assert_eq!(
        st.rows_written, 1,
        "the pharmacy code and the big amount are not NIRs"
    );
    let digits: String = o.rejects.chars().filter(char::is_ascii_digit).collect();
    assert!(!digits.contains(NIR), "{}", o.rejects);
    assert!(
        !o.rejects.contains("dupont") && !o.rejects.contains("56 78"),
        "{}",
        o.rejects
    );
}

fn write_parquet(path: &Path, batch: &RecordBatch, dictionary: bool) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_dictionary_enabled(dictionary)
        .build();
    let f = std::fs::File::create(path).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), Some(props)).expect("w");
    w.write(batch).expect("write");
    w.close().expect("close");
}

fn parquet(s: &Setup, schema: &TableSchema, batch: &RecordBatch, dict: bool, max: u64) -> Outcome {
    let p = s.dir.join("t.parquet");
    write_parquet(&p, batch, dict);
    let conv = converter(schema, "[columns]\nID = \"identifier\"", max);
    opened(&conv, ParquetSource::open(&p, schema, &conv.plan), max)
}

fn batch(cols: Vec<(&str, Arc<dyn Array>)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).expect("batch")
}

/// A Parquet file of two `BYTE_ARRAY` columns annotated UTF-8 (`ID`, `V`), written below
/// Arrow so that `V` can hold bytes that are not UTF-8.
fn write_raw_utf8(path: &Path, ids: &[&[u8]], values: &[&[u8]], dictionary: bool) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message t { required binary ID (UTF8); required binary V (UTF8); }",
        )
        .expect("schema"),
    );
    let props = Arc::new(
        parquet::file::properties::WriterProperties::builder()
            .set_dictionary_enabled(dictionary)
            .build(),
    );
    let f = std::fs::File::create(path).expect("create");
    let mut w = parquet::file::writer::SerializedFileWriter::new(f, schema, props).expect("w");
    let mut rg = w.next_row_group().expect("rg");
    for col in [ids, values] {
        let mut c = rg.next_column().expect("col").expect("some");
        let vals: Vec<ByteArray> = col.iter().map(|v| ByteArray::from(v.to_vec())).collect();
        c.typed::<ByteArrayType>()
            .write_batch(&vals, None, None)
            .expect("write");
        c.close().expect("close");
    }
    rg.close().expect("rg close");
    w.close().expect("file close");
}

#[test]
fn invalid_utf8_in_parquet_is_refused_cell_by_cell_like_in_a_csv() {
    let s = Setup::new();
    let schema = s.schema(r#"{"fields":[{"name":"ID"},{"name":"V"}]}"#);
    let bytes = vec![&b"ok"[..], b"\xff\xfe", b"fine"];
    let p = s.dir.join("raw.parquet");
    for (string, dict) in [(false, false), (false, true), (true, false), (true, true)] {
        if string {
            write_raw_utf8(&p, &[b"a", b"b", b"c"], &bytes, dict);
        } else {
            let ids: Arc<dyn Array> =
                Arc::new(arrow::array::StringArray::from(vec!["a", "b", "c"]));
            let binary: Arc<dyn Array> = Arc::new(arrow::array::BinaryArray::from(bytes.clone()));
            write_parquet(&p, &batch(vec![("ID", ids), ("V", binary)]), dict);
        }
        for max in [0, 5] {
            let conv = converter(&schema, "[columns]\nID = \"identifier\"", max);
            let src = ParquetSource::open(&p, &schema, &conv.plan).expect("open");
            let o = run(
                &conv,
                Box::new(src),
                PipelineOptions {
                    max_errors: max,
                    ..Default::default()
                },
            );
            let case = format!("string {string}, dictionary {dict}, max {max}");
            if max == 0 {
                let e = refused(o, "invalid UTF-8 accepted ({case})");
                assert_eq!((e.line, e.field.as_str()), (2, "V"), "{case}: {e}");
                assert!(e.reason.contains("UTF-8"), "{case}: {e}");
            } else {
                let st = o.result.expect("rejected row");
                assert_eq!((st.rows_written, st.rows_rejected), (2, 1), "{case}");
                assert!(
                    o.rejects.contains(",2,V,is not valid UTF-8"),
                    "{case}: {}",
                    o.rejects
                );
                let kept = strings(&o.batches);
                assert!(
                    kept.iter().any(|v| v == "ok") && kept.iter().any(|v| v == "fine"),
                    "{case}: the good rows are kept as they were: {kept:?}"
                );
            }
        }
    }
}

#[test]
fn parquet_cells_of_any_type_pass_the_guard() {
    let s = Setup::new();
    let ids: Arc<dyn Array> = Arc::new(arrow::array::StringArray::from(vec!["a", "b"]));
    let floats: Arc<dyn Array> = Arc::new(arrow::array::Float64Array::from(vec![
        1.5,
        185_057_800_608_491.0,
    ]));
    let schema = s.schema(r#"{"fields":[{"name":"ID"},{"name":"V","type":"number"}]}"#);
    let o = parquet(
        &s,
        &schema,
        &batch(vec![("ID", ids.clone()), ("V", floats)]),
        false,
        0,
    );
    let e = refused(o, "float NIR accepted");
    assert_eq!((e.line, e.field.as_str()), (2, "V"));
    assert!(e.reason.contains("NIR"), "{e}");

    let mut list = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    list.values().append_value("x");
    list.append(true);
    list.values().append_value("y");
    list.values().append_value(NIR);
    list.append(true);
    let list: Arc<dyn Array> = Arc::new(list.finish());
    let schema = s.schema(r#"{"fields":[{"name":"ID"},{"name":"V","type":"array"}]}"#);
    let o = parquet(
        &s,
        &schema,
        &batch(vec![("ID", ids.clone()), ("V", list)]),
        false,
        0,
    );
    let e = refused(o, "list NIR accepted");
    assert_eq!((e.line, e.field.as_str()), (2, "V"));

    let st: Arc<dyn Array> = Arc::new(arrow::array::StructArray::from(vec![(
        Arc::new(arrow_schema::Field::new(
            "x",
            arrow_schema::DataType::Int64,
            false,
        )),
        Arc::new(arrow::array::Int64Array::from(vec![1, 2])) as Arc<dyn Array>,
    )]));
    let schema = s.schema(r#"{"fields":[{"name":"ID"},{"name":"V","type":"object"}]}"#);
    let o = parquet(&s, &schema, &batch(vec![("ID", ids), ("V", st)]), false, 0);
    let e = refused(o, "struct accepted");
    assert_eq!(e.field, "V");
    assert!(e.reason.contains("struct"), "{e}");
}

#[test]
fn a_file_with_no_row_left_is_refused_unless_allowed() {
    let s = Setup::new();
    let schema = s.schema(SCHEMA3);
    let conv = converter(&schema, "[columns]\nID = \"identifier\"", 0);
    let p = s.file("h.csv", b"ID,AGE,CITY\n");
    for allow in [false, true] {
        let src = CsvSource::open(&p, &schema, &conv.plan).expect("open");
        let o = run(
            &conv,
            Box::new(src),
            PipelineOptions {
                allow_empty: allow,
                ..Default::default()
            },
        );
        match (allow, o.result) {
            (false, Err(IngestError::Empty { read: 0, .. })) => {}
            (true, Ok(st)) => assert_eq!(st.rows_written, 0),
            (a, r) => panic!("allow_empty {a}: {:?}", r.map(|s| s.rows_written)),
        }
    }
    let e = CsvSource::open(&s.file("e.csv", b""), &schema, &conv.plan)
        .err()
        .expect("empty file refused");
    assert!(e.to_string().contains("empty"), "{e}");
}

/// A CSV read from any reader (an upload as it arrives, here a reader that hands out a few
/// bytes at a time) gives what the same bytes in a file give: the rows, the refusals at their
/// line, and the source's size and BLAKE3.
#[test]
fn a_csv_from_a_stream_reads_like_the_same_file() {
    /// Hands out at most 7 bytes per read, as a network stream might.
    struct Trickle(std::io::Cursor<Vec<u8>>);
    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }
    let s = Setup::new();
    let schema = s.schema(SCHEMA3);
    let conv = converter(&schema, "[columns]\nID = \"identifier\"", 5);
    for body in [
        &b"ID,AGE,CITY\na1,30,Paris\na2,40,\"Lyon, Rh\xc3\xb4ne\"\na3,50,Nice\n"[..],
        b"ID,AGE,CITY\na1,30,Paris\na2,x,Lyon\na3,50,\"Nice\n",
    ] {
        let from_file = csv(&s, &conv, &schema, body, 5);
        let streamed = opened(
            &conv,
            CsvSource::from_reader(
                "upload.csv",
                Box::new(Trickle(std::io::Cursor::new(body.to_vec()))),
                &schema,
                &conv.plan,
            ),
            5,
        );
        assert_eq!(strings(&from_file.batches), strings(&streamed.batches));
        match (&from_file.result, &streamed.result) {
            (Ok(a), Ok(b)) => {
                assert_eq!((a.rows_read, a.rows_written), (b.rows_read, b.rows_written));
                assert_eq!(a.sources[0].blake3, b.sources[0].blake3);
                assert_eq!(a.sources[0].bytes, body.len() as u64);
                assert_eq!(b.sources[0].path, "upload.csv");
            }
            (Err(IngestError::Cell(a)), Err(IngestError::Cell(b))) => {
                assert_eq!((a.line, &a.field), (b.line, &b.field));
                assert_eq!(b.file, "upload.csv");
            }
            (a, b) => panic!("file {a:?} but stream {b:?}"),
        }
    }
}
