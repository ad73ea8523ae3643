//! Errors: one enum per operation family, context in fields.

/// Why bytes are not a valid encoding (membership op, invite, sealed key, envelope).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before `field` was complete.
    #[error("truncated at {field}: need {need} bytes, {have} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// An unknown format version.
    #[error("unsupported {what} version {version}")]
    Version {
        /// Which encoding.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// An unknown kind, role or flag value.
    #[error("invalid {field} value {value}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A count or length outside its allowed range.
    #[error("{field} is {len}, allowed {min}..={max}")]
    Length {
        /// The field.
        field: &'static str,
        /// The value found.
        len: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// Bytes after the end of the encoding.
    #[error("{extra} trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
    /// An embedded key or signature does not decode.
    #[error("bad {field}: {source}")]
    Key {
        /// The field.
        field: &'static str,
        /// Why.
        source: xaeroid::DecodeError,
    },
    /// An embedded ML-KEM encapsulation key fails the FIPS 203 modulus check.
    #[error("invalid ML-KEM-768 encapsulation key")]
    KemKey,
}

/// Why an operation, invite or payload cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A list is longer than the format allows.
    #[error("{field} has {len} items, at most {max}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Items given.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The role cannot be granted by this operation (the owner role is only created
    /// by the genesis operation).
    #[error("role {role:?} cannot be granted")]
    Role {
        /// The role.
        role: crate::Role,
    },
    /// A payload too large to encrypt into one event.
    #[error("plaintext of {len} bytes, at most {max}")]
    TooLarge {
        /// Plaintext length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
    /// The key is not the current epoch's.
    #[error("epoch {epoch} is not the current epoch")]
    NotCurrent {
        /// The key's epoch.
        epoch: u32,
    },
    /// A payload sealer has sealed its limit of messages (start a new one).
    #[error("payload sealer used up ({limit} messages)")]
    Exhausted {
        /// Messages one sealer seals at most.
        limit: u64,
    },
}

/// Why a payload or a sealed key does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The bytes are not an envelope or sealed key.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No key of this epoch is held (not a member of that epoch, e.g. removed before).
    #[error("no key for epoch {epoch} (key id {key_id:02x?})")]
    NoKey {
        /// The envelope's epoch.
        epoch: u32,
        /// The envelope's key id.
        key_id: [u8; 8],
    },
    /// Authentication failed: wrong key, or the bytes were changed.
    #[error("authentication failed")]
    Auth,
}
