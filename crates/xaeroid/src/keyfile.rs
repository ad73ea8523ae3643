//! Key files: a [`XaeroKeypair`] on disk, optionally passphrase-encrypted.
//!
//! Format (all integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       8     magic "XAEROKEY"
//! 8       1     format version = 1
//! 9       1     algorithm = 0x01 (FN-DSA-512)
//! 10      1     protection: 0 = plaintext, 1 = Argon2id + XChaCha20-Poly1305
//! 11      1     reserved = 0
//! -- protection 1 only (header grows to 64 bytes):
//! 12      4     Argon2id memory cost m, KiB (u32)
//! 16      4     Argon2id passes t (u32)
//! 20      4     Argon2id lanes p (u32)
//! 24      16    salt
//! 40      24    XChaCha20 nonce
//! -- both:
//! H       898   public key, encoded XaeroID (alg || fn-dsa verifying key), in clear
//! H+898   32    secret seed (protection 0), or
//!         48    its XChaCha20-Poly1305 ciphertext || 16-byte tag (protection 1)
//! ```
//!
//! `H` is 12 (plaintext, 942 bytes in total) or 64 (encrypted, 1010 bytes).
//! The secret is the 32-byte seed from which the fn-dsa key pair is derived
//! (see [`XaeroKeypair::generate_from_seed`]); the fn-dsa signing key itself
//! (1345 bytes) is never stored, so a damaged file cannot produce a malformed
//! signing key.
//! The encryption key is `Argon2id v0x13(passphrase, salt, m, t, p)` with a
//! 32-byte output; the AEAD's associated data is every byte before the
//! ciphertext (header and public key), so changing the KDF parameters or the
//! public key is detected. Defaults: m = 64 MiB, t = 3, p = 1 ([`KdfParams::DEFAULT`],
//! RFC 9106 §4 second recommendation with one lane). Parameters are stored in
//! the header so they can be raised later; [`decode`] accepts m ≤ 1 GiB,
//! t ≤ 64, p ≤ 16 to bound the work a hostile file can cause.
//!
//! On load the key pair is re-derived from the seed and must reproduce the
//! stored public key. Files are written 0600 via a temp file in the same
//! directory, fsync, rename, and fsync of the directory (created 0700 if
//! missing); files accessible by group or others are refused on load.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::ALG_FN_DSA_512;
use crate::error::KeyFileError;
use crate::key::{SEED_LEN, XaeroID, XaeroKeypair};

/// First 8 bytes of every key file.
pub const MAGIC: &[u8; 8] = b"XAEROKEY";
/// Current format version.
pub const VERSION: u8 = 1;
const PROTECTION_NONE: u8 = 0;
const PROTECTION_ARGON2ID_XCHACHA: u8 = 1;
const FIXED_HEADER_LEN: usize = 12;
const ENCRYPTED_HEADER_LEN: usize = 64;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Size of a plaintext key file.
pub const PLAIN_LEN: usize = FIXED_HEADER_LEN + XaeroID::ENCODED_LEN + SEED_LEN;
/// Size of an encrypted key file.
pub const ENCRYPTED_LEN: usize = ENCRYPTED_HEADER_LEN + XaeroID::ENCODED_LEN + SEED_LEN + TAG_LEN;
/// Larger files are refused without being read.
const MAX_FILE_LEN: u64 = 4096;

/// Argon2id cost parameters, stored in the key file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB (8 × `p_cost` ..= 1 GiB).
    pub m_cost_kib: u32,
    /// Number of passes (1 ..= 64).
    pub t_cost: u32,
    /// Lanes (1 ..= 16).
    pub p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    fn validate(self) -> Result<argon2::Params, KeyFileError> {
        let bad = KeyFileError::InvalidKdfParams {
            m_cost_kib: self.m_cost_kib,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
        };
        if !(1..=16).contains(&self.p_cost)
            || !(1..=64).contains(&self.t_cost)
            || self.m_cost_kib > 1024 * 1024
            || self.m_cost_kib < 8 * self.p_cost
        {
            return Err(bad);
        }
        argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32)).map_err(|_| bad)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let p = params.validate()?;
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p)
        .hash_password_into(passphrase, salt, &mut key[..])
        .map_err(|_| KeyFileError::InvalidKdfParams {
            m_cost_kib: params.m_cost_kib,
            t_cost: params.t_cost,
            p_cost: params.p_cost,
        })?;
    Ok(key)
}

