//! Blob attachment codec: arbitrary bytes never panic, and whatever decodes re-encodes
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_blobs::{Attachment, BlobRef};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Attachment::decode(data) {
        assert_eq!(a.encode().as_deref(), Ok(data));
    }
    if let Ok(r) = BlobRef::from_bytes(data) {
        assert_eq!(&r.to_bytes()[..], data);
    }
});
