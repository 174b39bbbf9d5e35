//! Any text through the NIR recognizer and the département generalization.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = shh_pseudo::nir::is_nir(text);
        let _ = shh_pseudo::generalize::departement(text);
    }
});
