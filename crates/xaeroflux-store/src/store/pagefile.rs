//! The paged Merkle file (`merkle_index.bin`).
//!
//! MMR nodes live in immutable 16 KiB pages (format: `xaeroflux_core::page`), appended
//! and never rewritten. LMDB records, in the same transaction as the events they cover,
//! how many pages are valid and which page holds which nodes of which MMR; pages past
//! that count (a torn or uncommitted tail) are ignored and overwritten by later appends.
//! Reads go through a read-only memory map that is extended as the file grows.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;
use xaeroflux_core::mmr::Hash32;
use xaeroflux_core::page::{PAGE_SIZE, PageView};

use crate::error::{Error, Result};

/// The page file.
pub(crate) struct PageFile {
    path: PathBuf,
    file: File,
    /// Map of the file's first `map.len() / PAGE_SIZE` pages; remapped to grow.
    map: RwLock<Option<Mapped>>,
}

/// The memory map and which of its pages passed their checksum.
///
/// Committed pages never change, so a page's checksum is checked on its first read
/// only: MMR reads touch a few nodes of the same pages over and over (every proof,
/// every snapshot's peaks), and hashing 16 KiB per node read dominated sync.
/// `verify` still checks every page ([`Checksum::Always`]).
struct Mapped {
    map: Mmap,
    /// One bit per page of `map`.
    checked: Vec<AtomicU64>,
}

impl Mapped {
    fn bit(index: usize) -> (usize, u64) {
        (index / 64, 1 << (index % 64))
    }

    fn is_checked(&self, index: usize) -> bool {
        let (w, b) = Self::bit(index);
        self.checked
            .get(w)
            .is_some_and(|w| w.load(Ordering::Relaxed) & b != 0)
    }

    fn set_checked(&self, index: usize, on: bool) {
        let (w, b) = Self::bit(index);
        if let Some(w) = self.checked.get(w) {
            if on {
                w.fetch_or(b, Ordering::Relaxed);
            } else {
                w.fetch_and(!b, Ordering::Relaxed);
            }
        }
    }
}

/// Whether a page read checks the page's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checksum {
    /// On the first read of the page only (it is immutable once committed).
    Once,
    /// On every read (`verify`).
    Always,
}

impl PageFile {
    /// Opens or creates the file, checking that it holds at least `valid_pages` pages.
    pub(crate) fn open(path: &Path, valid_pages: u64) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        let needed = valid_pages.saturating_mul(PAGE_SIZE as u64);
        if len < needed {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "page file truncated: {len} bytes, the store references {valid_pages} pages"
                ),
            });
        }
        let pf = PageFile {
            path: path.to_path_buf(),
            file,
            map: RwLock::new(None),
        };
        pf.remap()?;
        Ok(pf)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes encoded pages starting at page index `first` and (optionally) syncs them.
    pub(crate) fn write_pages(&self, first: u64, pages: &[u8], sync: bool) -> Result<()> {
        debug_assert_eq!(pages.len() % PAGE_SIZE, 0);
        if pages.is_empty() {
            return Ok(());
        }
        if let Some(m) = self.map.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // Only an uncommitted tail is ever rewritten (after a failed commit); a
            // page read before that must be checked again.
            let n = pages.len() / PAGE_SIZE;
            for i in 0..n {
                m.set_checked(first as usize + i, false);
            }
        }
        self.file
            .write_all_at(pages, first * PAGE_SIZE as u64)
            .map_err(Error::io(&self.path))?;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Forces written pages to stable storage.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(Error::io(&self.path))
    }

    fn remap(&self) -> Result<()> {
        let len = self.file.metadata().map_err(Error::io(&self.path))?.len();
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        if len == 0 {
            *guard = None;
            return Ok(());
        }
        // SAFETY: pages below the committed count are never written again (append-only),
        // and pages above it are never read; the process does not truncate the file while
        // it is open. Another process modifying the file is excluded by the store lock.
        let map = unsafe { Mmap::map(&self.file) }.map_err(Error::io(&self.path))?;
        let pages = map.len() / PAGE_SIZE;
        let checked: Vec<AtomicU64> = (0..pages.div_ceil(64))
            .map(|w| {
                let old = guard.as_ref().and_then(|m| m.checked.get(w));
                AtomicU64::new(old.map_or(0, |o| o.load(Ordering::Relaxed)))
            })
            .collect();
        *guard = Some(Mapped { map, checked });
        Ok(())
    }

    /// Reads node `slot` of the page at `index`, checking that the page is valid and
    /// belongs to `mmr_id` starting at `first_pos`.
    pub(crate) fn read_node(
        &self,
        index: u64,
        mmr_id: u64,
        first_pos: u64,
        slot: usize,
    ) -> Result<Hash32> {
        self.with_page(index, mmr_id, first_pos, Checksum::Once, |nodes| {
            nodes
                .get(slot)
                .copied()
                .ok_or_else(|| self.corrupt(format!("page {index} has no node in slot {slot}")))
        })
    }

    /// Calls `f` with the nodes of the page at `index` after checking the page (its
    /// checksum as `checksum` says) and that it belongs to `mmr_id` starting at
    /// `first_pos`.
    pub(crate) fn with_page<R>(
        &self,
        index: u64,
        mmr_id: u64,
        first_pos: u64,
        checksum: Checksum,
        f: impl FnOnce(&[Hash32]) -> Result<R>,
    ) -> Result<R> {
        let start = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(PAGE_SIZE))
            .ok_or_else(|| self.corrupt(format!("page index {index} out of range")))?;
        for attempt in 0..2 {
            {
                let guard = self.map.read().unwrap_or_else(|p| p.into_inner());
                if let Some(m) = guard.as_ref()
                    && let Some(bytes) = m.map.get(start..start + PAGE_SIZE)
                {
                    let i = start / PAGE_SIZE;
                    let skip = checksum == Checksum::Once && m.is_checked(i);
                    let page = if skip {
                        PageView::new_prechecked(bytes)
                    } else {
                        PageView::new(bytes)
                    }
                    .map_err(|e| self.corrupt(format!("page {index}: {e}")))?;
                    if !skip {
                        m.set_checked(i, true);
                    }
                    if page.mmr_id() != mmr_id || page.first_pos() != first_pos {
                        return Err(self.corrupt(format!(
                            "page {index} belongs to mmr {} at {}, expected mmr {mmr_id} at {first_pos}",
                            page.mmr_id(),
                            page.first_pos()
                        )));
                    }
                    return f(page.nodes());
                }
            }
            if attempt == 0 {
                self.remap()?;
            }
        }
        Err(self.corrupt(format!("page {index} is past the end of the file")))
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}
