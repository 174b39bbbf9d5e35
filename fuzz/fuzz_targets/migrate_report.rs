//! Any bytes as an acceptance report (an auditor checks reports handed over by an operator it
//! does not trust): checking never panics and never accepts what the key did not sign.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("report.json"), data).is_err()
        || std::fs::write(dir.path().join("objects.jsonl"), data).is_err()
    {
        return;
    }
    let Ok(signer) = shh_audit::Signer::from_seed(&[7; 32]) else {
        return;
    };
    let checked = shh_migrate::report::check_report(dir.path(), &[signer.public()]);
    assert!(checked.is_err(), "unsigned bytes were accepted as a report");
});
