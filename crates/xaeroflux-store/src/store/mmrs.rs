//! MMR node storage backed by the page file and LMDB.
//!
//! An MMR's nodes `0..full_pages * NODES_PER_PAGE` live in full, immutable pages of the
//! page file; the remaining nodes (the *tail*, less than one page) live in the MMR's
//! state record in LMDB. Both are updated in the same group commit, so the state on disk
//! is always one consistent MMR, and opening the store reads only the state records.
//!
//! State record (`mmrs` table, value), little-endian:
//! `size u64 | leaf_count u64 | full_pages u64 | tail nodes (32 bytes each)`.

use std::sync::Arc;

use heed::{RoTxn, RwTxn};
use xaeroflux_core::mmr::{Hash32, Mmr, MmrStore, is_valid_size, leaf_count_for_size};
use xaeroflux_core::page::{NODES_PER_PAGE, PAGE_SIZE, Page};

use super::pagefile::{Checksum, PageFile};
use super::{Tables, be, from_be};
use crate::error::{Error, Result};

const NPP: u64 = NODES_PER_PAGE as u64;
const STATE_HEADER: usize = 24;

/// Id of the node-wide MMR.
pub(crate) const NODE_MMR_ID: u64 = 0;

fn page_key(mmr_id: u64, page_no: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&be(mmr_id));
    k[8..].copy_from_slice(&be(page_no));
    k
}

/// Committed state of one MMR as read from LMDB.
#[derive(Debug, Clone, Default)]
pub(crate) struct MmrState {
    pub size: u64,
    pub full_pages: u64,
    pub tail: Vec<Hash32>,
}

impl MmrState {
    fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&leaf_count_for_size(self.size).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.full_pages.to_le_bytes());
        for n in &self.tail {
            out.extend_from_slice(n);
        }
    }

    fn decode(mmr_id: u64, b: &[u8], path: &std::path::Path) -> Result<Self> {
        let corrupt = |reason: &str| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("mmr {mmr_id} state: {reason}"),
        };
        if b.len() < STATE_HEADER || !(b.len() - STATE_HEADER).is_multiple_of(32) {
            return Err(corrupt("bad length"));
        }
        let u = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let (size, leaves, full_pages) = (u(0), u(8), u(16));
        if !is_valid_size(size) || leaf_count_for_size(size) != Some(leaves) {
            return Err(corrupt("invalid size"));
        }
        let tail: Vec<Hash32> = b[STATE_HEADER..]
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        if full_pages
            .checked_mul(NPP)
            .and_then(|n| n.checked_add(tail.len() as u64))
            != Some(size)
            || tail.len() as u64 >= NPP
        {
            return Err(corrupt("tail does not match size"));
        }
        Ok(MmrState {
            size,
            full_pages,
            tail,
        })
    }

    /// Reads the committed state of `mmr_id` (empty if absent).
    pub(crate) fn load(
        t: &Tables,
        txn: &RoTxn<'_>,
        mmr_id: u64,
        path: &std::path::Path,
    ) -> Result<Self> {
        match t.mmrs.get(txn, &be(mmr_id))? {
            Some(b) => Self::decode(mmr_id, b, path),
            None => Ok(MmrState::default()),
        }
    }
}

/// The page-file index of page `page_no` of `mmr_id`, as recorded in `txn`.
fn page_index(
    t: &Tables,
    txn: &RoTxn<'_>,
    file: &PageFile,
    mmr_id: u64,
    page_no: u64,
) -> Result<u64> {
    t.pages
        .get(txn, &page_key(mmr_id, page_no))?
        .and_then(from_be)
        .ok_or_else(|| Error::Corrupt {
            path: file.path().to_path_buf(),
            reason: format!("mmr {mmr_id} page {page_no} is not recorded"),
        })
}

/// Looks up the page-file index of page `page_no` of `mmr_id` and reads a node from it.
fn read_paged(
    t: &Tables,
    txn: &RoTxn<'_>,
    file: &PageFile,
    mmr_id: u64,
    pos: u64,
) -> Result<Hash32> {
    let page_no = pos / NPP;
    let index = page_index(t, txn, file, mmr_id, page_no)?;
    file.read_node(index, mmr_id, page_no * NPP, (pos % NPP) as usize)
}

/// A read-only view of one MMR's nodes inside a read transaction.
pub(crate) struct SnapshotNodes<'a, 't> {
    pub tables: &'a Tables,
    pub txn: &'a RoTxn<'t>,
    pub file: &'a PageFile,
    pub mmr_id: u64,
    pub state: MmrState,
}

impl MmrStore for SnapshotNodes<'_, '_> {
    type Error = Error;

    fn get(&self, pos: u64) -> Result<Option<Hash32>> {
        let paged = self.state.full_pages * NPP;
        if pos < paged {
            return read_paged(self.tables, self.txn, self.file, self.mmr_id, pos).map(Some);
        }
        Ok(self.state.tail.get((pos - paged) as usize).copied())
    }

    fn append(&mut self, _pos: u64, _nodes: &[Hash32]) -> Result<()> {
        Err(Error::Mmr("read-only snapshot".into()))
    }
}

/// Opens the MMR `mmr_id` as of `txn`.
pub(crate) fn snapshot_mmr<'a, 't>(
    tables: &'a Tables,
    txn: &'a RoTxn<'t>,
    file: &'a PageFile,
    mmr_id: u64,
) -> Result<Mmr<SnapshotNodes<'a, 't>>> {
    let state = MmrState::load(tables, txn, mmr_id, file.path())?;
    let size = state.size;
    let nodes = SnapshotNodes {
        tables,
        txn,
        file,
        mmr_id,
        state,
    };
    Mmr::new(nodes, size).map_err(Error::from)
}

