//! The access control's decoders on arbitrary bytes: a membership op (event payload of
//! type 16, from peers) and an invite. Never panics; anything accepted re-encodes to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_access::{Invite, MemberOp};

fuzz_target!(|data: &[u8]| {
    if let Ok(op) = MemberOp::decode(data) {
        assert_eq!(op.as_bytes(), data);
        let _ = op.id();
    }
    if let Ok(i) = Invite::decode(data) {
        assert_eq!(i.as_bytes(), data);
    }
});
