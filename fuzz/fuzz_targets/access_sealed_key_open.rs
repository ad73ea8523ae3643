//! A sealed epoch key from arbitrary bytes: decode, then decapsulate and unwrap with a
//! fixed ML-KEM-768 key pair. Never panics; a forged sealed key never opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_access::{KemKeypair, SealedKey};
use xaeroflux_core::GroupId;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = SealedKey::decode(data) {
        assert_eq!(s.encode(), data);
        let kp = KemKeypair::from_seed(&[7; 64]);
        assert!(s.open(&GroupId([1; 32]), 1, &[0; 8], &kp).is_err());
    }
});
