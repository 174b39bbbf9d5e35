//! Any bytes as a migration plan header (`migrate run --plan FILE`): opening checks the
//! hashes and never panics; a plan that opens yields items or errors, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let plan = dir.path().join("plan.json");
    if std::fs::write(&plan, data).is_err()
        || std::fs::write(dir.path().join("plan.objects.jsonl"), data).is_err()
    {
        return;
    }
    if let Ok(reader) = shh_migrate::PlanReader::open(&plan) {
        if let Ok(items) = reader.items() {
            for _ in items.take(1000) {}
        }
    }
});
