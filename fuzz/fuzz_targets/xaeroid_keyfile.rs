//! `keyfile::decode` (the pure parser behind `keyfile::load`) on arbitrary
//! bytes: never panics; accepted files re-encode to an equivalent key pair.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroid::keyfile;

fuzz_target!(|data: &[u8]| {
    let _ = keyfile::decode(data, None);
    // Also behind a valid plaintext header at the exact length, so runs reach
    // the public key decoder and seed re-derivation.
    let mut framed = b"XAEROKEY\x01\x01\x00\x00".to_vec();
    framed.extend_from_slice(data);
    framed.resize(keyfile::PLAIN_LEN, 0);
    let _ = keyfile::decode(&framed, None);
    // Argon2id with the header's cost would dominate the run; only try a
    // passphrase when the stored cost is tiny (decode caps it at 1 GiB anyway).
    let cheap = data.get(12..24).is_some_and(|p| {
        let m = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let t = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        m <= 64 && t <= 2
    });
    if cheap {
        if let Ok(kp) = keyfile::decode(data, Some(b"fuzz")) {
            let sig = kp.sign(b"m");
            assert!(kp.public().verify(b"m", &sig).is_ok());
        }
    }
});
