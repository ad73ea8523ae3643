//! `BlockRef::decode` and its accessors on arbitrary bytes: never panics; a block that
//! validates yields events whose lengths add up to its data, and rebuilding it from
//! those events gives the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::{BlockBuilder, BlockRef};

fuzz_target!(|data: &[u8]| {
    let Ok(block) = BlockRef::decode(data) else {
        return;
    };
    assert!(!block.is_empty());
    let _ = block.get(data.len() % (block.len() + 1));
    if block.validate().is_ok() {
        let mut rebuilt = BlockBuilder::new();
        for e in block.iter() {
            rebuilt.push(e.expect("validated"));
        }
        assert_eq!(rebuilt.len(), block.len());
        assert_eq!(rebuilt.to_vec(), data);
    } else {
        assert!(block.iter().any(|e| e.is_err()));
    }
});
