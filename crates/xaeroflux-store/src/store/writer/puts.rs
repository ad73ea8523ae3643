//! The LMDB puts of a commit: event blocks written in place, and cursors that append
//! while keys increase (local writes) and fall back to normal puts when they do not
//! (remote logs interleave their keys with ours).

use std::io::Write;

use heed::{PutFlags, RwTxn};
use xaeroflux_core::EventHeader;
use xaeroflux_core::block::{encoded_block_len, write_block_head};
use xaeroflux_core::event::HEADER_LEN;
use xaeroflux_core::posting::PostingRun;

use crate::error::Result;
use crate::store::{Db, be};

/// An event going into a block: a local one is encoded there, a remote one (already
/// encoded and verified) copied.
#[derive(Clone, Copy)]
pub(super) enum BlockEvent<'a> {
    Encode(&'a EventHeader, &'a [u8]),
    Copy(&'a [u8]),
}

impl BlockEvent<'_> {
    /// Length of the event's encoding.
    pub(super) fn len(&self) -> usize {
        match *self {
            BlockEvent::Encode(_, payload) => HEADER_LEN + payload.len(),
            BlockEvent::Copy(raw) => raw.len(),
        }
    }
}

/// A write cursor over one table for the batch's puts. Keys are tried as LMDB
/// `APPEND`s: local writes produce increasing keys (local sequence, seq and HLC grow),
/// and an `APPEND` through a cursor that sits on the last entry writes there without
/// searching the B-tree, and fills pages completely. LMDB checks an `APPEND` key against
/// the table's last key itself and refuses one that does not increase (`KEYEXIST`, the
/// transaction stays usable): that put is redone as a normal one, and the rest of the
/// batch takes normal puts (remote logs interleave their keys with ours).
pub(super) struct Appender<'t> {
    cursor: heed::RwIter<'t, heed::types::Bytes, heed::types::Bytes>,
    append: bool,
}

impl<'t> Appender<'t> {
    pub(super) fn new(db: &Db, wtxn: &'t mut RwTxn<'_>) -> Result<Self> {
        Ok(Appender {
            cursor: db.iter_mut(wtxn)?,
            append: true,
        })
    }

    pub(super) fn put(&mut self, key: &[u8], val: &[u8]) -> Result<()> {
        if self.append {
            // SAFETY: `key` and `val` are the writer's own buffers, never bytes borrowed
            // from this table, so the put cannot invalidate them.
            let r = unsafe {
                self.cursor.put_current_with_options::<heed::types::Bytes>(
                    PutFlags::APPEND,
                    key,
                    val,
                )
            };
            match r {
                Ok(()) => return Ok(()),
                Err(heed::Error::Mdb(heed::MdbError::KeyExist)) => self.append = false,
                Err(e) => return Err(e.into()),
            }
        }
        // SAFETY: as above.
        unsafe {
            self.cursor
                .put_current_with_options::<heed::types::Bytes>(PutFlags::empty(), key, val)
        }?;
        Ok(())
    }
}

/// Puts a batch's posting runs (sorted by key) into `db`.
pub(super) fn put_postings(
    db: &Db,
    wtxn: &mut RwTxn<'_>,
    runs: &[(Vec<u8>, PostingRun)],
    buf: &mut Vec<u8>,
) -> Result<()> {
    let mut cursor = Appender::new(db, wtxn)?;
    for (key, run) in runs {
        buf.clear();
        run.encode(buf);
        cursor.put(key, buf)?;
    }
    Ok(())
}

/// Appends one block to `events` through `cursor`, written in place.
pub(super) fn put_block(
    cursor: &mut heed::RwIter<'_, heed::types::Bytes, heed::types::Bytes>,
    first: u64,
    events: &[BlockEvent<'_>],
    lens: &[usize],
) -> Result<()> {
    // SAFETY: the closure writes only the batch's own bytes, nothing borrowed from the
    // table; keys increase (the local sequence), so `APPEND` never overwrites.
    unsafe {
        cursor.put_current_reserved_with_flags(
            PutFlags::APPEND,
            &be(first),
            encoded_block_len(lens),
            |space| {
                write_block_head(space, lens)?;
                let mut head = [0u8; HEADER_LEN];
                for event in events {
                    match *event {
                        BlockEvent::Encode(header, payload) => {
                            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
                            header.encode(len, &mut head);
                            space.write_all(&head)?;
                            space.write_all(payload)?;
                        }
                        BlockEvent::Copy(raw) => space.write_all(raw)?,
                    }
                }
                Ok(())
            },
        )
    }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Durability;
    use crate::store::{blocks, open_env};
    use xaeroflux_core::event::encode_into;
    use xaeroflux_core::{AuthorId, EventRef, GroupId, Hlc};

    fn header(seq: u64) -> EventHeader {
        EventHeader {
            event_type: 1000,
            group: GroupId([1; 32]),
            author: AuthorId([2; 32]),
            seq,
            hlc: Hlc::from_u64(seq + 1),
        }
    }

    /// Increasing keys are appended; a key that does not increase is still put (as a
    /// normal put), and so is every key after it.
    #[test]
    fn appender_falls_back_to_normal_puts() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 16 << 20, Durability::Batched).unwrap();
        let mut wtxn = env.write_txn().unwrap();
        {
            let mut a = Appender::new(&t.meta, &mut wtxn).unwrap();
            for k in [b"k1", b"k3", b"k2", b"k4", b"k0"] {
                a.put(k, k).unwrap();
            }
        }
        let keys: Vec<Vec<u8>> = t
            .meta
            .iter(&wtxn)
            .unwrap()
            .map(|e| e.unwrap().0.to_vec())
            .filter(|k| k.starts_with(b"k"))
            .collect();
        let want: Vec<Vec<u8>> = [b"k0", b"k1", b"k2", b"k3", b"k4"]
            .iter()
            .map(|k| k.to_vec())
            .collect();
        assert_eq!(keys, want);
    }

    /// A block of encoded and copied events reads back as those events, in order.
    #[test]
    fn put_block_writes_a_readable_block() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 16 << 20, Durability::Batched).unwrap();
        let mut copied = Vec::new();
        encode_into(&header(1), b"copied", &mut copied);
        let h0 = header(0);
        let events = [
            BlockEvent::Encode(&h0, b"encoded"),
            BlockEvent::Copy(&copied),
        ];
        let lens: Vec<usize> = events.iter().map(BlockEvent::len).collect();
        let mut wtxn = env.write_txn().unwrap();
        {
            let mut cursor = t.events.iter_mut(&mut wtxn).unwrap();
            put_block(&mut cursor, 0, &events, &lens).unwrap();
        }
        wtxn.commit().unwrap();
        let rtxn = env.read_txn().unwrap();
        let e0 = blocks::event_at(&t, &rtxn, 0).unwrap().unwrap();
        let e1 = blocks::event_at(&t, &rtxn, 1).unwrap().unwrap();
        let d0 = EventRef::decode(e0).unwrap();
        assert_eq!((d0.header, d0.payload), (h0, &b"encoded"[..]));
        assert_eq!(e1, &copied[..]);
        assert_eq!(blocks::event_count(&t, &rtxn).unwrap(), 2);
    }
}
