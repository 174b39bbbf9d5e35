//! Any text as a column policy: parse must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = shh_ingest::ColumnPolicy::parse(text);
    }
});
