//! Serving blobs to peers, authorised per request.
//!
//! iroh-blobs' provider reports every connection and request to an event channel and,
//! in intercept mode, waits for a verdict. The authorising task keeps a map from
//! connection id to the endpoint id that the QUIC/TLS handshake authenticated (filled
//! on `ClientConnected`, which the provider awaits before reading any request), and
//! answers each request by asking the [`Authorizer`] about `(endpoint, hash)`:
//!
//! - `get` of a single raw blob (any ranges): allowed iff `may_fetch`;
//! - `get` of a hash sequence (collection): refused (it would serve children the
//!   authoriser was not asked about);
//! - `get_many` and `push`: disabled;
//! - `observe` (which ranges we hold): allowed iff `may_fetch`, since it reveals whether
//!   we hold the blob.
//!
//! A refusal resets the stream with iroh-blobs' permission code; the reply is the same
//! whether or not we hold the blob.

use std::collections::HashMap;
use std::sync::Arc;

use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage, RequestMode,
    ThrottleMode,
};
use tokio::sync::mpsc;
use tracing::{debug, trace};

use crate::access::{Authorizer, PeerId};
use crate::blob_ref::BlobHash;

/// Capacity of the provider's event channel.
const EVENT_CHANNEL_CAPACITY: usize = 64;

/// The event mask the authoriser needs: intercept connections, gets and observes.
const MASK: EventMask = EventMask {
    connected: ConnectMode::Intercept,
    get: RequestMode::Intercept,
    get_many: RequestMode::Disabled,
    push: RequestMode::Disabled,
    observe: ObserveMode::Intercept,
    throttle: ThrottleMode::None,
};

/// An event sender for iroh-blobs' provider whose verdicts come from `auth`. The
/// authorising task ends when the provider (the last sender) is dropped.
pub(crate) fn authorizing_events(auth: Arc<dyn Authorizer>) -> EventSender {
    let (tx, rx) = EventSender::channel(EVENT_CHANNEL_CAPACITY, MASK);
    tokio::spawn(run(auth, rx));
    tx
}

fn verdict(ok: bool) -> Result<(), AbortReason> {
    if ok {
        Ok(())
    } else {
        Err(AbortReason::Permission)
    }
}

async fn run(auth: Arc<dyn Authorizer>, mut rx: mpsc::Receiver<ProviderMessage>) {
    // Bounded by the number of open connections: removed on `ConnectionClosed`.
    let mut peers: HashMap<u64, PeerId> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            ProviderMessage::ClientConnected(msg) => {
                let ok = match msg.endpoint_id {
                    Some(id) => {
                        let peer = *id.as_bytes();
                        let ok = auth.may_connect(&peer);
                        if ok {
                            peers.insert(msg.connection_id, peer);
                        }
                        ok
                    }
                    None => false,
                };
                trace!(connection = msg.connection_id, ok, "blob connection");
                msg.tx.send(verdict(ok)).await.ok();
            }
            ProviderMessage::ConnectionClosed(msg) => {
                peers.remove(&msg.connection_id);
            }
            ProviderMessage::GetRequestReceived(msg) => {
                let hash = BlobHash(*msg.request.hash.as_bytes());
                let ok = msg.request.ranges.is_blob()
                    && peers
                        .get(&msg.connection_id)
                        .is_some_and(|peer| auth.may_fetch(peer, &hash));
                debug!(connection = msg.connection_id, blob = %hash.fmt_short(), ok, "blob get");
                msg.tx.send(verdict(ok)).await.ok();
            }
            ProviderMessage::ObserveRequestReceived(msg) => {
                let hash = BlobHash(*msg.request.hash.as_bytes());
                let ok = peers
                    .get(&msg.connection_id)
                    .is_some_and(|peer| auth.may_fetch(peer, &hash));
                msg.tx.send(verdict(ok)).await.ok();
            }
            // Disabled or not intercepted by MASK: nothing to decide. Requests of other
            // kinds that need a verdict are refused rather than left hanging.
            ProviderMessage::GetManyRequestReceived(msg) => {
                msg.tx.send(verdict(false)).await.ok();
            }
            ProviderMessage::PushRequestReceived(msg) => {
                msg.tx.send(verdict(false)).await.ok();
            }
            ProviderMessage::Throttle(msg) => {
                msg.tx.send(Ok(())).await.ok();
            }
            ProviderMessage::ClientConnectedNotify(_)
            | ProviderMessage::GetRequestReceivedNotify(_)
            | ProviderMessage::GetManyRequestReceivedNotify(_)
            | ProviderMessage::PushRequestReceivedNotify(_)
            | ProviderMessage::ObserveRequestReceivedNotify(_) => {}
        }
    }
}
