#![allow(clippy::unwrap_used, missing_docs)]
//! Sign/verify and codec properties through the public API.

use std::sync::OnceLock;

use proptest::prelude::*;
use xaeroid::{DecodeError, IdHash, Signature, VerifyError, XaeroID, XaeroKeypair};

/// Keygen is the expensive part; every property reuses one key pair.
fn kp() -> &'static XaeroKeypair {
    static KP: OnceLock<XaeroKeypair> = OnceLock::new();
    KP.get_or_init(|| XaeroKeypair::generate_from_seed(&[42; 32]))
}

fn other() -> &'static XaeroKeypair {
    static KP: OnceLock<XaeroKeypair> = OnceLock::new();
    KP.get_or_init(|| XaeroKeypair::generate_from_seed(&[43; 32]))
}

#[test]
fn sizes_and_forms() {
    let pk = kp().public();
    assert_eq!(pk.as_bytes().len(), 898);
    assert_eq!(pk.to_bytes(), pk.as_bytes());
    assert_eq!(pk.as_bytes()[0], xaeroid::ALG_FN_DSA_512);
    assert_eq!(pk.raw_public_key().len(), 897);
    let sig = kp().sign(b"x");
    assert_eq!(sig.as_bytes().len(), Signature::ENCODED_LEN);
    assert_eq!(Signature::ENCODED_LEN, 667);
    assert_eq!(pk.to_did().len(), 62);
    assert_eq!(xaeroid::DID_LEN, 62);
    assert_eq!(pk.short().len(), 8);
    assert_eq!(pk.short(), pk.id().short());
    assert_eq!(pk.to_did(), pk.id().to_did());
    assert_eq!(kp().id(), pk.id());
    assert_eq!(IdHash::from_did(&pk.to_did()).unwrap(), pk.id());
}

#[test]
fn new_generates_distinct_keys() {
    let a = XaeroID::new();
    let b = XaeroKeypair::generate();
    assert_ne!(a.public, b.public);
    let sig = a.sign(b"m");
    a.public.verify(b"m", &sig).unwrap();
    assert_eq!(
        b.public.verify(b"m", &sig),
        Err(VerifyError::InvalidSignature)
    );
}

#[test]
fn signatures_are_randomized_but_all_verify() {
    let s1 = kp().sign(b"same");
    let s2 = kp().sign(b"same");
    assert_ne!(s1, s2, "fn-dsa signing is hedged with fresh randomness");
    kp().public().verify(b"same", &s1).unwrap();
    kp().public().verify(b"same", &s2).unwrap();
}

#[test]
fn wrong_key_fails() {
    let sig = kp().sign(b"msg");
    assert_eq!(
        other().public().verify(b"msg", &sig),
        Err(VerifyError::InvalidSignature)
    );
}

#[test]
fn public_key_decode_errors() {
    let pk = kp().public().to_bytes();
    assert_eq!(
        XaeroID::from_bytes(&pk[..897]),
        Err(DecodeError::InvalidLength {
            len: 897,
            expected: 898
        })
    );
    let mut bad = pk.clone();
    bad[0] = 2;
    assert_eq!(
        XaeroID::from_bytes(&bad),
        Err(DecodeError::UnsupportedAlgorithm { alg: 2 })
    );
    let mut bad = pk.clone();
    bad[1] = 0x0a; // fn-dsa header for logn 10
    assert_eq!(
        XaeroID::from_bytes(&bad),
        Err(DecodeError::InvalidPublicKey)
    );
    // Coefficients are 14-bit values mod q = 12289; all ones is out of range.
    let mut bad = pk;
    bad[2..].fill(0xff);
    assert_eq!(
        XaeroID::from_bytes(&bad),
        Err(DecodeError::InvalidPublicKey)
    );
}

proptest! {
    #[test]
    fn sign_verify_round_trip(msg in proptest::collection::vec(any::<u8>(), 0..512)) {
        let sig = kp().sign(&msg);
        let decoded = Signature::from_bytes(sig.as_bytes()).unwrap();
        prop_assert_eq!(&decoded, &sig);
        prop_assert_eq!(kp().public().verify(&msg, &decoded), Ok(()));
    }

    #[test]
    fn public_key_round_trip(seed in any::<u8>()) {
        // Only two key pairs exist; mix which one is encoded.
        let pk = if seed & 1 == 0 { kp().public() } else { other().public() };
        let back = XaeroID::from_bytes(&pk.to_bytes()).unwrap();
        prop_assert_eq!(&back, pk);
        prop_assert_eq!(back.id(), pk.id());
    }

    #[test]
    fn signature_mutation_fails(
        msg in proptest::collection::vec(any::<u8>(), 0..128),
        idx in 0usize..Signature::ENCODED_LEN,
        flip in 1u8..=255,
    ) {
        let sig = kp().sign(&msg);
        let mut bytes = sig.as_bytes().to_vec();
        bytes[idx] ^= flip;
        match Signature::from_bytes(&bytes) {
            Err(_) => prop_assert!(idx <= 1, "only alg/header bytes are checked by decode"),
            Ok(bad) => prop_assert_eq!(
                kp().public().verify(&msg, &bad),
                Err(VerifyError::InvalidSignature)
            ),
        }
    }

    #[test]
    fn message_mutation_fails(
        msg in proptest::collection::vec(any::<u8>(), 1..128),
        idx in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let sig = kp().sign(&msg);
        let mut m = msg.clone();
        let i = idx.index(m.len());
        m[i] ^= flip;
        prop_assert_eq!(kp().public().verify(&m, &sig), Err(VerifyError::InvalidSignature));
    }

    #[test]
    fn context_mutation_fails(
        ctx in proptest::collection::vec(any::<u8>(), 1..64),
        idx in any::<prop::sample::Index>(),
    ) {
        let sig = kp().sign_with_context(&ctx, b"m").unwrap();
        prop_assert_eq!(kp().public().verify_with_context(&ctx, b"m", &sig), Ok(()));
        let mut c = ctx.clone();
        let i = idx.index(c.len());
        c[i] ^= 1;
        prop_assert!(kp().public().verify_with_context(&c, b"m", &sig).is_err());
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = XaeroID::from_bytes(&bytes);
        let _ = Signature::from_bytes(&bytes);
        let _ = xaeroid::keyfile::decode(&bytes, None);
        let _ = IdHash::from_did(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_valid_decoders_never_panic(
        n in 0usize..2,
        mut tail in proptest::collection::vec(any::<u8>(), 897..=897),
    ) {
        // Right length and header, random body: exercises the fn-dsa decoders.
        if n == 0 {
            tail[0] = 0x09;
            let mut b = vec![xaeroid::ALG_FN_DSA_512];
            b.extend_from_slice(&tail);
            if let Ok(pk) = XaeroID::from_bytes(&b) {
                prop_assert_eq!(pk.as_bytes(), &b[..]);
                let _ = pk.verify(b"m", &kp().sign(b"m"));
            }
        } else {
            let mut b = vec![xaeroid::ALG_FN_DSA_512, 0x39];
            b.extend_from_slice(&tail[..665]);
            let sig = Signature::from_bytes(&b).unwrap();
            prop_assert!(kp().public().verify(b"m", &sig).is_err());
        }
    }
}
