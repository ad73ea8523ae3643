//! `HnswIndex::from_bytes` on arbitrary bytes: never panics, anything accepted
//! re-encodes to the same bytes and can be searched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_vector::HnswIndex;

fuzz_target!(|data: &[u8]| {
    if let Ok((index, position)) = HnswIndex::from_bytes(data) {
        assert_eq!(index.to_bytes(position).ok().as_deref(), Some(data));
        if let Ok(params) = index.params() {
            let mut q = vec![0.0f32; params.dimension];
            q[0] = 1.0;
            let _ = index.search(&q, 3, 8);
        }
    }
});
