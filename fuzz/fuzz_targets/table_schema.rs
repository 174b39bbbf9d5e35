//! Any bytes as a Table Schema: parse and check must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<shh_ingest::TableSchema>(data) {
        let _ = s.check();
        let _ = shh_ingest::Plan::new(&s, &shh_ingest::ColumnPolicy::defaults());
    }
});
