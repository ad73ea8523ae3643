//! Whole-store statistics and verification.

use std::collections::{BTreeMap, HashMap};

use xaeroflux_core::bus::SizeClass;
use xaeroflux_core::mmr::{MemStore, Mmr};
use xaeroflux_core::{AuthorId, GroupId, SignedCheckpoint};
use xaeroid::XaeroID;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::mmrs::{NODE_MMR_ID, for_each_stored_node};

/// What `stats()` reports.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Events stored.
    pub events: u64,
    /// Events per size class, XS to XL.
    pub per_class: [u64; 5],
    /// Every author log: group, author, length, root.
    pub logs: Vec<(GroupId, AuthorId, u64, [u8; 32])>,
    /// Node-wide MMR root.
    pub mmr_root: Option<[u8; 32]>,
    /// Bytes used on disk: LMDB file and page file.
    pub disk_bytes: (u64, u64),
    /// Ids held only in memory by the hash index.
    pub hash_index_pending: usize,
    /// Sorted runs of the hash index table (about log2 of its flushed chunks).
    pub hash_index_runs: usize,
    /// The longest hash index flush (write a chunk, advance merges) since open: the
    /// longest pause it put between two commits.
    pub hash_index_longest_flush: std::time::Duration,
}

/// What a successful `verify()` checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events re-hashed and found by id.
    pub events: u64,
    /// Author logs whose MMR root was recomputed.
    pub logs: u64,
    /// Checkpoint signatures verified.
    pub checkpoints: u64,
    /// Stored MMR nodes compared with the recomputed trees.
    pub nodes: u64,
    /// The node-wide MMR root that was recomputed and matched.
    pub mmr_root: Option<[u8; 32]>,
}

fn mismatch(store: &Engine, reason: String) -> Error {
    Error::Corrupt {
        path: store.shared().opts().data_dir.clone(),
        reason,
    }
}

fn mmr_err(e: xaeroflux_core::mmr::MmrError) -> Error {
    Error::from(e)
}

impl Engine {
    /// Counts, log heads, roots and disk use.
    pub fn stats(&self) -> Result<Stats> {
        let snap = self.read()?;
        let mut st = Stats {
            events: snap.event_count()?,
            mmr_root: snap.mmr_root()?,
            hash_index_pending: self.shared().store().hashes.pending(),
            ..Stats::default()
        };
        let sh = self.shared();
        (st.hash_index_longest_flush, st.hash_index_runs) = sh
            .store()
            .hashes
            .table_stats(&sh.store().env, &sh.store().tables)?;
        for ev in snap.since(0)? {
            let ev = ev?;
            if let Some(c) = SizeClass::for_len(ev.event.payload.len()) {
                st.per_class[c as usize] += 1;
            }
        }
        for g in self.groups() {
            for (author, _) in snap.logs_of(&g)? {
                if let Some((len, root)) = snap.log_root(&g, &author)? {
                    st.logs.push((g, author, len, root));
                }
            }
        }
        let lmdb = std::fs::metadata(sh.opts().data_dir.join("data.mdb")).map_or(0, |m| m.len());
        let pages = std::fs::metadata(sh.store().pages.path()).map_or(0, |m| m.len());
        st.disk_bytes = (lmdb, pages);
        Ok(st)
    }

