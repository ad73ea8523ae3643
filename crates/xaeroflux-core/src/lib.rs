//! XaeroFlux core: pure, I/O-free building blocks (work in progress).

pub mod blob_ref;
pub mod block;
pub mod bus;
pub mod checkpoint;
pub mod event;
pub mod group;
mod hash;
pub mod hlc;
pub mod mmr;
pub mod page;
pub mod posting;
pub mod ring;

pub use block::{BlockBuilder, BlockError, BlockRef};
pub use bus::{BusConfig, BusError, BusReader, EventBus, SizeClass};
pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
pub use event::{AuthorId, Event, EventDecodeError, EventHeader, EventId, EventRef};
pub use group::{DiscoveryKey, Group, GroupId, GroupSecret};
pub use hlc::{Clock, Hlc, HlcClock, ManualClock, SystemClock};
pub use mmr::{
    Hash32, MemStore, MerkleProof, Mmr, MmrError, MmrStore, ProofDecodeError, ProofError,
};
pub use page::{PAGE_SIZE, Page, PageError, PageView};
pub use ring::{
    EventMeta, GatingReader, Lapped, Notifier, PooledEvent, Ring, RingError, Subscriber,
};
