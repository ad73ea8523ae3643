//! The LMDB side of the store: environment, tables and their key layouts.
//!
//! Every table maps raw bytes to raw bytes; integers in keys are big-endian so that
//! LMDB's byte order is numeric order. Layouts are documented in `docs/FORMAT.md`.

pub(crate) mod blocks;
mod fork_rule;
pub(crate) mod hash_index;
pub(crate) mod mmrs;
pub(crate) mod pagefile;
pub(crate) mod postings;
mod reads;
pub(crate) mod runs;
pub(crate) mod writer;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithoutTls};

use xaeroflux_core::EventRef;

use hash_index::HashIndex;
use pagefile::PageFile;

use crate::error::{Error, Result};
use crate::options::Durability;

pub(crate) use fork_rule::Recorded;
pub(crate) use reads::decode_checkpoint;

/// The storage of one data directory: the LMDB environment and its tables, the page
/// file of the MMRs and the id index. Every read that more than one part of the engine
/// needs is a method of this type (`reads`), and so is the fork rule (`fork_rule`).
pub(crate) struct Store {
    pub env: Env0,
    pub tables: Tables,
    pub pages: Arc<PageFile>,
    pub hashes: HashIndex,
    /// Held shared by every transaction, exclusively while the map is resized.
    resize_gate: RwLock<()>,
    data_dir: PathBuf,
}

impl Store {
    /// Wraps the parts `Engine::open` opened.
    pub(crate) fn new(
        env: Env0,
        tables: Tables,
        pages: Arc<PageFile>,
        hashes: HashIndex,
        data_dir: PathBuf,
    ) -> Self {
        Store {
            env,
            tables,
            pages,
            hashes,
            resize_gate: RwLock::new(()),
            data_dir,
        }
    }

    /// Held while a transaction is open: the map is not resized under it.
    pub(crate) fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.resize_gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held while the map is resized (no transaction is open).
    pub(crate) fn gate_exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.resize_gate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A corruption of the store found by a read.
    pub(crate) fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: self.data_dir.clone(),
            reason,
        }
    }
}

/// Format version of the store written by this build.
pub const FORMAT_VERSION: u32 = 3;
/// Magic value stored under the `magic` meta key.
const MAGIC: &[u8] = b"xaeroflux-store";

/// A raw table.
pub(crate) type Db = Database<'static, Bytes, Bytes>;

