//! The [`XaeroFlux`] handle: the storage [`Engine`] with networking and vector search.
//!
//! `XaeroFlux` owns an [`Engine`] (`xaeroflux-store`) and dereferences to it, so every
//! storage method (`write_event`, `read`, `subscribe`, `verify`, ...) is called on it
//! directly; the network node (`network.rs`) and the vector indexer (`vector.rs`) are
//! started on top of the engine's public API.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use xaeroflux_core::Clock;
use xaeroflux_store::{
    Capacities, CommitPolicy, Durability, Engine, EngineBuilder, Options, Result, default_data_dir,
};
use xaeroid::XaeroKeypair;

use crate::access::AccessSlot;
use crate::blobs::BlobSlot;
use crate::network::{NetSlot, NetworkOptions};
use crate::vector::VectorSlot;

/// Builder of a [`XaeroFlux`] store; see [`XaeroFlux::builder`].
#[derive(Debug)]
pub struct Builder {
    engine: EngineBuilder,
    /// `None` = offline; default: on, see [`NetworkOptions::for_data_dir`].
    network: Option<NetworkOptions>,
}

impl Builder {
    /// Sets the durability (default [`Durability::Batched`]).
    pub fn durability(mut self, d: Durability) -> Self {
        self.engine = self.engine.durability(d);
        self
    }
    /// Sets the path of the paged Merkle file.
    pub fn page_path(mut self, p: impl Into<std::path::PathBuf>) -> Self {
        self.engine = self.engine.page_path(p);
        self
    }
    /// Sets the ring capacities.
    pub fn capacities(mut self, c: Capacities) -> Self {
        self.engine = self.engine.capacities(c);
        self
    }
    /// Sets the group-commit limits.
    pub fn commit_policy(mut self, c: CommitPolicy) -> Self {
        self.engine = self.engine.commit_policy(c);
        self
    }
    /// Uses this identity instead of the key file of the data directory.
    pub fn identity(mut self, kp: XaeroKeypair) -> Self {
        self.engine = self.engine.identity(kp);
        self
    }
    /// Passphrase of an encrypted key file.
    pub fn key_passphrase(mut self, p: impl Into<Vec<u8>>) -> Self {
        self.engine = self.engine.key_passphrase(p);
        self
    }
    /// Uses this physical clock for HLC timestamps (tests, simulations).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.engine = self.engine.clock(c);
        self
    }
    /// Network settings (default: on, all interfaces, relays off; see
    /// [`NetworkOptions::for_data_dir`]).
    pub fn network(mut self, n: NetworkOptions) -> Self {
        self.network = Some(n);
        self
    }
    /// No networking: the store does not listen or sync (tools, tests, single-node use).
    pub fn offline(mut self) -> Self {
        self.network = None;
        self
    }
    /// Replaces all storage options (the network settings are kept).
    pub fn options(mut self, opts: Options) -> Self {
        self.engine = self.engine.options(opts);
        self
    }
    /// Opens (or creates) the store, starts its storage writer and, unless offline,
    /// its network node.
    pub fn open(self) -> Result<XaeroFlux> {
        let engine = self.engine.open()?;
        let (access, feed) = AccessSlot::open(&engine).map_err(crate::access::into_store)?;
        access.start_feeder(feed);
        let store = XaeroFlux {
            engine,
            vector: VectorSlot::default(),
            net: NetSlot::default(),
            access,
            blob_slot: BlobSlot::default(),
        };
        store.access_repair();
        if let Some(n) = self.network {
            store.start_network(n)?;
        }
        Ok(store)
    }
}

/// An open XaeroFlux store: the embeddable engine, its network node and its vector
/// search.
///
/// Cheap to share across threads (`&XaeroFlux` is `Sync`; wrap it in an `Arc`). The
/// storage API is [`Engine`]'s, reached through `Deref`.
pub struct XaeroFlux {
    engine: Engine,
    /// Vector search, once started.
    pub(crate) vector: VectorSlot,
    /// The network node, once started.
    pub(crate) net: NetSlot,
    /// Group access control (membership, epoch keys).
    pub(crate) access: AccessSlot,
    /// The blob node, once the network runs.
    pub(crate) blob_slot: BlobSlot,
}

impl std::fmt::Debug for XaeroFlux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XaeroFlux")
            .field("data_dir", &self.engine.data_dir())
            .field("author", &self.engine.author())
            .finish_non_exhaustive()
    }
}

impl Deref for XaeroFlux {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl XaeroFlux {
    /// A builder for a store in `data_dir`.
    pub fn builder(data_dir: impl AsRef<Path>) -> Builder {
        Builder {
            engine: Engine::builder(data_dir.as_ref()),
            network: Some(NetworkOptions::for_data_dir(data_dir.as_ref())),
        }
    }

    /// Opens the store in the default data directory ([`default_data_dir`]).
    pub fn new() -> Result<Self> {
        Self::builder(default_data_dir()).open()
    }

    /// The storage engine (what `Deref` reaches).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stops the network, flushes, stops the storage writer and waits for it.
    pub fn close(self) -> Result<()> {
        // No more remote batches once the writer is asked to stop.
        self.blob_slot.stop();
        self.net.stop();
        self.access.stop();
        self.engine.flush_and_stop()
    }
}

impl Drop for XaeroFlux {
    fn drop(&mut self) {
        self.blob_slot.stop();
        self.net.stop();
        self.access.stop();
        // The writer drains everything already in the rings before it exits.
        self.engine.stop_writer();
        // Then the vector indexer stops and saves what it covers.
        if let Err(e) = self.vector.stop() {
            tracing::warn!(error = %e, "saving the vector index failed");
        }
    }
}
