//! An in-memory [`SyncHost`] over [`MemLogs`] and helpers for multi-node tests on
//! loopback (relays off).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xaeroflux_core::{
    AuthorId, Checkpoint, Event, EventHeader, Group, GroupSecret, Hlc, SignedCheckpoint,
};
use xaeroflux_net::{NetConfig, NetHandle};
use xaeroflux_sync::{
    CommittedBatch, CommittedFeed, HostError, LogView, MemLogs, PeerEvent, SyncHost, VerifiedBatch,
};
use xaeroid::XaeroKeypair;

pub fn group() -> Group {
    Group::from_secret(GroupSecret::from_bytes([42; 32]))
}

pub fn other_group() -> Group {
    Group::from_secret(GroupSecret::from_bytes([43; 32]))
}

pub fn keypair(i: u8) -> Arc<XaeroKeypair> {
    Arc::new(XaeroKeypair::generate_from_seed(&[i + 1; 32]))
}

pub struct TestHost {
    pub kp: Arc<XaeroKeypair>,
    pub groups: Vec<Group>,
    pub logs: Mutex<MemLogs>,
    next_seq: Mutex<u64>,
    subs: Mutex<Vec<SyncSender<CommittedBatch>>>,
    pub events: Mutex<Vec<PeerEvent>>,
    /// Delay of every `store_verified` call (a slow disk).
    pub store_delay: Mutex<Duration>,
    pub store_errors: AtomicU64,
    pub stored_batches: AtomicU64,
}

impl TestHost {
    pub fn new(i: u8) -> Arc<Self> {
        Self::with_groups(i, vec![group()])
    }

    /// A host syncing `groups` (writes still go to [`group()`]).
    pub fn with_groups(i: u8, groups: Vec<Group>) -> Arc<Self> {
        let kp = keypair(i);
        let mut logs = MemLogs::new();
        logs.add_key(kp.public().clone());
        Arc::new(TestHost {
            kp,
            groups,
            logs: Mutex::new(logs),
            next_seq: Mutex::new(0),
            subs: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            store_delay: Mutex::new(Duration::ZERO),
            store_errors: AtomicU64::new(0),
            stored_batches: AtomicU64::new(0),
        })
    }

    pub fn author(&self) -> AuthorId {
        AuthorId(*self.kp.id().as_bytes())
    }

    fn publish(&self, batch: CommittedBatch) {
        self.subs
            .lock()
            .unwrap()
            .retain(|s| s.try_send(batch.clone()).is_ok());
    }

    /// Writes `n` events of `payload` bytes in one commit and signs the checkpoint.
    pub fn write(&self, n: usize, payload: usize) {
        let g = group().id();
        let author = self.author();
        let mut seq = self.next_seq.lock().unwrap();
        let mut logs = self.logs.lock().unwrap();
        let mut encoded = Vec::with_capacity(n);
        let mut root = [0u8; 32];
        for i in 0..n {
            let mut p = vec![0u8; payload.max(8)];
            p[..8].copy_from_slice(&seq.to_le_bytes());
            let ev = Event {
                header: EventHeader {
                    event_type: 1000,
                    group: g,
                    author,
                    seq: *seq,
                    hlc: Hlc::new(1_000 + *seq, i as u16),
                },
                payload: p,
            };
            *seq += 1;
            root = logs.append_local(&ev);
            encoded.push(ev.encode());
        }
        let cp = Checkpoint {
            group: g,
            author,
            length: *seq,
            root,
            hlc: Hlc::new(1_000 + *seq, 0),
        }
        .sign(&self.kp);
        logs.add_checkpoint(cp.clone());
        drop(logs);
        self.publish(CommittedBatch {
            first_seq: *seq - encoded.len() as u64,
            count: encoded.len() as u64,
            checkpoint: Box::new(cp),
        });
    }

