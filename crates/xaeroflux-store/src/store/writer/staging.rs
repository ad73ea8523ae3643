//! Stage 2, MMR staging: the writer's MMRs (the node-wide one and every author log's
//! it touched), their staging into a commit, and the checkpoint of a local log.
//!
//! Appending an event's id changes an MMR in memory only ([`PagedNodes`] keeps new full
//! pages and the tail). [`Mmrs::stage`] writes those changes into the commit: new full
//! pages into one buffer for the page file (written and fsynced before the commit that
//! references them), page indexes and tails into LMDB. [`Mmrs::committed`] moves the
//! staged pages to the committed ones once the commit returned; after an aborted
//! transaction the writer loads the MMRs again ([`Mmrs::load`]).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use heed::{RoTxn, RwTxn};
use xaeroflux_core::mmr::Mmr;
use xaeroflux_core::{Checkpoint, Hlc};

use super::{LogKey, mmr_err};
use crate::error::{Error, Result};
use crate::store::hash_index::IdHasher;
use crate::store::mmrs::{NODE_MMR_ID, PagedNodes};
use crate::store::pagefile::PageFile;
use crate::store::{Tables, be, from_be, log_prefix, meta_keys, meta_u64};

/// The MMRs the writer appends to.
pub(super) struct Mmrs {
    file: Arc<PageFile>,
    node: Mmr<PagedNodes>,
    /// Author logs by (group, author); both are BLAKE3 outputs, so the cheap id hasher.
    logs: HashMap<LogKey, Mmr<PagedNodes>, BuildHasherDefault<IdHasher>>,
    next_mmr_id: u64,
}

/// Where each MMR of a commit put its new pages: the node MMR (`None`) and each log.
pub(super) struct Staged {
    first: Vec<(Option<LogKey>, u64)>,
    /// The page after the commit's last new page.
    pub next_page: u64,
}

impl Mmrs {
    /// The committed state: the node MMR; log MMRs load on first use.
    pub(super) fn load(t: &Tables, txn: &RoTxn<'_>, file: Arc<PageFile>) -> Result<Self> {
        let (nodes, size) = PagedNodes::load(t, txn, file.clone(), NODE_MMR_ID)?;
        Ok(Mmrs {
            file,
            node: Mmr::new(nodes, size).map_err(mmr_err)?,
            logs: HashMap::default(),
            next_mmr_id: meta_u64(t, txn, meta_keys::NEXT_MMR_ID)?.max(1),
        })
    }

    /// The node-wide MMR.
    pub(super) fn node(&mut self) -> &mut Mmr<PagedNodes> {
        &mut self.node
    }

    /// Leaves of the node-wide MMR (events in the store, with uncommitted appends).
    pub(super) fn node_leaves(&self) -> u64 {
        self.node.leaf_count()
    }

    /// The next MMR id to hand out (persisted with each commit).
    pub(super) fn next_mmr_id(&self) -> u64 {
        self.next_mmr_id
    }

    /// The MMR of an author log, loading it, or creating it (with a new id recorded in
    /// `log_mmrs`) for a new log.
    pub(super) fn log(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        key: LogKey,
    ) -> Result<&mut Mmr<PagedNodes>> {
        if !self.logs.contains_key(&key) {
            let prefix = log_prefix(&key.0.0, &key.1.0);
            let id = match t.log_mmrs.get(wtxn, &prefix)?.and_then(from_be) {
                Some(id) => id,
                None => {
                    let id = self.next_mmr_id;
                    self.next_mmr_id += 1;
                    t.log_mmrs.put(wtxn, &prefix, &be(id))?;
                    id
                }
            };
            let (nodes, size) = PagedNodes::load(t, wtxn, self.file.clone(), id)?;
            let mmr = Mmr::new(nodes, size).map_err(mmr_err)?;
            self.logs.insert(key, mmr);
        }
        self.logs.get_mut(&key).ok_or_else(|| Error::Invariant {
            what: "log mmr missing".into(),
        })
    }

    /// The log's MMR if it exists (loaded, or stored), without creating it.
    pub(super) fn existing_log(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        key: LogKey,
    ) -> Result<Option<&mut Mmr<PagedNodes>>> {
        let prefix = log_prefix(&key.0.0, &key.1.0);
        if self.logs.contains_key(&key) || t.log_mmrs.get(wtxn, &prefix)?.is_some() {
            return self.log(t, wtxn, key).map(Some);
        }
        Ok(None)
    }

    /// A loaded log's MMR.
    pub(super) fn loaded(&self, key: &LogKey) -> Result<&Mmr<PagedNodes>> {
        self.logs.get(key).ok_or_else(|| Error::Invariant {
            what: "log vanished".into(),
        })
    }

    /// The checkpoint (unsigned) of a loaded log at its current length.
    pub(super) fn checkpoint(&self, key: &LogKey, hlc: Hlc) -> Result<Checkpoint> {
        let mmr = self.loaded(key)?;
        Ok(Checkpoint {
            group: key.0,
            author: key.1,
            length: mmr.leaf_count(),
            root: mmr.root().map_err(mmr_err)?,
            hlc,
        })
    }

