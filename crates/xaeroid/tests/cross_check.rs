#![allow(clippy::unwrap_used, missing_docs)]
//! xaeroid signatures are plain fn-dsa 0.4.0 signatures, in both directions.

use fn_dsa::{
    DOMAIN_NONE, DomainContext, FN_DSA_LOGN_512, HASH_ID_RAW, KeyPairGenerator,
    KeyPairGeneratorStandard, SigningKey, SigningKeyStandard, VerifyingKey, VerifyingKeyStandard,
    sign_key_size, signature_size, vrfy_key_size,
};
use rand_core::OsRng;
use xaeroid::{Signature, VerifyError, XaeroID, XaeroKeypair};

#[test]
fn xaeroid_signature_verifies_with_raw_fn_dsa() {
    let kp = XaeroKeypair::generate();
    let raw_pk = kp.public().raw_public_key();
    let vk = VerifyingKeyStandard::decode(raw_pk).unwrap();

    let sig = kp.sign(b"hello fn-dsa");
    assert_eq!(sig.raw().len(), signature_size(FN_DSA_LOGN_512));
    assert!(vk.verify(sig.raw(), &DOMAIN_NONE, &HASH_ID_RAW, b"hello fn-dsa"));
    assert!(!vk.verify(sig.raw(), &DOMAIN_NONE, &HASH_ID_RAW, b"hello fn-dsA"));

    let csig = kp.sign_with_context(b"ctx", b"m").unwrap();
    assert!(vk.verify(csig.raw(), &DomainContext(b"ctx"), &HASH_ID_RAW, b"m"));
    assert!(!vk.verify(csig.raw(), &DOMAIN_NONE, &HASH_ID_RAW, b"m"));

    let proof = kp.prove_identity(b"nonce");
    assert!(vk.verify(
        proof.raw(),
        &DomainContext(b"xaeroid/v1/prove-identity"),
        &HASH_ID_RAW,
        b"nonce"
    ));
}

#[test]
fn raw_fn_dsa_signature_verifies_with_xaeroid() {
    let mut kg = KeyPairGeneratorStandard::default();
    let mut sk = vec![0u8; sign_key_size(FN_DSA_LOGN_512)];
    let mut vk = vec![0u8; vrfy_key_size(FN_DSA_LOGN_512)];
    kg.keygen(FN_DSA_LOGN_512, &mut OsRng, &mut sk, &mut vk);

    let mut encoded = vec![xaeroid::ALG_FN_DSA_512];
    encoded.extend_from_slice(&vk);
    let id = XaeroID::from_bytes(&encoded).unwrap();
    assert_eq!(id.raw_public_key(), &vk[..]);

    let mut s = SigningKeyStandard::decode(&sk).unwrap();
    let mut raw = vec![0u8; signature_size(FN_DSA_LOGN_512)];
    s.sign(
        &mut OsRng,
        &DOMAIN_NONE,
        &HASH_ID_RAW,
        b"from raw",
        &mut raw,
    )
    .unwrap();
    let mut sig_bytes = vec![xaeroid::ALG_FN_DSA_512];
    sig_bytes.extend_from_slice(&raw);
    let sig = Signature::from_bytes(&sig_bytes).unwrap();
    id.verify(b"from raw", &sig).unwrap();
    assert_eq!(
        id.verify(b"from rav", &sig),
        Err(VerifyError::InvalidSignature)
    );

    s.sign(
        &mut OsRng,
        &DomainContext(b"c"),
        &HASH_ID_RAW,
        b"m",
        &mut raw,
    )
    .unwrap();
    sig_bytes.truncate(1);
    sig_bytes.extend_from_slice(&raw);
    let sig = Signature::from_bytes(&sig_bytes).unwrap();
    id.verify_with_context(b"c", b"m", &sig).unwrap();
    assert!(id.verify(b"m", &sig).is_err());
}