    /// Writes `total` events in commits of `per_commit`.
    pub fn write_many(&self, total: usize, per_commit: usize, payload: usize) {
        let mut left = total;
        while left > 0 {
            let n = left.min(per_commit);
            self.write(n, payload);
            left -= n;
        }
    }

    pub fn summary(&self) -> Vec<(AuthorId, u64, Option<[u8; 32]>)> {
        self.logs.lock().unwrap().summary(&group().id())
    }

    pub fn total(&self) -> u64 {
        self.logs.lock().unwrap().total_events(&group().id())
    }

    pub fn log_len(&self, author: &AuthorId) -> u64 {
        self.logs
            .lock()
            .unwrap()
            .log_events(&group().id(), author)
            .len() as u64
    }

    pub fn events_matching(&self, f: impl Fn(&PeerEvent) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }
}

struct Feed(Receiver<CommittedBatch>);

impl CommittedFeed for Feed {
    fn next_batch(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, HostError> {
        match self.0.recv_timeout(timeout) {
            Ok(b) => Ok(Some(b)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(HostError::Closed),
        }
    }
}

impl SyncHost for TestHost {
    fn keypair(&self) -> Arc<XaeroKeypair> {
        self.kp.clone()
    }

    fn groups(&self) -> Vec<Group> {
        self.groups.clone()
    }

    fn read_logs(&self, f: &mut dyn FnMut(&dyn LogView)) -> Result<(), HostError> {
        let logs = self.logs.lock().unwrap();
        f(&*logs);
        Ok(())
    }

    fn store_verified(&self, b: VerifiedBatch) -> Result<(), HostError> {
        let d = *self.store_delay.lock().unwrap();
        if !d.is_zero() {
            std::thread::sleep(d);
        }
        let mut logs = self.logs.lock().unwrap();
        logs.add_key(b.author_key.clone());
        let before = logs.log_events(&b.group, &b.author).len() as u64;
        match logs.apply(b.group, b.author, b.first_seq, &b.events, &b.checkpoint) {
            Ok(added) => {
                self.stored_batches.fetch_add(1, Ordering::Relaxed);
                let after = before + added;
                // Relay what became covered by the batch's checkpoint.
                if added > 0 && b.checkpoint.checkpoint.length == after {
                    drop(logs);
                    self.publish(CommittedBatch {
                        first_seq: before,
                        count: added,
                        checkpoint: b.checkpoint,
                    });
                }
                Ok(())
            }
            Err(e) => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                Err(HostError::store(e))
            }
        }
    }

    fn record_fork(
        &self,
        ours: &SignedCheckpoint,
        _theirs: &SignedCheckpoint,
    ) -> Result<(), HostError> {
        let c = &ours.checkpoint;
        self.logs.lock().unwrap().mark_forked(c.group, c.author);
        Ok(())
    }

    fn committed_feed(&self) -> Result<Box<dyn CommittedFeed>, HostError> {
        let (tx, rx) = sync_channel(1024);
        self.subs.lock().unwrap().push(tx);
        Ok(Box::new(Feed(rx)))
    }

    fn peer_event(&self, event: PeerEvent) {
        if let PeerEvent::Connected { key, .. } = &event {
            self.logs.lock().unwrap().add_key(key.clone());
        }
        self.events.lock().unwrap().push(event);
    }
}

pub fn cfg(dir: &Path) -> NetConfig {
    let mut c = NetConfig::loopback();
    c.state_dir = Some(dir.to_path_buf());
    c.anti_entropy_interval = Duration::from_millis(300);
    c.tick_interval = Duration::from_millis(100);
    c.handshake_timeout = Duration::from_secs(3);
    c.redial_min = Duration::from_millis(100);
    c.redial_max = Duration::from_secs(1);
    c
}

pub fn start(host: &Arc<TestHost>, dir: &Path) -> NetHandle {
    NetHandle::start(host.clone(), cfg(dir), 2).unwrap()
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `secs`.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
