//! Any bytes as a migration journal (what a crash, a full disk or a bad sector can leave):
//! replaying it never panics, and a journal that opens takes a new record.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("journal.ndjson");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(j) = shh_migrate::Journal::open_compacting_at(&path, 256) {
        let _ = j.done("after", 1, "h");
    }
});