    /// Stages the node MMR and the logs `touched` into `wtxn`: their new full pages
    /// are appended to `pages` (to be written at page `first_page` onwards), their
    /// page indexes and tails put.
    pub(super) fn stage<'k>(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        touched: impl ExactSizeIterator<Item = &'k LogKey>,
        first_page: u64,
        pages: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<Staged> {
        let mut next_page = first_page;
        let mut first = Vec::with_capacity(touched.len() + 1);
        first.push((None, next_page));
        self.node
            .store_mut()
            .stage(t, wtxn, pages, &mut next_page, scratch)?;
        for key in touched {
            first.push((Some(*key), next_page));
            let mmr = self.logs.get_mut(key).ok_or_else(|| Error::Invariant {
                what: "log vanished".into(),
            })?;
            mmr.store_mut()
                .stage(t, wtxn, pages, &mut next_page, scratch)?;
        }
        Ok(Staged { first, next_page })
    }

    /// After the commit of `staged` returned Ok: its pages are committed pages.
    pub(super) fn committed(&mut self, staged: Staged) {
        for (key, first) in staged.first {
            match key {
                None => self.node.store_mut().committed(first),
                Some(k) => {
                    if let Some(mmr) = self.logs.get_mut(&k) {
                        mmr.store_mut().committed(first);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Durability;
    use crate::store::open_env;
    use xaeroflux_core::mmr::leaf_hash;
    use xaeroflux_core::page::NODES_PER_PAGE;
    use xaeroflux_core::{AuthorId, GroupId};

    fn setup(dir: &std::path::Path) -> (crate::store::Env0, Tables, Arc<PageFile>) {
        let (env, t) = open_env(dir, 64 << 20, Durability::Batched).unwrap();
        let file = Arc::new(PageFile::open(&dir.join("pages.bin"), 0).unwrap());
        (env, t, file)
    }

    fn leaves(n: u64, tag: u8) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| leaf_hash(blake3::hash(&[tag, i as u8, (i >> 8) as u8]).as_bytes()))
            .collect()
    }

    /// Appends staged, pages written and committed: loading again gives the same MMRs;
    /// a new log gets the next id, persisted.
    #[test]
    fn staged_and_committed_mmrs_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t, file) = setup(dir.path());
        let key = (GroupId([1; 32]), AuthorId([2; 32]));
        // Over one page of nodes, so the commit has full pages for the file.
        let n = NODES_PER_PAGE as u64;
        let ls = leaves(n, 1);
        let mut m = Mmrs::load(&t, &env.read_txn().unwrap(), file.clone()).unwrap();
        let first_id = m.next_mmr_id();
        let mut wtxn = env.write_txn().unwrap();
        m.node().push_leaf_hashes(&ls).unwrap();
        m.log(&t, &mut wtxn, key)
            .unwrap()
            .push_leaf_hashes(&ls)
            .unwrap();
        assert_eq!(m.next_mmr_id(), first_id + 1);
        let mut pages = Vec::new();
        let staged = m
            .stage(&t, &mut wtxn, [key].iter(), 0, &mut pages, &mut Vec::new())
            .unwrap();
        assert!(staged.next_page > 0 && !pages.is_empty());
        file.write_pages(0, &pages, true).unwrap();
        t.meta
            .put(
                &mut wtxn,
                meta_keys::NEXT_MMR_ID,
                &m.next_mmr_id().to_le_bytes(),
            )
            .unwrap();
        wtxn.commit().unwrap();
        m.committed(staged);
        let cp = m.checkpoint(&key, Hlc::from_u64(5)).unwrap();
        assert_eq!(cp.length, n);

        let mut again = Mmrs::load(&t, &env.read_txn().unwrap(), file).unwrap();
        assert_eq!(again.node_leaves(), n);
        assert_eq!(again.next_mmr_id(), first_id + 1);
        let mut wtxn = env.write_txn().unwrap();
        let log = again.existing_log(&t, &mut wtxn, key).unwrap().unwrap();
        assert_eq!(log.leaf_count(), n);
        assert_eq!(log.root().unwrap(), cp.root);
        let unknown = (GroupId([1; 32]), AuthorId([9; 32]));
        assert!(
            again
                .existing_log(&t, &mut wtxn, unknown)
                .unwrap()
                .is_none()
        );
    }

    /// Appends of an aborted commit are gone after loading again.
    #[test]
    fn an_aborted_commit_leaves_the_mmrs_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t, file) = setup(dir.path());
        let key = (GroupId([1; 32]), AuthorId([2; 32]));
        let mut m = Mmrs::load(&t, &env.read_txn().unwrap(), file.clone()).unwrap();
        let mut wtxn = env.write_txn().unwrap();
        m.node().push_leaf_hashes(&leaves(3, 2)).unwrap();
        m.log(&t, &mut wtxn, key)
            .unwrap()
            .push_leaf_hashes(&leaves(3, 2))
            .unwrap();
        m.stage(
            &t,
            &mut wtxn,
            [key].iter(),
            0,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        wtxn.abort();
        let mut again = Mmrs::load(&t, &env.read_txn().unwrap(), file).unwrap();
        assert_eq!(again.node_leaves(), 0);
        let mut wtxn = env.write_txn().unwrap();
        assert!(again.existing_log(&t, &mut wtxn, key).unwrap().is_none());
    }
}
