//! `Signature::from_bytes` + verification of arbitrary signatures against a
//! fixed key: never panics and never verifies.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xaeroid::{Signature, XaeroKeypair};

fn kp() -> &'static XaeroKeypair {
    static KP: OnceLock<XaeroKeypair> = OnceLock::new();
    KP.get_or_init(|| XaeroKeypair::generate_from_seed(&[7; 32]))
}

fuzz_target!(|data: &[u8]| {
    // Framed to the exact length with valid alg/header bytes so every run
    // reaches fn-dsa's signature decoder and verifier.
    let mut framed = vec![xaeroid::ALG_FN_DSA_512, 0x39];
    framed.extend_from_slice(data);
    framed.resize(Signature::ENCODED_LEN, 0);
    for bytes in [data, &framed[..]] {
        if let Ok(sig) = Signature::from_bytes(bytes) {
            assert_eq!(sig.as_bytes(), bytes);
            // A forgery found by the fuzzer would be a real bug.
            assert!(kp().public().verify(b"fuzz message", &sig).is_err());
            let _ = kp().public().verify_with_context(&[0u8; 300], b"m", &sig);
            let _ = kp().public().verify_identity(data, &sig);
        }
    }
});