/// Encode a key pair into key file bytes (see the module docs for the format).
///
/// With `passphrase`, the secret key is encrypted with a key derived by
/// Argon2id using `params`; without, `params` is ignored.
pub fn encode(
    kp: &XaeroKeypair,
    passphrase: Option<&[u8]>,
    params: KdfParams,
) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let Some(passphrase) = passphrase else {
        let mut out = Zeroizing::new(Vec::with_capacity(PLAIN_LEN));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, ALG_FN_DSA_512, PROTECTION_NONE, 0]);
        out.extend_from_slice(kp.public.as_bytes());
        out.extend_from_slice(kp.secret.seed());
        return Ok(out);
    };
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let key = derive_key(passphrase, &salt, params)?;

    let mut out = Zeroizing::new(Vec::with_capacity(ENCRYPTED_LEN));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, ALG_FN_DSA_512, PROTECTION_ARGON2ID_XCHACHA, 0]);
    out.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    out.extend_from_slice(&params.t_cost.to_le_bytes());
    out.extend_from_slice(&params.p_cost.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(kp.public.as_bytes());
    let aad_len = out.len();
    out.extend_from_slice(kp.secret.seed());
    let (aad, body) = out.split_at_mut(aad_len);
    let tag = XChaCha20Poly1305::new(Key::from_slice(&key[..]))
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, body)
        // Only fails for plaintexts longer than 256 GiB.
        .map_err(|_| KeyFileError::WrongPassphrase)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

/// Decode key file bytes into a key pair. Pure: this is what [`load`] uses
/// after reading and permission checks, and what the fuzzer drives.
///
/// A passphrase given for a plaintext file is ignored.
pub fn decode(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<XaeroKeypair, KeyFileError> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(KeyFileError::BadMagic);
    }
    let Some(&[version, alg, protection, reserved]) = bytes.get(8..FIXED_HEADER_LEN) else {
        return Err(KeyFileError::InvalidLength {
            len: bytes.len(),
            expected: PLAIN_LEN,
        });
    };
    if version != VERSION {
        return Err(KeyFileError::UnsupportedVersion { version });
    }
    if alg != ALG_FN_DSA_512 {
        return Err(KeyFileError::UnsupportedAlgorithm { alg });
    }
    if reserved != 0 {
        return Err(KeyFileError::ReservedByte { value: reserved });
    }
    let (header_len, expected) = match protection {
        PROTECTION_NONE => (FIXED_HEADER_LEN, PLAIN_LEN),
        PROTECTION_ARGON2ID_XCHACHA => (ENCRYPTED_HEADER_LEN, ENCRYPTED_LEN),
        kdf => return Err(KeyFileError::UnsupportedKdf { kdf }),
    };
    if bytes.len() != expected {
        return Err(KeyFileError::InvalidLength {
            len: bytes.len(),
            expected,
        });
    }
    let pk_end = header_len + XaeroID::ENCODED_LEN;
    let public =
        XaeroID::from_bytes(&bytes[header_len..pk_end]).map_err(KeyFileError::InvalidPublicKey)?;

    let secret_bytes: Zeroizing<Vec<u8>> = if protection == PROTECTION_NONE {
        Zeroizing::new(bytes[pk_end..].to_vec())
    } else {
        let params = KdfParams {
            m_cost_kib: le_u32(bytes, 12),
            t_cost: le_u32(bytes, 16),
            p_cost: le_u32(bytes, 20),
        };
        params.validate()?;
        let passphrase = passphrase.ok_or(KeyFileError::PassphraseRequired)?;
        let salt = &bytes[24..24 + SALT_LEN];
        let nonce = &bytes[40..40 + NONCE_LEN];
        let key = derive_key(passphrase, salt, params)?;
        let (aad, rest) = bytes.split_at(pk_end);
        let (ct, tag) = rest.split_at(SEED_LEN);
        let mut body = Zeroizing::new(ct.to_vec());
        XChaCha20Poly1305::new(Key::from_slice(&key[..]))
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                aad,
                &mut body[..],
                Tag::from_slice(tag),
            )
            .map_err(|_| KeyFileError::WrongPassphrase)?;
        body
    };
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    seed.copy_from_slice(&secret_bytes);
    let kp = XaeroKeypair::generate_from_seed(&seed);
    if kp.public != public {
        return Err(KeyFileError::KeyMismatch);
    }
    Ok(kp)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `kp` to `path` with the default Argon2id cost ([`KdfParams::DEFAULT`]).
