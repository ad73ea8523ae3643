//! The committed feed: one OS thread reads the host's blocking feed and fans each
//! batch out to the established sessions of its group.
//!
//! A session whose queue is full misses the batch: its next anti-entropy round
//! advertises the new checkpoint and the peer pulls the events (the push is only the
//! fast path), so a slow peer never stalls the writer or the other peers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use xaeroflux_sync::{CommittedFeed, HostError};

use super::Inner;

/// How long one wait on the feed lasts before the thread checks for shutdown (and,
/// while no session is established, how often it looks for one).
const FEED_POLL: Duration = Duration::from_millis(100);

pub(super) fn spawn(
    inner: Arc<Inner>,
    mut feed: Box<dyn CommittedFeed>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("xaeroflux-net-feed".into())
        .spawn(move || {
            while !inner.is_shutdown() {
                // With no established session nobody gets a push: the feed skips what
                // was committed instead of reading and decoding it (3% of the CPU time
                // of a 64 B write run). A session established later gets the skipped
                // events from its anti-entropy, and pushes from the next commit on.
                let listening = inner.tables().sessions.values().any(|s| s.established);
                let next = if listening {
                    feed.next_batch(FEED_POLL)
                } else {
                    feed.skip().map(|()| {
                        std::thread::sleep(FEED_POLL);
                        None
                    })
                };
                let batch = match next {
                    Ok(Some(b)) => b,
                    Ok(None) => continue,
                    Err(HostError::Closed) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "committed feed failed");
                        std::thread::sleep(FEED_POLL);
                        continue;
                    }
                };
                let group = batch.checkpoint.checkpoint.group;
                let t = inner.tables();
                for s in t.sessions.values() {
                    if !s.established || s.group != group {
                        continue;
                    }
                    match s.tx.try_send(batch.clone()) {
                        Ok(()) | Err(TrySendError::Closed(_)) => {}
                        Err(TrySendError::Full(_)) => {
                            tracing::debug!("session lags behind the committed feed");
                        }
                    }
                }
            }
        })
}
