//! The view's LMDB environment: tables, keys, the per-document counters, loading a
//! document, and the check of the recorded position against the store.

use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, WithoutTls};
use loro::LoroDoc;
use xaeroflux::{GroupId, XaeroFlux};

use super::{DOCS_FORMAT_VERSION, DocError, DocInfo, DocsLoad, Result};

type Db = Database<'static, Bytes, Bytes>;

/// The view's tables.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub meta: Db,
    pub docs: Db,
    pub snapshots: Db,
    pub updates: Db,
}

const TABLE_NAMES: [&str; 4] = ["meta", "docs", "snapshots", "updates"];

pub(crate) mod meta_keys {
    pub const VERSION: &[u8] = b"version";
    /// `u64 BE`: every committed event below it was looked at.
    pub const POSITION: &[u8] = b"position";
    /// `local_seq u64 BE | event id [32]` of the last applied update.
    pub const LAST: &[u8] = b"last";
}

/// Per-document counters (`docs` table).
///
/// Format: `updates u64 LE | pending u64 LE | snapshot_bytes u64 LE` (24 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DocMeta {
    pub updates: u64,
    pub pending: u64,
    pub snapshot_bytes: u64,
}

impl DocMeta {
    pub fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.updates.to_le_bytes());
        b[8..16].copy_from_slice(&self.pending.to_le_bytes());
        b[16..].copy_from_slice(&self.snapshot_bytes.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<DocMeta> {
        let word = |i: usize| -> Result<u64> {
            b.get(i * 8..i * 8 + 8)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| corrupt("docs", "short counters"))
        };
        if b.len() != 24 {
            return Err(corrupt("docs", "counters are not 24 bytes"));
        }
        Ok(DocMeta {
            updates: word(0)?,
            pending: word(1)?,
            snapshot_bytes: word(2)?,
        })
    }
}

pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> DocError {
    DocError::Corrupt {
        table,
        reason: reason.into(),
    }
}

/// `group [32] | name | 0x00`: names hold no NUL, so a document's updates (this key
/// followed by a local sequence) never share a prefix with another document's.
pub(crate) fn doc_key(group: &GroupId, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + name.len() + 1 + 8);
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

/// `doc key | local_seq u64 BE`.
pub(crate) fn update_key(doc_key: &[u8], local_seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(doc_key.len() + 8);
    k.extend_from_slice(doc_key);
    k.extend_from_slice(&local_seq.to_be_bytes());
    k
}

pub(crate) fn open_env(dir: &Path, map_size: usize) -> Result<(Env<WithoutTls>, Tables)> {
    std::fs::create_dir_all(dir).map_err(|source| DocError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(map_size)
        .max_dbs(TABLE_NAMES.len() as u32)
        .max_readers(256);
    // Derived from the log: a system crash may lose the last transactions (applied
    // again from the recorded position) but with NO_META_SYNC never corrupts the file.
    // SAFETY: the flag only weakens durability, as described.
    unsafe {
        opts.flags(heed::EnvFlags::NO_META_SYNC);
    }
    // SAFETY: the view owns its directory; heed refuses to open one path twice in a
    // process, and `Docs::open` is the only opener.
    let env = unsafe { opts.open(dir) }?;
    let wtxn = env.write_txn()?;
    let dbs = match env.create_databases_and_commit(wtxn, |opener, wtxn| {
        let mut open = |name| opener.create_database::<Bytes, Bytes>(wtxn, Some(name));
        let dbs = (
            open(TABLE_NAMES[0])?,
            open(TABLE_NAMES[1])?,
            open(TABLE_NAMES[2])?,
            open(TABLE_NAMES[3])?,
        );
        Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(dbs))
    })? {
        CommitOrAbort::Commit(d) => d,
        CommitOrAbort::Abort(()) => {
            return Err(DocError::Stopped {
                reason: "table creation aborted".into(),
            });
        }
    };
    let (meta, docs, snapshots, updates) = dbs;
    Ok((
        env,
        Tables {
            meta,
            docs,
            snapshots,
            updates,
        },
    ))
}

fn be_u64(table: &'static str, b: &[u8]) -> Result<u64> {
    b.get(..8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt(table, "short integer"))
}

