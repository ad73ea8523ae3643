//! An encrypted payload from arbitrary bytes: decode the envelope and try to open it
//! with a fixed epoch key. Never panics; forged bytes never authenticate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_access::{Envelope, EpochKey, open_payload};
use xaeroflux_core::GroupId;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Envelope::decode(data) {
        assert_eq!(e.encode(), data);
    }
    let key = EpochKey::from_bytes(1, [9; 32]);
    assert!(open_payload(&GroupId([1; 32]), 256, data, |_, _| Some(&key)).is_err());
});
