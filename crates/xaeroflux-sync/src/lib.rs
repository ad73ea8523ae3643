//! XaeroFlux sync protocol `xaeroflux/sync/1`: wire frames and an I/O-free session
//! state machine, plus an in-memory log store for tests and simulation.
//!
//! The transport (iroh QUIC, next layer up) owns sockets and time; a [`Session`] per
//! connection turns inputs into outputs:
//!
//! ```
//! use std::sync::Arc;
//! use xaeroflux_core::{Group, GroupSecret};
//! use xaeroflux_sync::{Input, MemLogs, Output, Role, Session, SessionConfig, TransportParams};
//! use xaeroid::XaeroKeypair;
//!
//! let group = Group::from_secret(GroupSecret::from_bytes([1; 32]));
//! let kp = Arc::new(XaeroKeypair::generate_from_seed(&[2; 32]));
//! let mut s = Session::new(SessionConfig::new(group, kp));
//! let params = TransportParams {
//!     local_endpoint: [1; 32],
//!     remote_endpoint: [2; 32],
//!     keying_material: [3; 32],
//! };
//! let out = s.handle(Input::Connected { role: Role::Initiator, params }, 0, &MemLogs::new());
//! assert!(matches!(out[0], Output::Send(_))); // our Hello
//! ```
//!
//! Wire format: [`frame`] and `docs/FORMAT.md` ("Sync protocol").

pub mod events;
pub mod frame;
pub mod host;
pub mod log;
pub mod proto;
#[cfg(test)]
mod sim;

pub use events::EventList;
pub use frame::{FrameDecoder, FrameError, MAX_FRAME, Message, Role};
pub use host::{CommittedBatch, CommittedFeed, HostError, PeerEvent, SyncHost, VerifiedBatch};
pub use log::{AccessGate, Frontier, LogView, MemLogs};
pub use proto::{
    ErrorCode, Input, NON_MEMBER_REASON, Output, STORE_FAILURE_REASON, Session, SessionConfig,
    SessionMemory, SystemEvent, TransportParams, sanitize_reason,
};
