//! Any text through the identifier guard, its redaction and the UCUM check: hits lie on
//! character boundaries, redaction leaves nothing the guard would find, never a panic.
#![no_main]
use shh_pseudo::guard::{Look, redact, scan};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(h) = scan(text, Look::ALL) {
        assert!(h.start < h.end && text.is_char_boundary(h.start) && text.is_char_boundary(h.end));
    }
    let r = redact(text);
    assert!(scan(&r, Look::ALL).is_none(), "{text:?} redacted to {r:?}");
    let _ = shh_ingest::ucum::is_ucum(text);
});