///
/// See [`save_with_params`].
pub fn save(path: &Path, kp: &XaeroKeypair, passphrase: Option<&[u8]>) -> Result<(), KeyFileError> {
    save_with_params(path, kp, passphrase, KdfParams::DEFAULT)
}

/// Write `kp` to `path` atomically, replacing any existing file.
///
/// Creates the parent directory with mode 0700 if it is missing (an existing
/// directory is left as is), writes a 0600 temp file in the same directory,
/// fsyncs it, renames it over `path`, then fsyncs the directory.
pub fn save_with_params(
    path: &Path,
    kp: &XaeroKeypair,
    passphrase: Option<&[u8]>,
    params: KdfParams,
) -> Result<(), KeyFileError> {
    let bytes = encode(kp, passphrase, params)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        create_private_dir(&dir).map_err(io_err(&dir))?;
    }
    let file_name = path.file_name().ok_or_else(|| KeyFileError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{:08x}",
        std::process::id(),
        OsRng.next_u32()
    ));
    let tmp = dir.join(tmp_name);

    let result = write_synced(&tmp, &bytes)
        .map_err(io_err(&tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(&dir).map_err(io_err(&dir))
}

fn write_synced(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Read and decode the key file at `path`.
///
/// Refuses (on Unix) a file whose permission bits give group or others any
/// access ([`KeyFileError::InsecurePermissions`]); the check uses the opened
/// handle, so it applies to the file actually read.
pub fn load(path: &Path, passphrase: Option<&[u8]>) -> Result<XaeroKeypair, KeyFileError> {
    let file = File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(KeyFileError::TooLarge {
            len: meta.len(),
            max: MAX_FILE_LEN,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(ENCRYPTED_LEN));
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    decode(&bytes, passphrase)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(PLAIN_LEN, 942);
        assert_eq!(ENCRYPTED_LEN, 1010);
        assert_eq!(KdfParams::DEFAULT.validate().map(|_| ()).ok(), Some(()));
    }

    #[test]
    fn params_bounds() {
        for p in [
            KdfParams {
                m_cost_kib: 7,
                t_cost: 1,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 8,
                t_cost: 0,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 8,
                t_cost: 1,
                p_cost: 0,
            },
            KdfParams {
                m_cost_kib: 8,
                t_cost: 1,
                p_cost: 2,
            },
            KdfParams {
                m_cost_kib: 2 << 20,
                t_cost: 1,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 8,
                t_cost: 65,
                p_cost: 1,
            },
        ] {
            assert!(
                matches!(p.validate(), Err(KeyFileError::InvalidKdfParams { .. })),
                "{p:?}"
            );
        }
    }

    #[test]
    fn short_inputs() {
        assert!(matches!(
            decode(b"", None),
            Err(KeyFileError::InvalidLength { len: 0, .. })
        ));
        assert!(matches!(
            decode(b"XAE", None),
            Err(KeyFileError::InvalidLength { len: 3, .. })
        ));
        assert!(matches!(decode(b"nope", None), Err(KeyFileError::BadMagic)));
        assert!(matches!(
            decode(b"XAEROKEY\x02\x01\x00\x00", None),
            Err(KeyFileError::UnsupportedVersion { version: 2 })
        ));
        assert!(matches!(
            decode(b"XAEROKEY\x01\x02\x00\x00", None),
            Err(KeyFileError::UnsupportedAlgorithm { alg: 2 })
        ));
        assert!(matches!(
            decode(b"XAEROKEY\x01\x01\x07\x00", None),
            Err(KeyFileError::UnsupportedKdf { kdf: 7 })
        ));
        assert!(matches!(
            decode(b"XAEROKEY\x01\x01\x00\x09", None),
            Err(KeyFileError::ReservedByte { value: 9 })
        ));
    }
}
