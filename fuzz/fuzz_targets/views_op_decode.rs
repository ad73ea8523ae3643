//! The state views' decoders on arbitrary bytes: a record operation (event payload of
//! type 32, from peers), a field value and a stored record state. Never panics, and
//! anything accepted is the one canonical encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_views::{EdgeState, Op, RecordState, Value};

fuzz_target!(|data: &[u8]| {
    if let Ok(op) = Op::decode(data) {
        assert_eq!(op.encode().expect("decoded ops encode"), data);
    }
    if let Ok(v) = Value::decode(data) {
        assert_eq!(v.encode().expect("decoded values encode"), data);
    }
    if let Ok(s) = RecordState::decode(data) {
        assert_eq!(s.encode().expect("decoded states encode"), data);
    }
    if let Ok(e) = EdgeState::decode(data) {
        assert_eq!(e.encode(), data);
    }
});
