//! Node storage behind an MMR.

use super::Hash32;

/// Append-only storage of MMR nodes, addressed by post-order position.
///
/// The engine backs it with the paged Merkle file (see [`crate::page`]) and records in
/// LMDB how many nodes are valid; [`MemStore`] keeps everything in memory.
pub trait MmrStore {
    /// Error of the backing storage.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The node at `pos`, or `None` if the store does not hold it.
    fn get(&self, pos: u64) -> Result<Option<Hash32>, Self::Error>;

    /// Appends `nodes` at positions `pos..pos + nodes.len()`. `pos` is always the
    /// current number of nodes of the MMR writing through this store.
    fn append(&mut self, pos: u64, nodes: &[Hash32]) -> Result<(), Self::Error>;
}

impl<S: MmrStore + ?Sized> MmrStore for &mut S {
    type Error = S::Error;

    fn get(&self, pos: u64) -> Result<Option<Hash32>, Self::Error> {
        (**self).get(pos)
    }

    fn append(&mut self, pos: u64, nodes: &[Hash32]) -> Result<(), Self::Error> {
        (**self).append(pos, nodes)
    }
}

/// In-memory [`MmrStore`]: one `Vec` of nodes indexed by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStore {
    nodes: Vec<Hash32>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for `nodes` nodes.
    pub fn with_capacity(nodes: usize) -> Self {
        Self {
            nodes: Vec::with_capacity(nodes),
        }
    }

    /// All nodes, indexed by position.
    pub fn nodes(&self) -> &[Hash32] {
        &self.nodes
    }

    /// Number of nodes held.
    pub fn len(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// Whether the store holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Drops every node at or after `len` (e.g. to model a torn tail in tests).
    pub fn truncate(&mut self, len: u64) {
        self.nodes
            .truncate(usize::try_from(len).unwrap_or(usize::MAX));
    }
}

/// Error of [`MemStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemStoreError {
    /// An append did not start right after the last node.
    #[error("append at position {pos} but the store holds {len} nodes")]
    NotAtEnd {
        /// Requested start position.
        pos: u64,
        /// Nodes held.
        len: u64,
    },
}

impl MmrStore for MemStore {
    type Error = MemStoreError;

    fn get(&self, pos: u64) -> Result<Option<Hash32>, Self::Error> {
        Ok(usize::try_from(pos)
            .ok()
            .and_then(|i| self.nodes.get(i))
            .copied())
    }

    fn append(&mut self, pos: u64, nodes: &[Hash32]) -> Result<(), Self::Error> {
        if pos != self.len() {
            return Err(MemStoreError::NotAtEnd {
                pos,
                len: self.len(),
            });
        }
        self.nodes.extend_from_slice(nodes);
        Ok(())
    }
}
