//! `SignedCheckpoint::decode` / `Checkpoint::decode` on arbitrary bytes: never panic;
//! anything accepted re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::{Checkpoint, SignedCheckpoint};

fuzz_target!(|data: &[u8]| {
    if let Ok(cp) = Checkpoint::decode(data) {
        assert_eq!(&cp.encode()[..], data);
    }
    if let Ok(cp) = SignedCheckpoint::decode(data) {
        assert_eq!(cp.encode(), data);
    }
});