/// Declares the tables once: the struct, their LMDB names (the field names) and the
/// conversion from the array `open_env` creates.
macro_rules! tables {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// All tables of a store.
        #[derive(Clone, Copy)]
        pub(crate) struct Tables {
            $($(#[$doc])* pub $name: Db,)*
        }

        const TABLE_NAMES: [&str; TABLE_COUNT] = [$(stringify!($name)),*];

        impl Tables {
            fn from_array(dbs: [Db; TABLE_COUNT]) -> Self {
                let [$($name),*] = dbs;
                Tables { $($name),* }
            }
        }
    };
}

const TABLE_COUNT: usize = 13;

tables! {
    /// `key (utf-8)` -> value: format version, magic, marks.
    meta,
    /// `first local_seq u64` -> block of consecutive events (see `blocks`). Appended.
    events,
    /// `run u64 | first prefix u64` -> sorted (id prefix, local_seq) entries: the hash
    /// index, flushed in sorted runs (see `hash_index`).
    hashes,
    /// `group [32] | author [32] | first seq u64` -> `first local_seq u64 | count u64`
    /// (see `runs`).
    logs,
    /// `group [32] | event_type u32 | first hlc u64 | first local_seq u64` -> posting
    /// run (see `postings`).
    types,
    /// `group [32] | first hlc u64 | author [32] | first seq u64` -> posting run.
    times,
    /// `group [32] | author [32] | length u64` -> signed checkpoint.
    checkpoints,
    /// `group [32] | author [32] | length u64` -> conflicting signed checkpoint.
    forks,
    /// `author id [32]` -> encoded XaeroID public key.
    authors,
    /// `group id [32]` -> group secret [32] (local only; never sent).
    groups,
    /// `mmr id u64` -> MMR state (see `mmrs`).
    mmrs,
    /// `group [32] | author [32]` -> `mmr id u64` of that author log.
    log_mmrs,
    /// `mmr id u64 | page no u64` -> index of the page in the page file.
    pages,
}

pub(crate) mod meta_keys {
    pub const MAGIC: &[u8] = b"magic";
    pub const FORMAT_VERSION: &[u8] = b"format_version";
    /// Events with `local_seq` below this are in the `hashes` table.
    pub const HASH_MARK: &[u8] = b"hash_index_mark";
    /// The sorted runs of the `hashes` table (see `hash_index`).
    pub const HASH_RUNS: &[u8] = b"hash_runs";
    /// The merge of two runs in progress, if any (format 3, see `hash_index`).
    pub const HASH_MERGE: &[u8] = b"hash_merge";
    /// Number of valid pages in the page file.
    pub const PAGE_COUNT: &[u8] = b"page_count";
    /// Next MMR id to hand out.
    pub const NEXT_MMR_ID: &[u8] = b"next_mmr_id";
    /// Highest HLC timestamp stored.
    pub const MAX_HLC: &[u8] = b"max_hlc";
    /// The default group id.
    pub const DEFAULT_GROUP: &[u8] = b"default_group";
}

pub(crate) type Env0 = Env<WithoutTls>;

/// Opens (creating if needed) the environment and checks its format.
pub(crate) fn open_env(
    dir: &Path,
    map_size: usize,
    durability: Durability,
) -> Result<(Env0, Tables)> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let page = page_size();
    let map_size = map_size.div_ceil(page) * page;
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(map_size)
        .max_dbs(TABLE_NAMES.len() as u32)
        .max_readers(256);
    if durability == Durability::None {
        // Not NO_SYNC: with it a system crash can corrupt the whole file, including data
        // an earlier `flush()` made durable. NO_META_SYNC keeps the file consistent and
        // may only lose the last transactions; `flush()` calls `force_sync`.
        // SAFETY: the flag only weakens durability, as documented on `Durability::None`.
        unsafe {
            opts.flags(EnvFlags::NO_META_SYNC);
        }
    }
    // SAFETY: one environment per data directory per process: the engine takes an
    // exclusive lock file before calling this, so the same path is never opened twice.
    let env = unsafe { opts.open(dir) }.map_err(|e| corrupt_or(dir, e))?;
    let wtxn = env.write_txn()?;
    let tables = match env.create_databases_and_commit(wtxn, |opener, wtxn| {
        let mut dbs = Vec::with_capacity(TABLE_NAMES.len());
        for name in TABLE_NAMES {
            dbs.push(opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?);
        }
        let arr: [Database<'_, Bytes, Bytes>; TABLE_COUNT] = dbs
            .try_into()
            .map_err(|_| heed::Error::Io(std::io::Error::other("table count")))?;
        Ok::<_, heed::Error>(CommitOrAbort::Commit(arr))
    })? {
        CommitOrAbort::Commit(t) => t,
        CommitOrAbort::Abort(()) => unreachable!("never aborted"),
    };
    let tables = Tables::from_array(tables);
    check_format(&env, &tables, dir)?;
    Ok((env, tables))
}

fn corrupt_or(dir: &Path, e: heed::Error) -> Error {
    match e {
        heed::Error::Mdb(heed::MdbError::Invalid | heed::MdbError::Corrupted) => Error::Corrupt {
            path: dir.to_path_buf(),
            reason: format!("not a valid LMDB environment: {e}"),
        },
        heed::Error::Mdb(heed::MdbError::VersionMismatch) => Error::Corrupt {
            path: dir.to_path_buf(),
            reason: "LMDB version mismatch".into(),
        },
        e => Error::Lmdb(e),
    }
}

fn check_format(env: &Env0, t: &Tables, dir: &Path) -> Result<()> {
    let mut wtxn = env.write_txn()?;
    let magic = t.meta.get(&wtxn, meta_keys::MAGIC)?.map(<[u8]>::to_vec);
    match magic {
        None => {
            if t.events.len(&wtxn)? != 0 || t.meta.len(&wtxn)? != 0 {
                return Err(Error::Corrupt {
                    path: dir.to_path_buf(),
                    reason: "store has data but no magic".into(),
                });
            }
            t.meta.put(&mut wtxn, meta_keys::MAGIC, MAGIC)?;
            put_format_version(t, &mut wtxn)?;
            wtxn.commit()?;
        }
        Some(m) if m != MAGIC => {
            return Err(Error::Corrupt {
                path: dir.to_path_buf(),
                reason: "not a xaeroflux store (wrong magic)".into(),
            });
        }
        Some(_) => {
            let v = t.meta.get(&wtxn, meta_keys::FORMAT_VERSION)?;
            let found = v
                .and_then(|v| <[u8; 4]>::try_from(v).ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| Error::Corrupt {
                    path: dir.to_path_buf(),
                    reason: "missing or malformed format version".into(),
                })?;
            wtxn.abort();
            match found {
                FORMAT_VERSION => {}
                1 => migrate_v1(env, t)?,
                // Version 3 only adds the `hash_merge` meta key, absent in version 2.
                2 => {
                    let mut wtxn = env.write_txn()?;
                    put_format_version(t, &mut wtxn)?;
                    wtxn.commit()?;
                }
                found => {
                    return Err(Error::UnsupportedFormat {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Records that the store is in this build's format.
fn put_format_version(t: &Tables, wtxn: &mut heed::RwTxn<'_>) -> Result<()> {
    t.meta.put(
        wtxn,
        meta_keys::FORMAT_VERSION,
        &FORMAT_VERSION.to_le_bytes(),
    )?;
    Ok(())
}

/// Rewrites a format-1 store into the current format: `events` from one value per event into
/// blocks, `logs` from one entry per event into runs (see `docs/FORMAT.md`). One
/// transaction: a crash before its commit leaves the store at version 1, untouched.
fn migrate_v1(env: &Env0, t: &Tables) -> Result<()> {
    // Room for the rewritten pages: up to a second copy of the store.
    let info = env.info();
    let psize = env.unnamed_database_stat().page_size as usize;
    let used = (info.last_page_number + 1) * psize;
    let want = used.saturating_mul(2).saturating_add(64 << 20);
    if info.map_size < want {
        let want = want.div_ceil(page_size()) * page_size();
        // SAFETY: called from `open_env` before any other transaction of this
        // environment exists (the data directory is locked to this process).
        unsafe { env.resize(want) }?;
    }
    let mut wtxn = env.write_txn()?;
    let corrupt = |table: &'static str, reason: String| Error::CorruptTable { table, reason };
    // Events, a block's worth at a time: copy, delete the per-event keys, put the block.
    let mut block = xaeroflux_core::BlockBuilder::new();
    let mut next = 0u64;
    loop {
        block.clear();
        for item in t
            .events
            .range(&wtxn, &(Bound::Included(&be(next)[..]), Bound::Unbounded))?
        {
            let (k, v) = item?;
            let local = from_be(k).ok_or_else(|| corrupt("events", "key is not a u64".into()))?;
            if local != next + block.len() as u64 {
                return Err(corrupt(
                    "events",
                    format!("no event at {}", next + block.len() as u64),
                ));
            }
            EventRef::decode(v).map_err(|source| Error::CorruptEvent {
                local_seq: local,
                source,
            })?;
            block.push(v);
            if block.is_full() {
                break;
            }
        }
        if block.is_empty() {
            break;
        }
        let last = next + block.len() as u64 - 1;
        t.events.delete_range(
            &mut wtxn,
            &(
                Bound::Included(&be(next)[..]),
                Bound::Included(&be(last)[..]),
            ),
        )?;
        t.events.put(&mut wtxn, &be(next), &block.to_vec())?;
        next = last + 1;
    }
    // Logs, in key order: consecutive entries of a log at consecutive local sequences
    // become one run, written under the key of its first entry.
    let mut prev: Option<([u8; 64], runs::LogRun)> = None;
    let mut after = None;
    let mut raw = Vec::new();
    loop {
        next_chunk(&t.logs, &wtxn, &mut after, &mut raw)?;
        let (Some((first, _)), Some((last, _))) = (raw.first(), raw.last()) else {
            break;
        };
        t.logs.delete_range(
            &mut wtxn,
            &(Bound::Included(&first[..]), Bound::Included(&last[..])),
        )?;
        for (k, v) in &raw {
            let bad = || corrupt("logs", format!("bad version-1 entry of {} bytes", k.len()));
            let (Some(seq), Some(local)) = (k.get(64..).and_then(from_be), from_be(v)) else {
                return Err(bad());
            };
            let prefix = &k[..64];
            if let Some((p, run)) = &mut prev
                && p[..] == *prefix
                && run.continued_by(seq, local)
            {
                run.count += 1;
                continue;
            }
            if let Some((p, run)) = prev.take() {
                t.logs
                    .put(&mut wtxn, &runs::run_key(&p, run.first_seq), &run.value())?;
            }
            let mut p = [0u8; 64];
            p.copy_from_slice(prefix);
            prev = Some((
                p,
                runs::LogRun {
                    first_seq: seq,
                    first_local: local,
                    count: 1,
                },
            ));
        }
    }
    if let Some((p, run)) = prev {
        t.logs
            .put(&mut wtxn, &runs::run_key(&p, run.first_seq), &run.value())?;
    }
    // The id index is rebuilt: dropped here, re-hashed from every event on open and
    // written as sorted runs by the next flush.
    t.hashes.clear(&mut wtxn)?;
    t.meta
        .put(&mut wtxn, meta_keys::HASH_MARK, &0u64.to_le_bytes())?;
    // Type and time entries: each becomes a run of one event, under the same key.
    let local_in_key = |k: &[u8], _: &[u8]| k.get(44..52).and_then(from_be);
    migrate_postings(&t.types, &mut wtxn, "types", 36, local_in_key)?;
    migrate_postings(&t.times, &mut wtxn, "times", 32, |_, v| from_be(v))?;
    put_format_version(t, &mut wtxn)?;
    wtxn.commit()?;
    tracing::info!(events = next, "store upgraded from format version 1 to 2");
    Ok(())
}

/// Rewrites each entry of a version-1 type or time index (one per event: the HLC at
/// `hlc_at` in the key, the local sequence found by `local_of`) as a one-event run.
fn migrate_postings(
    db: &Db,
    wtxn: &mut heed::RwTxn<'_>,
    table: &'static str,
    hlc_at: usize,
    local_of: impl Fn(&[u8], &[u8]) -> Option<u64>,
) -> Result<()> {
    let mut after = None;
    let mut chunk = Vec::new();
    loop {
        next_chunk(db, wtxn, &mut after, &mut chunk)?;
        if chunk.is_empty() {
            return Ok(());
        }
        for (k, v) in &chunk {
            let hlc = k.get(hlc_at..hlc_at + 8).and_then(from_be);
            let (Some(hlc), Some(local)) = (hlc, local_of(k, v)) else {
                return Err(Error::CorruptTable {
                    table,
                    reason: format!("bad version-1 entry of {} + {} bytes", k.len(), v.len()),
                });
            };
            let mut run = Vec::new();
            xaeroflux_core::posting::PostingRun {
                last_hlc: hlc,
                locals: vec![local],
            }
            .encode(&mut run);
            db.put(wtxn, k, &run)?;
        }
    }
}

/// Copies the next entries of `db` (up to 4096) after the key `after` (from the first
/// if `None`) into `chunk`, and moves `after` to the last one: a migration can then
/// rewrite the table it reads, in the same transaction.
fn next_chunk(
    db: &Db,
    txn: &RoTxn<'_>,
    after: &mut Option<Vec<u8>>,
    chunk: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    chunk.clear();
    let start = match after {
        Some(k) => Bound::Excluded(&k[..]),
        None => Bound::Unbounded,
    };
    for item in db.range(txn, &(start, Bound::Unbounded))?.take(4096) {
        let (k, v) = item?;
        chunk.push((k.to_vec(), v.to_vec()));
    }
    if let Some((last, _)) = chunk.last() {
        *after = Some(last.clone());
    }
    Ok(())
}

pub(crate) fn page_size() -> usize {
    // LMDB requires the map size to be a multiple of the OS page size; 64 KiB is a
    // multiple of every page size in use (4 KiB, 16 KiB on Apple silicon, 64 KiB).
    65_536
}

/// A cursor over a table, read one fallible step at a time: `Ok(None)` at the end.
pub(crate) trait Step {
    type Item;
    fn step(&mut self) -> Result<Option<Self::Item>>;
}

/// The items of a [`Step`] cursor as an iterator that ends after the first error: a
/// damaged table is reported once, never read past.
pub(crate) struct Steps<S> {
    cursor: S,
    done: bool,
}

impl<S> Steps<S> {
    pub(crate) fn new(cursor: S) -> Self {
        Steps {
            cursor,
            done: false,
        }
    }
}

impl<S: Step> Iterator for Steps<S> {
    type Item = Result<S::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.cursor.step().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

/// Reads a u64 stored little-endian under a meta key (0 if absent).
pub(crate) fn meta_u64(t: &Tables, txn: &RoTxn<'_>, key: &[u8]) -> Result<u64> {
    Ok(t.meta
        .get(txn, key)?
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, u64::from_le_bytes))
}

/// Big-endian u64 key.
pub(crate) fn be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Decodes a big-endian u64 value or key suffix.
pub(crate) fn from_be(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes)
}

/// `group | author | n` key.
pub(crate) fn log_key(group: &[u8; 32], author: &[u8; 32], n: u64) -> [u8; 72] {
    let mut k = [0u8; 72];
    k[..32].copy_from_slice(group);
    k[32..64].copy_from_slice(author);
    k[64..].copy_from_slice(&n.to_be_bytes());
    k
}

/// `group | author` prefix.
pub(crate) fn log_prefix(group: &[u8; 32], author: &[u8; 32]) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(group);
    k[32..].copy_from_slice(author);
    k
}
