//! `IdHash::from_did` on arbitrary strings: never panics, and anything it
//! accepts is canonical (re-encodes to the same string).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroid::IdHash;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = IdHash::from_did(s) {
        assert_eq!(id.to_did(), s);
    }
    // Also exercise the body decoder with a valid prefix.
    let prefixed = format!("did:xaero:{s}");
    if let Ok(id) = IdHash::from_did(&prefixed) {
        assert_eq!(id.to_did(), prefixed);
    }
});
