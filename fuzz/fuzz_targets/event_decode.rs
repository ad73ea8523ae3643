//! `EventRef::decode` on arbitrary bytes: never panics, and anything accepted is the
//! canonical encoding (re-encodes to the same bytes, same id).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::EventRef;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = EventRef::decode(data) {
        let owned = ev.to_owned();
        assert_eq!(owned.encode(), data);
        assert_eq!(owned.id(), ev.id());
    }
});
