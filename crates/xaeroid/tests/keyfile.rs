#![allow(clippy::unwrap_used, missing_docs)]
//! Key file round trips, tampering and permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

use xaeroid::keyfile::{self, KdfParams};
use xaeroid::{KeyFileError, XaeroKeypair};

/// Cheap Argon2id cost so tests stay fast; the format stores it.
const CHEAP: KdfParams = KdfParams {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

fn kp() -> &'static XaeroKeypair {
    static KP: OnceLock<XaeroKeypair> = OnceLock::new();
    KP.get_or_init(|| XaeroKeypair::generate_from_seed(&[9; 32]))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn same(a: &XaeroKeypair, b: &XaeroKeypair) {
    assert_eq!(a.public, b.public);
    let sig = b.sign(b"after load");
    a.public.verify(b"after load", &sig).unwrap();
}

#[test]
fn plain_round_trip_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/id.key");
    keyfile::save(&path, kp(), None).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("sub")), 0o700);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        keyfile::PLAIN_LEN as u64
    );
    let back = keyfile::load(&path, None).unwrap();
    same(kp(), &back);
    // A passphrase given for a plaintext file is ignored.
    same(kp(), &keyfile::load(&path, Some(b"x")).unwrap());
    // No temp files left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
    // Saving again replaces the file atomically.
    let other = XaeroKeypair::generate_from_seed(&[10; 32]);
    keyfile::save(&path, &other, None).unwrap();
    same(&other, &keyfile::load(&path, None).unwrap());
}

#[test]
fn insecure_permissions_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.key");
    keyfile::save(&path, kp(), None).unwrap();
    for m in [0o644, 0o640, 0o604, 0o620, 0o601] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        match keyfile::load(&path, None) {
            Err(KeyFileError::InsecurePermissions { path: p, mode }) => {
                assert_eq!(p, path);
                assert_eq!(mode, m);
            }
            other => panic!("mode {m:o}: expected InsecurePermissions, got {other:?}"),
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    keyfile::load(&path, None).unwrap();
}

#[test]
fn encrypted_round_trip_and_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.key");
    keyfile::save_with_params(&path, kp(), Some(b"correct horse"), CHEAP).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), keyfile::ENCRYPTED_LEN);
    // The secret key does not appear in clear.
    let plain = keyfile::encode(kp(), None, CHEAP).unwrap();
    let seed = &plain[plain.len() - 32..];
    assert!(!bytes.windows(8).any(|w| w == &seed[..8]));

    same(kp(), &keyfile::load(&path, Some(b"correct horse")).unwrap());
    assert!(matches!(
        keyfile::load(&path, None),
        Err(KeyFileError::PassphraseRequired)
    ));
    assert!(matches!(
        keyfile::load(&path, Some(b"correct horsE")),
        Err(KeyFileError::WrongPassphrase)
    ));
    assert!(matches!(
        keyfile::load(&path, Some(b"")),
        Err(KeyFileError::WrongPassphrase)
    ));
}

#[test]
fn default_cost_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.key");
    keyfile::save(&path, kp(), Some(b"pw")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[12..16], &(64u32 * 1024).to_le_bytes());
    same(kp(), &keyfile::load(&path, Some(b"pw")).unwrap());
}

#[test]
fn tampered_encrypted_file_rejected() {
    let bytes = keyfile::encode(kp(), Some(b"pw"), CHEAP).unwrap();
    // Every byte after the fixed header is authenticated (KDF params change the
    // key; salt/nonce/public key are AAD or key inputs; ciphertext and tag).
    for idx in [
        12usize, 16, 20, 24, 39, 40, 63, 64, 500, 961, 962, 980, 993, 994, 1009,
    ] {
        let mut b = bytes.to_vec();
        b[idx] ^= 0x01;
        let r = keyfile::decode(&b, Some(b"pw"));
        assert!(
            matches!(
                r,
                Err(KeyFileError::WrongPassphrase
                    | KeyFileError::InvalidPublicKey(_)
                    | KeyFileError::InvalidKdfParams { .. })
            ),
            "byte {idx}: {r:?}"
        );
    }
    let mut b = bytes.to_vec();
    b[8] = 2;
    assert!(matches!(
        keyfile::decode(&b, Some(b"pw")),
        Err(KeyFileError::UnsupportedVersion { version: 2 })
    ));
    let mut b = bytes.to_vec();
    b[0] = b'x';
    assert!(matches!(
        keyfile::decode(&b, Some(b"pw")),
        Err(KeyFileError::BadMagic)
    ));
    // Hostile KDF cost is refused before any work.
    let mut b = bytes.to_vec();
    b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        keyfile::decode(&b, Some(b"pw")),
        Err(KeyFileError::InvalidKdfParams { .. })
    ));
}

#[test]
fn tampered_plain_file_rejected() {
    let bytes = keyfile::encode(kp(), None, CHEAP).unwrap();
    // Public key swapped for another valid key: mismatch.
    let other = XaeroKeypair::generate_from_seed(&[11; 32]);
    let mut b = bytes.to_vec();
    b[12..12 + 898].copy_from_slice(other.public.as_bytes());
    assert!(matches!(
        keyfile::decode(&b, None),
        Err(KeyFileError::KeyMismatch)
    ));
    // Any single-bit flip in the seed is detected.
    for idx in 910usize..942 {
        let mut b = bytes.to_vec();
        b[idx] ^= 0x04;
        let r = keyfile::decode(&b, None);
        assert!(
            matches!(r, Err(KeyFileError::KeyMismatch)),
            "byte {idx}: {r:?}"
        );
    }
    // A flip in the public key: either not a key, or another key (mismatch).
    for idx in [12usize, 13, 500, 909] {
        let mut b = bytes.to_vec();
        b[idx] ^= 0x01;
        let r = keyfile::decode(&b, None);
        assert!(
            matches!(
                r,
                Err(KeyFileError::KeyMismatch | KeyFileError::InvalidPublicKey(_))
            ),
            "byte {idx}: {r:?}"
        );
    }
}

#[test]
fn truncated_and_extended_files_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for pass in [None, Some(&b"pw"[..])] {
        let bytes = keyfile::encode(kp(), pass, CHEAP).unwrap();
        for len in [0, 4, 8, 11, 12, 63, 64, 910, bytes.len() - 1] {
            let r = keyfile::decode(&bytes[..len], pass);
            assert!(
                matches!(r, Err(KeyFileError::InvalidLength { len: l, .. }) if l == len),
                "len {len}: {r:?}"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(matches!(
            keyfile::decode(&longer, pass),
            Err(KeyFileError::InvalidLength { .. })
        ));

        let path = dir.path().join("trunc.key");
        std::fs::write(&path, &bytes[..100]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            keyfile::load(&path, pass),
            Err(KeyFileError::InvalidLength { len: 100, .. })
        ));
    }
    let path = dir.path().join("huge.key");
    std::fs::write(&path, vec![0u8; 10_000]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        keyfile::load(&path, None),
        Err(KeyFileError::TooLarge { .. })
    ));
    assert!(matches!(
        keyfile::load(&dir.path().join("missing.key"), None),
        Err(KeyFileError::Io { .. })
    ));
}

#[test]
fn error_messages_are_lowercase() {
    let e = keyfile::decode(b"nope", None).unwrap_err();
    let s = e.to_string();
    assert!(s.chars().next().unwrap().is_lowercase(), "{s}");
}