/// The writer's node store of one MMR: committed pages, new full pages, and the tail.
pub(crate) struct PagedNodes {
    mmr_id: u64,
    file: Arc<PageFile>,
    /// Page-file index of each committed full page.
    pages: Vec<u64>,
    /// Full pages completed since the last commit (encoded), in page order.
    new_pages: Vec<Box<[u8; PAGE_SIZE]>>,
    /// Nodes after the last full page.
    tail: Vec<Hash32>,
}

impl PagedNodes {
    /// Loads the writer's view of `mmr_id` from the committed state.
    pub(crate) fn load(
        t: &Tables,
        txn: &RoTxn<'_>,
        file: Arc<PageFile>,
        mmr_id: u64,
    ) -> Result<(Self, u64)> {
        let state = MmrState::load(t, txn, mmr_id, file.path())?;
        let mut pages = Vec::with_capacity(state.full_pages as usize);
        for page_no in 0..state.full_pages {
            pages.push(page_index(t, txn, &file, mmr_id, page_no)?);
        }
        Ok((
            PagedNodes {
                mmr_id,
                file,
                pages,
                new_pages: Vec::new(),
                tail: state.tail,
            },
            state.size,
        ))
    }

    fn flushed_nodes(&self) -> u64 {
        (self.pages.len() + self.new_pages.len()) as u64 * NPP
    }

    /// Stages this MMR's changes: appends its new pages to `page_buf` (they will be
    /// written at page indexes `*next_page..`), and records pages and state in `wtxn`.
    pub(crate) fn stage(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        page_buf: &mut Vec<u8>,
        next_page: &mut u64,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        for (i, page) in self.new_pages.iter().enumerate() {
            let page_no = (self.pages.len() + i) as u64;
            t.pages.put(
                wtxn,
                &page_key(self.mmr_id, page_no),
                &be(*next_page + i as u64),
            )?;
            page_buf.extend_from_slice(&page[..]);
        }
        let full_pages = (self.pages.len() + self.new_pages.len()) as u64;
        let state = MmrState {
            size: full_pages * NPP + self.tail.len() as u64,
            full_pages,
            tail: std::mem::take(&mut self.tail),
        };
        state.encode(scratch);
        self.tail = state.tail;
        t.mmrs.put(wtxn, &be(self.mmr_id), scratch)?;
        *next_page += self.new_pages.len() as u64;
        Ok(())
    }

    /// After a successful commit: the staged pages now live at `first_page..`.
    pub(crate) fn committed(&mut self, first_page: u64) {
        let n = self.new_pages.len() as u64;
        self.pages.extend(first_page..first_page + n);
        self.new_pages.clear();
    }
}

impl MmrStore for PagedNodes {
    type Error = Error;

    fn get(&self, pos: u64) -> Result<Option<Hash32>> {
        let committed = self.pages.len() as u64 * NPP;
        if pos < committed {
            let page_no = pos / NPP;
            return self
                .file
                .read_node(
                    self.pages[page_no as usize],
                    self.mmr_id,
                    page_no * NPP,
                    (pos % NPP) as usize,
                )
                .map(Some);
        }
        let flushed = self.flushed_nodes();
        if pos < flushed {
            let rel = pos - committed;
            let page = &self.new_pages[(rel / NPP) as usize];
            return Ok(xaeroflux_core::page::PageView::new(&page[..])
                .ok()
                .and_then(|v| v.node((rel % NPP) as usize).copied()));
        }
        Ok(self.tail.get((pos - flushed) as usize).copied())
    }

    fn append(&mut self, pos: u64, nodes: &[Hash32]) -> Result<()> {
        debug_assert_eq!(pos, self.flushed_nodes() + self.tail.len() as u64);
        for n in nodes {
            self.tail.push(*n);
            if self.tail.len() as u64 == NPP {
                let first_pos = self.flushed_nodes();
                let mut page = Page::new(self.mmr_id, first_pos);
                for node in &self.tail {
                    page.push(node).map_err(|e| Error::Mmr(e.to_string()))?;
                }
                self.new_pages.push(Box::new(page.encode()));
                self.tail.clear();
            }
        }
        Ok(())
    }
}

/// Calls `f(pos, node)` for every stored node of `mmr_id` as of `txn`, reading each full
/// page once (checksum verified) and then the tail. Returns the MMR size.
pub(crate) fn for_each_stored_node(
    t: &Tables,
    txn: &RoTxn<'_>,
    file: &PageFile,
    mmr_id: u64,
    mut f: impl FnMut(u64, &Hash32) -> Result<()>,
) -> Result<u64> {
    let state = MmrState::load(t, txn, mmr_id, file.path())?;
    for page_no in 0..state.full_pages {
        let index = page_index(t, txn, file, mmr_id, page_no)?;
        file.with_page(index, mmr_id, page_no * NPP, Checksum::Always, |nodes| {
            for (i, n) in nodes.iter().enumerate() {
                f(page_no * NPP + i as u64, n)?;
            }
            Ok(())
        })?;
    }
    let paged = state.full_pages * NPP;
    for (i, n) in state.tail.iter().enumerate() {
        f(paged + i as u64, n)?;
    }
    Ok(state.size)
}