/// Checks the version and the recorded position against the store (the same rule as
/// the record views); clears the view if it does not match. Returns the position to
/// resume from.
pub(crate) fn check_against_store(
    env: &Env<WithoutTls>,
    t: &Tables,
    store: &XaeroFlux,
) -> Result<(u64, DocsLoad)> {
    let mut wtxn = env.write_txn()?;
    let version = t.meta.get(&wtxn, meta_keys::VERSION)?.map(<[u8]>::to_vec);
    let created = match version {
        None => {
            t.meta.put(
                &mut wtxn,
                meta_keys::VERSION,
                &DOCS_FORMAT_VERSION.to_be_bytes(),
            )?;
            true
        }
        Some(v) => {
            let found = u32::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("meta", "bad version"))?,
            );
            if found != DOCS_FORMAT_VERSION {
                return Err(DocError::UnsupportedFormat {
                    found,
                    supported: DOCS_FORMAT_VERSION,
                });
            }
            false
        }
    };
    let position = match t.meta.get(&wtxn, meta_keys::POSITION)? {
        Some(b) => be_u64("meta", b)?,
        None => 0,
    };
    let last = t.meta.get(&wtxn, meta_keys::LAST)?.map(<[u8]>::to_vec);
    let snap = store.read()?;
    let mut matches = position <= snap.event_count()?;
    if let (true, Some(last)) = (matches, last) {
        let seq = be_u64("meta", &last)?;
        let id = last
            .get(8..40)
            .ok_or_else(|| corrupt("meta", "short last event"))?;
        matches = seq < position
            && snap
                .get_local(seq)?
                .is_some_and(|e| e.event.id().0.as_slice() == id);
    }
    drop(snap);
    let load = if created {
        DocsLoad::Created
    } else if matches {
        DocsLoad::Loaded
    } else {
        DocsLoad::Rebuilt
    };
    if load == DocsLoad::Rebuilt {
        tracing::warn!(
            position,
            "document view does not match the store; rebuilding"
        );
        for db in [t.docs, t.snapshots, t.updates] {
            db.clear(&mut wtxn)?;
        }
        t.meta.delete(&mut wtxn, meta_keys::POSITION)?;
        t.meta.delete(&mut wtxn, meta_keys::LAST)?;
    }
    wtxn.commit()?;
    Ok((if matches { position } else { 0 }, load))
}

/// Loads a document: its snapshot, then the updates stored after it. `None` if the
/// view holds nothing of it.
pub(crate) fn load_doc(
    t: &Tables,
    txn: &RoTxn<'_, WithoutTls>,
    key: &[u8],
) -> Result<Option<LoroDoc>> {
    let Some(meta) = t.docs.get(txn, key)? else {
        return Ok(None);
    };
    DocMeta::decode(meta)?;
    let doc = match t.snapshots.get(txn, key)? {
        Some(s) => LoroDoc::from_snapshot(s).map_err(|e| corrupt("snapshots", e.to_string()))?,
        None => LoroDoc::new(),
    };
    let mut updates = Vec::new();
    for row in t.updates.prefix_iter(txn, key)? {
        let (_, u) = row?;
        updates.push(u.to_vec());
    }
    if !updates.is_empty() {
        doc.import_batch(&updates)
            .map_err(|e| corrupt("updates", e.to_string()))?;
    }
    Ok(Some(doc))
}

pub(crate) fn read_meta(
    t: &Tables,
    txn: &RoTxn<'_, WithoutTls>,
    key: &[u8],
) -> Result<Option<DocMeta>> {
    t.docs.get(txn, key)?.map(DocMeta::decode).transpose()
}

pub(crate) fn info(t: &Tables, txn: &RoTxn<'_, WithoutTls>, key: &[u8]) -> Result<Option<DocInfo>> {
    Ok(read_meta(t, txn, key)?.map(|m| DocInfo {
        updates: m.updates,
        pending: m.pending,
        snapshot_bytes: m.snapshot_bytes,
    }))
}

pub(crate) fn names(
    t: &Tables,
    txn: &RoTxn<'_, WithoutTls>,
    group: &GroupId,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for row in t.docs.prefix_iter(txn, group.as_bytes())? {
        let (k, _) = row?;
        let name = k
            .get(32..k.len().saturating_sub(1))
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| corrupt("docs", "bad document key"))?;
        out.push(name.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_and_refuse_other_lengths() {
        let m = DocMeta {
            updates: 7,
            pending: 3,
            snapshot_bytes: 1 << 40,
        };
        assert_eq!(DocMeta::decode(&m.encode()).unwrap(), m);
        assert!(DocMeta::decode(&m.encode()[..23]).is_err());
        assert!(DocMeta::decode(&[0u8; 25]).is_err());
    }

    #[test]
    fn a_document_key_is_no_prefix_of_another() {
        let g = GroupId::default();
        let a = doc_key(&g, "a");
        let ab = doc_key(&g, "ab");
        assert!(!ab.starts_with(&a));
        assert!(update_key(&a, 5).starts_with(&a));
    }
}
