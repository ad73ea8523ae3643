//! Stage 3, the LMDB puts of a commit: each [`Deferred`] event goes into an event
//! block written in place (`events`), its log's run (`logs`) and its type and time
//! postings (`types`, `times`), table by table through one cursor each. Cursors append
//! while keys increase (local writes) and fall back to normal puts when they do not
//! (remote logs interleave their keys with ours).

use std::io::Write;

use heed::{PutFlags, RwTxn};
use xaeroflux_core::block::{encoded_block_len, has_room, write_block_head};
use xaeroflux_core::event::HEADER_LEN;
use xaeroflux_core::posting::PostingRun;
use xaeroflux_core::{EventHeader, GroupId};

use super::LogKey;
use crate::error::{Error, Result};
use crate::store::postings::{self, RunBuilder};
use crate::store::runs::{self, LogRun};
use crate::store::{Db, Tables, be, log_key};

/// An event of the commit whose puts wait until the commit's Merkle pages are being
/// flushed (they then overlap the page file's fsync): its header, local sequence and
/// bytes, borrowed from where the event came from (the intake's arena for a local
/// event, its remote batch for a received one).
#[derive(Clone, Copy)]
pub(super) struct Deferred<'a> {
    pub header: EventHeader,
    /// Local sequence: deferred events are consecutive from the commit's first.
    pub local: u64,
    pub body: BlockEvent<'a>,
}

/// Reused allocations of [`put_events`].
#[derive(Default)]
pub(super) struct PutBuffers {
    /// An encoded posting run.
    pub postings: Vec<u8>,
    /// Log runs of the commit.
    pub runs: Vec<(LogKey, LogRun)>,
}

/// Does the puts of a commit's events (in local sequence order), table by table.
pub(super) fn put_events(
    t: &Tables,
    wtxn: &mut RwTxn<'_>,
    deferred: &[Deferred<'_>],
    buf: &mut PutBuffers,
) -> Result<()> {
    put_blocks(t, wtxn, deferred)?;
    put_runs(t, wtxn, deferred, &mut buf.runs)?;
    let mut types: RunBuilder<(GroupId, u32)> = RunBuilder::default();
    let mut times: RunBuilder<LogKey> = RunBuilder::default();
    for d in deferred {
        let (h, local) = (&d.header, d.local);
        let hlc = h.hlc.as_u64();
        let (g, a) = (&h.group.0, &h.author.0);
        let type_key = || postings::type_key(g, h.event_type, hlc, local).to_vec();
        types.push((h.group, h.event_type), type_key, hlc, local);
        let time_key = || postings::time_key(g, hlc, a, h.seq).to_vec();
        times.push((h.group, h.author), time_key, hlc, local);
    }
    put_postings(&t.types, wtxn, types.finish(), &mut buf.postings)?;
    put_postings(&t.times, wtxn, times.finish(), &mut buf.postings)
}

/// Appends the events' encodings to `events` in blocks (see [`crate::store::blocks`]):
/// each block is written once, straight into LMDB's reserved space, with local events
/// encoded there and remote ones copied there.
fn put_blocks(t: &Tables, wtxn: &mut RwTxn<'_>, deferred: &[Deferred<'_>]) -> Result<()> {
    let mut cursor = t.events.iter_mut(wtxn)?;
    let mut events: Vec<BlockEvent<'_>> = Vec::new();
    let mut lens: Vec<usize> = Vec::new();
    let mut block_len = encoded_block_len(&[]);
    let mut first = None;
    for d in deferred {
        let len = d.body.len();
        if !has_room(lens.len(), block_len, len)
            && let Some(start) = first.take()
        {
            put_block(&mut cursor, start, &events, &lens)?;
            events.clear();
            lens.clear();
            block_len = encoded_block_len(&[]);
        }
        let start = *first.get_or_insert(d.local);
        if d.local != start + lens.len() as u64 {
            return Err(Error::Invariant {
                what: "deferred events out of order".into(),
            });
        }
        events.push(d.body);
        lens.push(len);
        block_len += 4 + len;
    }
    if let Some(start) = first {
        put_block(&mut cursor, start, &events, &lens)?;
    }
    Ok(())
}

