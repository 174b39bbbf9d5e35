//! Any bytes as an audit-log export (an auditor verifies exports handed over by an operator
//! it does not trust): verification never panics, and events no trusted key signed never
//! verify.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    // The same bytes as the heads and as the events: a head must sign the events it covers.
    if std::fs::write(dir.path().join("heads.ndjson"), data).is_err()
        || std::fs::write(dir.path().join("events.ndjson"), data).is_err()
    {
        return;
    }
    let Ok(signer) = shh_audit::Signer::from_seed(&[7; 32]) else {
        return;
    };
    if let Ok(report) = shh_audit::verify_export(dir.path(), &[signer.public()], Vec::new()) {
        assert!(
            report.last_head.is_none(),
            "a head the fuzzer made up verified with a key it does not hold"
        );
    }
});
