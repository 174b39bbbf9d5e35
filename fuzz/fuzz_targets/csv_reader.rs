//! Any bytes after a CSV header through the reader (quoting checked as it reads) and the
//! converter: either the file is refused naming a line, or every row read is written,
//! rejected or opted out, and every rejected row names a line. Never a panic.
#![no_main]
use shh_ingest::pipeline::{self, PipelineOptions};
use shh_ingest::source::CsvSource;
use shh_ingest::{ColumnPolicy, Converter, IngestError, Plan, TableSchema};

const SCHEMA: &str = r#"{"fields":[{"name":"ID"},{"name":"AGE","type":"integer"},
    {"name":"NOTE"}],"primaryKey":["ID"]}"#;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("t.csv");
    let mut file = b"ID,AGE,NOTE\n".to_vec();
    file.extend_from_slice(data);
    std::fs::write(&path, &file).expect("write");
    let schema: TableSchema = serde_json::from_str(SCHEMA).expect("schema");
    let policy = ColumnPolicy::parse("[columns]\nID = \"identifier\"\nNOTE = \"keep\"").expect("p");
    let plan = Plan::new(&schema, &policy).expect("plan");
    let Ok(src) = CsvSource::open(&path, &schema, &plan) else { return };
    let conv = Converter {
        plan,
        pseudonymizer: shh_pseudo::Pseudonymizer::new(1, &[0u8; 32]),
        optout: Default::default(),
        fk_sets: Vec::new(),
        reject_rows: true,
        lenient: false,
    };
    let opts = PipelineOptions {
        max_errors: u64::MAX,
        allow_empty: true,
        ..Default::default()
    };
    let mut rejects = Vec::new();
    let mut written = 0u64;
    let r = pipeline::run(&conv, vec![Box::new(src)], &opts, Some(&mut rejects), &|_| {}, |b| {
        written += b.num_rows() as u64;
        Ok(())
    });
    match r {
        Ok(st) => {
            assert_eq!(st.rows_read, st.rows_written + st.rows_rejected + st.opted_out);
            assert_eq!(written, st.rows_written);
            assert_eq!(rejects.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64, st.rows_rejected);
        }
        Err(IngestError::Cell(e)) => assert!(e.line >= 1),
        Err(IngestError::Duplicate { .. }) => {}
        Err(e) => panic!("refused without a line: {e}"),
    }
});