/// Records the events' log runs (see [`crate::store::runs`]): one entry per stretch
/// of a log at consecutive local sequences, extending the log's last stored run when
/// the commit continues it.
fn put_runs(
    t: &Tables,
    wtxn: &mut RwTxn<'_>,
    deferred: &[Deferred<'_>],
    runs: &mut Vec<(LogKey, LogRun)>,
) -> Result<()> {
    runs.clear();
    // Index in `runs` of each log's latest run: few logs per commit, so a list.
    let mut latest: Vec<(LogKey, usize)> = Vec::new();
    for d in deferred {
        let (h, local) = (&d.header, d.local);
        let key = (h.group, h.author);
        let mut run = LogRun {
            first_seq: h.seq,
            first_local: local,
            count: 1,
        };
        match latest.iter_mut().find(|(k, _)| *k == key) {
            Some((_, i)) if runs[*i].1.continued_by(h.seq, local) => {
                runs[*i].1.count += 1;
                continue;
            }
            Some((_, i)) => *i = runs.len(),
            None => {
                latest.push((key, runs.len()));
                // The log's first run in this commit may continue its stored one: then
                // it is rewritten under its key with the larger count.
                if let Some(last) = runs::last_run(t, wtxn, &key.0, &key.1)?
                    && last.continued_by(h.seq, local)
                {
                    run = LogRun {
                        count: last.count + 1,
                        ..last
                    };
                }
            }
        }
        runs.push((key, run));
    }
    runs.sort_unstable_by_key(|((g, a), r)| (*g, *a, r.first_seq));
    let mut logs = Appender::new(&t.logs, wtxn)?;
    for ((g, a), run) in runs.iter() {
        logs.put(&log_key(&g.0, &a.0, run.first_seq), &run.value())?;
    }
    Ok(())
}

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

    /// A commit's local and received events, two logs interleaved: blocks in local
    /// order, one run per stretch of a log (continuing the stored run), postings.
    #[test]
    fn put_events_writes_blocks_runs_and_postings() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 16 << 20, Durability::Batched).unwrap();
        let other = |seq: u64| EventHeader {
            author: AuthorId([3; 32]),
            ..header(seq)
        };
        let mut received = Vec::new();
        encode_into(&other(0), b"received", &mut received);
        let hs = [header(0), header(1), other(0), header(2)];
        fn commit<'a>(
            hs: &'a [EventHeader],
            first_local: u64,
            received: &'a [u8],
        ) -> Vec<Deferred<'a>> {
            hs.iter()
                .enumerate()
                .map(|(i, h)| Deferred {
                    header: *h,
                    local: first_local + i as u64,
                    body: if h.author == AuthorId([3; 32]) {
                        BlockEvent::Copy(received)
                    } else {
                        BlockEvent::Encode(h, b"local")
                    },
                })
                .collect()
        }
        let mut buf = PutBuffers::default();
        let mut wtxn = env.write_txn().unwrap();
        put_events(&t, &mut wtxn, &commit(&hs, 0, &received), &mut buf).unwrap();
        // A second commit continuing the first log's run.
        let next = [header(3)];
        put_events(&t, &mut wtxn, &commit(&next, 4, &received), &mut buf).unwrap();
        wtxn.commit().unwrap();
        let rtxn = env.read_txn().unwrap();
        assert_eq!(blocks::event_count(&t, &rtxn).unwrap(), 5);
        assert_eq!(
            blocks::event_at(&t, &rtxn, 2).unwrap().unwrap(),
            &received[..]
        );
        let e3 = EventRef::decode(blocks::event_at(&t, &rtxn, 3).unwrap().unwrap()).unwrap();
        assert_eq!((e3.header, e3.payload), (header(2), &b"local"[..]));
        let (g, a) = (GroupId([1; 32]), AuthorId([2; 32]));
        let prefix = crate::store::log_prefix(&g.0, &a.0);
        let runs: Vec<LogRun> = t
            .logs
            .prefix_iter(&rtxn, &prefix)
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                LogRun::decode(k, v).unwrap()
            })
            .collect();
        // seqs 0..2 at local 0..2, then seqs 2..4 at local 3..5 (the second commit
        // extended that run).
        assert_eq!(
            runs.iter()
                .map(|r| (r.first_seq, r.first_local, r.count))
                .collect::<Vec<_>>(),
            [(0, 0, 2), (2, 3, 2)]
        );
        assert!(t.types.len(&rtxn).unwrap() >= 1);
        assert!(t.times.len(&rtxn).unwrap() >= 1);
    }

    /// Deferred events must be consecutive in local sequence.
    #[test]
    fn put_events_refuses_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 16 << 20, Durability::Batched).unwrap();
        let (h0, h1) = (header(0), header(1));
        let gap = [
            Deferred {
                header: h0,
                local: 0,
                body: BlockEvent::Encode(&h0, b"a"),
            },
            Deferred {
                header: h1,
                local: 2,
                body: BlockEvent::Encode(&h1, b"b"),
            },
        ];
        let mut wtxn = env.write_txn().unwrap();
        let r = put_events(&t, &mut wtxn, &gap, &mut PutBuffers::default());
        assert!(matches!(r, Err(Error::Invariant { .. })), "{r:?}");
    }
}
