//! Identity costs: FN-DSA-512 keygen, sign and verify through `xaeroid` and
//! through raw `fn-dsa` 0.4.0 in the same run, so the wrapper overhead shows as
//! a ratio (goal: xaeroid ≥ 0.95 × raw throughput for sign and verify).
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fn_dsa::{
    DOMAIN_NONE, FN_DSA_LOGN_512, HASH_ID_RAW, KeyPairGenerator, KeyPairGenerator512, SigningKey,
    SigningKey512, VerifyingKey, VerifyingKey512, sign_key_size, signature_size, vrfy_key_size,
};
use rand_core::OsRng;
use xaeroid::XaeroKeypair;

const MSG: &[u8; 64] = b"xaeroflux benchmark message, 64 bytes long.....................!";

fn raw_keys() -> (Vec<u8>, Vec<u8>) {
    let mut sk = vec![0u8; sign_key_size(FN_DSA_LOGN_512)];
    let mut vk = vec![0u8; vrfy_key_size(FN_DSA_LOGN_512)];
    KeyPairGenerator512::default().keygen(FN_DSA_LOGN_512, &mut OsRng, &mut sk, &mut vk);
    (sk, vk)
}

fn keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity/keygen");
    g.bench_function("xaeroid", |b| {
        b.iter(|| black_box(XaeroKeypair::generate()))
    });
    g.bench_function("fn-dsa", |b| {
        let mut kg = KeyPairGenerator512::default();
        let mut sk = vec![0u8; sign_key_size(FN_DSA_LOGN_512)];
        let mut vk = vec![0u8; vrfy_key_size(FN_DSA_LOGN_512)];
        b.iter(|| {
            kg.keygen(FN_DSA_LOGN_512, &mut OsRng, &mut sk, &mut vk);
            black_box(&vk);
        })
    });
    g.finish();
}

fn sign(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity/sign");
    let kp = XaeroKeypair::generate();
    g.bench_function("xaeroid", |b| b.iter(|| black_box(kp.sign(black_box(MSG)))));
    let (sk, _) = raw_keys();
    let mut key = SigningKey512::decode(&sk).expect("fresh key decodes");
    let mut sig = vec![0u8; signature_size(FN_DSA_LOGN_512)];
    g.bench_function("fn-dsa", |b| {
        b.iter(|| {
            key.sign(
                &mut OsRng,
                &DOMAIN_NONE,
                &HASH_ID_RAW,
                black_box(MSG),
                &mut sig,
            )
            .expect("valid key signs");
            black_box(&sig);
        })
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity/verify");
    let kp = XaeroKeypair::generate();
    let pk = kp.public().clone();
    let s = kp.sign(MSG);
    g.bench_function("xaeroid", |b| {
        b.iter(|| black_box(pk.verify(black_box(MSG), black_box(&s))).expect("valid"))
    });
    let (sk, vk) = raw_keys();
    let mut key = SigningKey512::decode(&sk).expect("fresh key decodes");
    let mut sig = vec![0u8; signature_size(FN_DSA_LOGN_512)];
    key.sign(&mut OsRng, &DOMAIN_NONE, &HASH_ID_RAW, MSG, &mut sig)
        .expect("valid key signs");
    let vk = VerifyingKey512::decode(&vk).expect("fresh key decodes");
    g.bench_function("fn-dsa", |b| {
        b.iter(|| {
            assert!(black_box(vk.verify(
                black_box(&sig),
                &DOMAIN_NONE,
                &HASH_ID_RAW,
                black_box(MSG)
            )))
        })
    });
    g.finish();
}

criterion_group!(benches, keygen, sign, verify);
criterion_main!(benches);
