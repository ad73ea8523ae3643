//! Options of a store.

use std::path::PathBuf;
use std::time::Duration;

/// When a committed group of writes is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// No fsync per group commit (LMDB `NO_META_SYNC`); `flush()` forces a sync.
    /// A power loss may lose recent unflushed writes (a process crash does not), never
    /// what a `flush()` returned for.
    None,
    /// One fsync per group commit (default). `write_event` returns before the event is
    /// durable; `flush()` returns once everything written before it is.
    #[default]
    Batched,
    /// `write_event` returns only after its group commit is durable.
    Immediate,
}

/// Ring capacities per size class (slots; powers of two).
pub use xaeroflux_core::bus::BusConfig as Capacities;

/// How the storage writer groups writes into one LMDB transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPolicy {
    /// At most this many events per transaction.
    pub max_events: usize,
    /// At most this many payload bytes per transaction.
    pub max_bytes: usize,
    /// A transaction is committed at the latest this long after its first event.
    pub max_delay: Duration,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        CommitPolicy {
            max_events: 8192,
            max_bytes: 16 << 20,
            max_delay: Duration::from_millis(5),
        }
    }
}

/// Everything `Engine::builder()` configures. `Debug` prints the passphrase as
/// `<redacted>`.
#[derive(Clone)]
pub struct Options {
    /// Directory of the LMDB environment (and, by default, of the page file and key).
    pub data_dir: PathBuf,
    /// Path of the paged Merkle file; default `data_dir/merkle_index.bin`.
    pub page_path: Option<PathBuf>,
    /// Path of the identity key file; default `data_dir/identity.key`.
    pub key_path: Option<PathBuf>,
    /// Passphrase of the key file, if encrypted.
    pub key_passphrase: Option<Vec<u8>>,
    /// Durability of writes.
    pub durability: Durability,
    /// Ring capacities.
    pub capacities: Capacities,
    /// Group commit limits.
    pub commit: CommitPolicy,
    /// Initial LMDB map size in bytes (grown automatically).
    pub initial_map_size: usize,
    /// Hash index: flush recent entries to LMDB once this many are pending. Each
    /// flush writes them as a sorted run and merges runs of equal size, so larger
    /// chunks mean fewer runs to search and rewrite; memory is about 100 bytes per
    /// pending id (two chunks at most, ~25 MiB at the default 262,144).
    pub hash_index_chunk: usize,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("data_dir", &self.data_dir)
            .field("page_path", &self.page_path)
            .field("key_path", &self.key_path)
            .field(
                "key_passphrase",
                &self.key_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("durability", &self.durability)
            .field("capacities", &self.capacities)
            .field("commit", &self.commit)
            .field("initial_map_size", &self.initial_map_size)
            .field("hash_index_chunk", &self.hash_index_chunk)
            .finish()
    }
}

impl Options {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Options {
            data_dir: data_dir.into(),
            page_path: None,
            key_path: None,
            key_passphrase: None,
            durability: Durability::default(),
            capacities: Capacities::default(),
            commit: CommitPolicy::default(),
            initial_map_size: 64 << 20,
            hash_index_chunk: 262_144,
        }
    }

    pub(crate) fn page_path(&self) -> PathBuf {
        self.page_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("merkle_index.bin"))
    }

    pub(crate) fn key_path(&self) -> PathBuf {
        self.key_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("identity.key"))
    }
}

/// The default data directory: `$XAERO_DATA_DIR`, else the platform data dir
/// (`~/.local/share/xaeroflux` on Linux), else `./.xaeroflux`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XAERO_DATA_DIR") {
        return PathBuf::from(dir);
    }
    dirs::data_dir().map_or_else(|| PathBuf::from(".xaeroflux"), |d| d.join("xaeroflux"))
}

#[cfg(test)]
mod debug_tests {
    #[test]
    fn debug_does_not_print_the_passphrase() {
        let mut o = super::Options::new("/tmp/x");
        o.key_passphrase = Some(b"hunter2-secret".to_vec());
        let s = format!("{o:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!s.contains("104, 117"), "{s}"); // the bytes as a list
        assert!(s.contains("<redacted>"));
    }
}
