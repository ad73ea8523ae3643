//! The document update decoder on arbitrary bytes (event payload of type 33, from
//! peers): never panics, and anything accepted encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_docs::DocUpdate;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = DocUpdate::decode(data) {
        assert_eq!(u.encode().expect("decoded updates encode"), data);
    }
});
