//! `XaeroID::from_bytes` on arbitrary bytes: never panics; accepted keys
//! re-encode to the same bytes and can run a verification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroid::{Signature, XaeroID};

fuzz_target!(|data: &[u8]| {
    // Raw input, and the input behind a valid alg byte + fn-dsa header, cut or
    // zero-padded to the exact length, so every run reaches fn-dsa's decoder.
    let mut framed = vec![xaeroid::ALG_FN_DSA_512, 0x09];
    framed.extend_from_slice(data);
    framed.resize(XaeroID::ENCODED_LEN, 0);
    for bytes in [data, &framed[..]] {
        if let Ok(pk) = XaeroID::from_bytes(bytes) {
            assert_eq!(pk.as_bytes(), bytes);
            assert_eq!(XaeroID::from_bytes(&pk.to_bytes()).as_ref(), Ok(&pk));
            let mut sig = vec![xaeroid::ALG_FN_DSA_512, 0x39];
            sig.resize(Signature::ENCODED_LEN, 0);
            if let Ok(sig) = Signature::from_bytes(&sig) {
                assert!(pk.verify(b"fuzz", &sig).is_err());
            }
        }
    }
});
