//! Any cells (separated by 0x1f, rows by 0x1e) through a converter that uses every type,
//! constraint and generalization: a bad cell is an error, never a panic.
#![no_main]
use shh_ingest::{ColumnPolicy, Converter, Plan, RawChunk, TableSchema};

const SCHEMA: &str = r#"{"fields":[
    {"name":"ID","constraints":{"minLength":2,"maxLength":20,"pattern":"[0-9A-Z ]+"}},
    {"name":"D","type":"date"},{"name":"DT","type":"datetime","format":"any"},
    {"name":"M","type":"date","format":"%m"},{"name":"YM","type":"yearmonth"},
    {"name":"Y","type":"year"},{"name":"N","type":"number","constraints":{"decimals":2}},
    {"name":"I","type":"integer","constraints":{"minimum":0,"maximum":130}},
    {"name":"B","type":"boolean"},{"name":"C","constraints":{"enum":["A","B"]}},
    {"name":"COM"}],"primaryKey":["ID"]}"#;
const POLICY: &str = r#"[columns]
ID = "identifier"
D = { class = "quasi", generalize = "month" }
DT = { class = "quasi", generalize = "year" }
YM = { class = "quasi", generalize = "month" }
I = { class = "quasi", generalize = "age_band:5" }
COM = { class = "quasi", generalize = "departement" }
"#;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (lenient, data) = match data.split_first() {
        Some((f, rest)) => (f & 1 == 1, rest),
        None => return,
    };
    let schema: TableSchema = serde_json::from_str(SCHEMA).expect("schema");
    let policy = ColumnPolicy::parse(POLICY).expect("policy");
    let plan = Plan::with_mode(&schema, &policy, lenient).expect("plan");
    let ncols = plan.columns.len();
    let mut chunk = RawChunk::new("fuzz".into());
    for (i, row) in data.split(|&b| b == 0x1e).enumerate() {
        let mut cells: Vec<&[u8]> = row.split(|&b| b == 0x1f).collect();
        cells.resize(ncols, b"");
        for c in &cells[..ncols] {
            chunk.push(c);
        }
        chunk.lines.push(i as u64 + 1);
    }
    let conv = Converter {
        plan,
        pseudonymizer: shh_pseudo::Pseudonymizer::new(1, &[0u8; 32]),
        optout: Default::default(),
        fk_sets: Vec::new(),
        reject_rows: lenient,
        lenient,
    };
    let _ = conv.convert(&chunk);
});
