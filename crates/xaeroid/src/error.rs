//! Error types, one enum per operation family plus the umbrella [`Error`].

use std::path::PathBuf;

/// Why a DID string (`did:xaero:...`) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DidError {
    /// The string does not start with `did:xaero:`.
    #[error("missing `did:xaero:` prefix")]
    MissingPrefix,
    /// The base32 part has the wrong number of characters.
    #[error("invalid did length: {len} base32 characters, expected {expected}")]
    InvalidLength {
        /// Number of bytes after the prefix.
        len: usize,
        /// Required number of characters.
        expected: usize,
    },
    /// A character outside the lowercase RFC 4648 base32 alphabet.
    #[error("invalid base32 character {byte:#04x} at index {index}")]
    InvalidCharacter {
        /// Offset of the character after the prefix.
        index: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The unused trailing bits of the last character are not zero, so the
    /// string is not the canonical encoding of any id.
    #[error("non-canonical base32 encoding (trailing bits set)")]
    NonCanonical,
}

/// Why bytes could not be decoded into a public key or signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Wrong total length.
    #[error("invalid length: {len} bytes, expected {expected}")]
    InvalidLength {
        /// Length of the input.
        len: usize,
        /// Required length.
        expected: usize,
    },
    /// The leading algorithm/version byte is not one we know.
    #[error("unsupported algorithm byte {alg:#04x}")]
    UnsupportedAlgorithm {
        /// The byte found.
        alg: u8,
    },
    /// The fn-dsa public key is malformed (bad header or coefficient out of range).
    #[error("malformed fn-dsa public key")]
    InvalidPublicKey,
    /// The fn-dsa signature header byte is wrong.
    #[error("malformed fn-dsa signature header {header:#04x}")]
    InvalidSignature {
        /// The fn-dsa header byte found.
        header: u8,
    },
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature is not valid for this key, context and message.
    #[error("invalid signature")]
    InvalidSignature,
    /// The signature uses another algorithm than the key.
    #[error("algorithm mismatch: key {key:#04x}, signature {signature:#04x}")]
    AlgorithmMismatch {
        /// Algorithm byte of the key.
        key: u8,
        /// Algorithm byte of the signature.
        signature: u8,
    },
    /// The domain-separation context is longer than fn-dsa allows.
    #[error("context too long: {len} bytes, max {max}")]
    ContextTooLong {
        /// Length of the context given.
        len: usize,
        /// Maximum length (255).
        max: usize,
    },
}

/// Why a signature could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The domain-separation context is longer than fn-dsa allows.
    #[error("context too long: {len} bytes, max {max}")]
    ContextTooLong {
        /// Length of the context given.
        len: usize,
        /// Maximum length (255).
        max: usize,
    },
}

/// Why a key file could not be written, read or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// An I/O operation on `path` failed.
    #[error("i/o error on {path}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The key file can be accessed by group or others (`mode & 0o077 != 0`).
    #[error("insecure permissions {mode:#o} on {path} (must not be accessible by group or others)")]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is larger than any valid key file.
    #[error("key file too large: {len} bytes, max {max}")]
    TooLarge {
        /// Size found.
        len: u64,
        /// Maximum accepted size.
        max: u64,
    },
    /// The file does not start with the key file magic.
    #[error("not a xaeroid key file (bad magic)")]
    BadMagic,
    /// The format version is not supported by this build.
    #[error("unsupported key file version {version}")]
    UnsupportedVersion {
        /// Version byte found.
        version: u8,
    },
    /// The key algorithm is not supported by this build.
    #[error("unsupported key algorithm {alg:#04x}")]
    UnsupportedAlgorithm {
        /// Algorithm byte found.
        alg: u8,
    },
    /// The protection (KDF) byte is unknown.
    #[error("unsupported key protection {kdf}")]
    UnsupportedKdf {
        /// KDF byte found.
        kdf: u8,
    },
    /// A reserved header byte is not zero.
    #[error("reserved header byte is {value}, expected 0")]
    ReservedByte {
        /// Value found.
        value: u8,
    },
    /// The file has the wrong length for its header.
    #[error("invalid key file length: {len} bytes, expected {expected}")]
    InvalidLength {
        /// Length found.
        len: usize,
        /// Length required by the header.
        expected: usize,
    },
    /// Argon2id parameters out of the accepted range.
    #[error("invalid argon2id parameters m={m_cost_kib} KiB t={t_cost} p={p_cost}")]
    InvalidKdfParams {
        /// Memory cost in KiB.
        m_cost_kib: u32,
        /// Number of passes.
        t_cost: u32,
        /// Parallelism.
        p_cost: u32,
    },
    /// The file is encrypted and no passphrase was given.
    #[error("key file is encrypted: passphrase required")]
    PassphraseRequired,
    /// Authenticated decryption failed: wrong passphrase, or the file was
    /// modified (the two cannot be told apart).
    #[error("wrong passphrase or tampered key file")]
    WrongPassphrase,
    /// The stored public key is malformed.
    #[error("invalid public key in key file")]
    InvalidPublicKey(#[source] DecodeError),
    /// The stored secret seed does not derive the stored public key.
    #[error("secret key does not match public key")]
    KeyMismatch,
}

/// Umbrella error of the crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`DidError`].
    #[error(transparent)]
    Did(#[from] DidError),
    /// See [`DecodeError`].
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// See [`VerifyError`].
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// See [`SignError`].
    #[error(transparent)]
    Sign(#[from] SignError),
    /// See [`KeyFileError`].
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
}
