//! A small deterministic sample table (outpatient-claims shaped) for the demo and tests, until
//! ingest and the synthetic SNDS generator arrive. Values are made up; no real person.

use arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// The sample's schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_pseudonym", DataType::Utf8, false),
        Field::new("care_date", DataType::Date32, false),
        Field::new("act_code", DataType::Utf8, false),
        Field::new("amount_eur", DataType::Float64, false),
        Field::new("label", DataType::Utf8, true),
    ]))
}

const ACTS: &[(&str, &str, f64)] = &[
    ("GS", "consultation generaliste", 26.5),
    ("CS", "consultation specialiste", 30.0),
    ("VG", "visite a domicile", 35.0),
    ("B", "analyse biologique", 12.3),
    ("AMI", "acte infirmier", 3.15),
];

/// Batches of `rows` rows in total, `batch_rows` at a time; `marker` (if any) is placed in the
/// label of every 97th row, so tests can look for it in the stored bytes.
pub fn batches(
    rows: u64,
    batch_rows: usize,
    seed: u64,
    marker: Option<&str>,
) -> impl Iterator<Item = RecordBatch> {
    let schema = schema();
    let marker = marker.map(str::to_owned);
    let batch_rows = batch_rows.max(1) as u64;
    (0..rows.div_ceil(batch_rows)).map(move |b| {
        let start = b * batch_rows;
        let n = batch_rows.min(rows - start);
        let mut pid = Vec::with_capacity(n as usize);
        let mut date = Vec::with_capacity(n as usize);
        let mut act = Vec::with_capacity(n as usize);
        let mut amount = Vec::with_capacity(n as usize);
        let mut label = Vec::with_capacity(n as usize);
        for i in start..start + n {
            let h = splitmix(seed ^ i);
            let (code, text, price) = ACTS[(h % ACTS.len() as u64) as usize];
            pid.push(format!(
                "{:016x}",
                splitmix(seed.wrapping_add(h % (rows / 8 + 1)))
            ));
            date.push(19_358 + (h >> 8) as i32 % 730); // 2023-01-01 + up to two years
            act.push(code);
            amount.push(price * (1 + (h >> 20) % 3) as f64);
            label.push(match &marker {
                Some(m) if i % 97 == 0 => format!("{text} {m}"),
                _ => text.to_owned(),
            });
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(pid)),
            Arc::new(Date32Array::from(date)),
            Arc::new(StringArray::from(act)),
            Arc::new(Float64Array::from(amount)),
            Arc::new(StringArray::from(label)),
        ];
        match RecordBatch::try_new(schema.clone(), cols) {
            Ok(b) => b,
            // The columns are built above to match the schema.
            Err(e) => panic!("sample batch does not match its schema: {e}"),
        }
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