    /// Re-hashes every event, checks the hash index, recomputes every MMR root and checks
    /// every checkpoint signature. `progress(done, total)` is called as it goes.
    pub fn verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
        let snap = self.read()?;
        let total = snap.event_count()?;
        let mut node = Mmr::new(MemStore::new(), 0).map_err(mmr_err)?;
        let mut logs: BTreeMap<(GroupId, AuthorId), Mmr<MemStore>> = BTreeMap::new();
        let mut report = VerifyReport::default();
        for ev in snap.since(0)? {
            let ev = ev?;
            let id = ev.event.id();
            let found = snap.get(&id)?.map(|s| s.local_seq);
            if found != Some(ev.local_seq) {
                return Err(mismatch(
                    self,
                    format!(
                        "event {} at {} is not found by its hash (index says {found:?})",
                        id.short(),
                        ev.local_seq
                    ),
                ));
            }
            let leaf = node.push(&id.0).map_err(mmr_err)?;
            if leaf != ev.local_seq {
                return Err(mismatch(
                    self,
                    format!("gap in local sequence at {}", ev.local_seq),
                ));
            }
            let h = ev.event.header;
            let log = match logs.entry((h.group, h.author)) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(Mmr::new(MemStore::new(), 0).map_err(mmr_err)?)
                }
            };
            let seq = log.push(&id.0).map_err(mmr_err)?;
            if seq != h.seq {
                return Err(mismatch(
                    self,
                    format!(
                        "log {}/{}: event {} has seq {}, expected {seq}",
                        h.group.short(),
                        h.author.short(),
                        id.short(),
                        h.seq
                    ),
                ));
            }
            report.events += 1;
            if report.events % 4096 == 0 || report.events == total {
                progress(report.events, total);
            }
        }
        let stored_root = snap.mmr_root()?;
        let computed = if node.is_empty() {
            None
        } else {
            Some(node.root().map_err(mmr_err)?)
        };
        if stored_root != computed {
            return Err(mismatch(
                self,
                "node mmr root does not match the events".into(),
            ));
        }
        report.mmr_root = computed;
        for ((g, a), mmr) in &logs {
            let stored = snap.log_root(g, a)?;
            let computed = (mmr.leaf_count(), mmr.root().map_err(mmr_err)?);
            if stored != Some(computed) {
                return Err(mismatch(
                    self,
                    format!(
                        "log {}/{} mmr root does not match its events",
                        g.short(),
                        a.short()
                    ),
                ));
            }
            report.logs += 1;
        }
        let sh = self.shared();
        let rtxn = sh.store().env.read_txn()?;
        // Every stored node (full pages and tails) must equal the recomputed one: a root
        // check alone would miss damage to interior nodes that only proofs read.
        let mut check_nodes = |mmr_id: u64, name: &str, expected: &[[u8; 32]]| -> Result<()> {
            let size = for_each_stored_node(
                &sh.store().tables,
                &rtxn,
                &sh.store().pages,
                mmr_id,
                |pos, node| match expected.get(pos as usize) {
                    Some(e) if e == node => Ok(()),
                    _ => Err(mismatch(
                        self,
                        format!("{name}: stored node {pos} differs from the recomputed tree"),
                    )),
                },
            )?;
            if size != expected.len() as u64 {
                return Err(mismatch(
                    self,
                    format!("{name}: {size} nodes stored, {} recomputed", expected.len()),
                ));
            }
            report.nodes += size;
            Ok(())
        };
        check_nodes(NODE_MMR_ID, "node mmr", node.store().nodes())?;
        for ((g, a), mmr) in &logs {
            let id = snap.log_mmr_id(g, a)?.ok_or_else(|| {
                mismatch(self, format!("log {}/{} has no mmr", g.short(), a.short()))
            })?;
            check_nodes(
                id,
                &format!("log {}/{} mmr", g.short(), a.short()),
                mmr.store().nodes(),
            )?;
        }
        let mut keys: HashMap<AuthorId, XaeroID> = HashMap::new();
        for item in sh.store().tables.checkpoints.iter(&rtxn)? {
            let (_, v) = item?;
            let cp = SignedCheckpoint::decode(v)
                .map_err(|e| mismatch(self, format!("checkpoint: {e}")))?;
            let c = cp.checkpoint;
            let key = match keys.entry(c.author) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let pk = sh
                        .store()
                        .tables
                        .authors
                        .get(&rtxn, c.author.as_bytes())?
                        .ok_or_else(|| {
                            mismatch(
                                self,
                                format!("no public key for author {}", c.author.short()),
                            )
                        })?;
                    v.insert(
                        XaeroID::from_bytes(pk)
                            .map_err(|e| mismatch(self, format!("author key: {e}")))?,
                    )
                }
            };
            cp.verify(key).map_err(|e| {
                mismatch(
                    self,
                    format!(
                        "checkpoint {}/{}@{}: {e}",
                        c.group.short(),
                        c.author.short(),
                        c.length
                    ),
                )
            })?;
            let log = logs
                .get(&(c.group, c.author))
                .ok_or_else(|| mismatch(self, "checkpoint of a log with no events".into()))?;
            if log.root_at(c.length).map_err(mmr_err)? != c.root {
                return Err(mismatch(
                    self,
                    format!(
                        "checkpoint {}/{}@{} signs a root the events do not produce",
                        c.group.short(),
                        c.author.short(),
                        c.length
                    ),
                ));
            }
            report.checkpoints += 1;
        }
        Ok(report)
    }
}
