//! `MerkleProof::decode` on arbitrary bytes: never panics, anything accepted is
//! canonical (re-encodes to the same bytes) and verifying it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::mmr::MerkleProof;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = MerkleProof::decode(data) {
        assert_eq!(proof.encode(), data);
        let _ = proof.verify(&[0; 32], &[0; 32]);
    }
});
