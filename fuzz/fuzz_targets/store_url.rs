//! Any string as a store URL: parsing never panics, and what parses prints back to a URL that
//! parses to the same store (URLs are recorded in plans, reports and the audit log).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &str| {
    if let Ok(u) = shh_store::StoreUrl::parse(data) {
        let _ = u.destination();
        let again = shh_store::StoreUrl::parse(&u.to_string()).expect("a printed URL parses");
        assert_eq!(again, u);
    }
});
