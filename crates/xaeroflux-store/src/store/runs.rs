//! The per-log index as runs: `group | author | first_seq` -> `first_local | count`
//! (both u64 big-endian): seqs `first_seq .. first_seq + count` of the author log are
//! stored at local sequences `first_local .. first_local + count`.
//!
//! A group commit appends each log's events at consecutive local sequences (unless
//! logs interleave), so one entry per log per commit replaces one per event; a run
//! that continues the log's last run in both numberings extends it instead. The runs
//! of a log follow each other without gaps, starting at seq 0.

use std::ops::Bound;

use heed::RoTxn;
use heed::types::Bytes;
use xaeroflux_core::{AuthorId, GroupId};

use super::{Step, Steps, Tables, log_key, log_prefix};
use crate::error::{Error, Result};

/// One run of an author log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogRun {
    pub first_seq: u64,
    pub first_local: u64,
    pub count: u64,
}

fn corrupt(reason: String) -> Error {
    Error::CorruptTable {
        table: "logs",
        reason,
    }
}

impl LogRun {
    /// The stored value.
    pub(crate) fn value(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.first_local.to_be_bytes());
        v[8..].copy_from_slice(&self.count.to_be_bytes());
        v
    }

    /// Decodes an entry; `None` unless the key is a log key and the value holds a
    /// non-empty run whose ends fit in u64.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Option<LogRun> {
        let key: &[u8; 72] = key.try_into().ok()?;
        let value: &[u8; 16] = value.try_into().ok()?;
        let first_seq = u64::from_be_bytes(key[64..].try_into().ok()?);
        let first_local = u64::from_be_bytes(value[..8].try_into().ok()?);
        let count = u64::from_be_bytes(value[8..].try_into().ok()?);
        let run = LogRun {
            first_seq,
            first_local,
            count,
        };
        (count > 0
            && first_seq.checked_add(count).is_some()
            && first_local.checked_add(count).is_some())
        .then_some(run)
    }

    /// The seq after the run.
    pub(crate) fn end_seq(&self) -> u64 {
        self.first_seq + self.count
    }

    /// Whether `(seq, local)` continues this run in both numberings.
    pub(crate) fn continued_by(&self, seq: u64, local: u64) -> bool {
        self.end_seq() == seq && self.first_local + self.count == local
    }
}

/// The key of a run: a log's `group | author` prefix and the run's first seq.
pub(crate) fn run_key(prefix: &[u8; 64], first_seq: u64) -> [u8; 72] {
    let mut k = [0u8; 72];
    k[..64].copy_from_slice(prefix);
    k[64..].copy_from_slice(&first_seq.to_be_bytes());
    k
}

fn decode(key: &[u8], value: &[u8]) -> Result<LogRun> {
    LogRun::decode(key, value)
        .ok_or_else(|| corrupt(format!("bad run entry of {} bytes", value.len())))
}

/// The last run of a log.
pub(crate) fn last_run(
    t: &Tables,
    txn: &RoTxn<'_>,
    g: &GroupId,
    a: &AuthorId,
) -> Result<Option<LogRun>> {
    let prefix = log_prefix(&g.0, &a.0);
    let mut it = t.logs.rev_prefix_iter(txn, &prefix)?;
    match it.next().transpose()? {
        Some((k, v)) => decode(k, v).map(Some),
        None => Ok(None),
    }
}

/// Length of a log (its next seq).
pub(crate) fn log_len(t: &Tables, txn: &RoTxn<'_>, g: &GroupId, a: &AuthorId) -> Result<u64> {
    Ok(last_run(t, txn, g, a)?.map_or(0, |r| r.end_seq()))
}

/// `(seq, local)` of the log's events with `from <= seq < to`, in seq order.
pub(crate) fn log_locals<'t>(
    t: &Tables,
    txn: &'t RoTxn<'_>,
    g: &GroupId,
    a: &AuthorId,
    from: u64,
    to: u64,
) -> Result<Steps<LogLocals<'t>>> {
    let lo = log_key(&g.0, &a.0, from);
    // Start at the run that holds `from`, which may begin before it.
    let start = match t.logs.get_lower_than_or_equal_to(txn, &lo)? {
        Some((k, v)) if k.starts_with(&lo[..64]) => {
            let run = decode(k, v)?;
            if run.end_seq() > from {
                run.first_seq
            } else {
                from
            }
        }
        _ => from,
    };
    let start = log_key(&g.0, &a.0, start);
    let end = log_key(&g.0, &a.0, to);
    let range = (Bound::Included(&start[..]), Bound::Excluded(&end[..]));
    Ok(Steps::new(LogLocals {
        runs: t.logs.range(txn, &range)?,
        run: None,
        next: from,
        to,
    }))
}

/// Iterator of [`log_locals`].
pub(crate) struct LogLocals<'t> {
    runs: heed::RoRange<'t, Bytes, Bytes>,
    run: Option<LogRun>,
    next: u64,
    to: u64,
}

impl Step for LogLocals<'_> {
    type Item = (u64, u64);

    fn step(&mut self) -> Result<Option<(u64, u64)>> {
        loop {
            if self.next >= self.to {
                return Ok(None);
            }
            if let Some(r) = self.run
                && r.first_seq <= self.next
                && self.next < r.end_seq()
            {
                let seq = self.next;
                self.next += 1;
                return Ok(Some((seq, r.first_local + (seq - r.first_seq))));
            }
            let Some(item) = self.runs.next() else {
                return Ok(None);
            };
            let (k, v) = item?;
            let run = decode(k, v)?;
            let fits = match self.run {
                None => run.first_seq <= self.next,
                Some(prev) => run.first_seq == prev.end_seq(),
            };
            if !fits {
                return Err(corrupt(format!(
                    "log run at seq {} does not continue at {}",
                    run.first_seq, self.next
                )));
            }
            self.run = Some(run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn run_values_round_trip(seq in any::<u64>(), local in any::<u64>(), count in 1u64..1 << 40) {
            let run = LogRun { first_seq: seq, first_local: local, count };
            let key = log_key(&[1; 32], &[2; 32], seq);
            let decoded = LogRun::decode(&key, &run.value());
            let fits = seq.checked_add(count).is_some() && local.checked_add(count).is_some();
            prop_assert_eq!(decoded, fits.then_some(run));
        }

        #[test]
        fn arbitrary_entries_never_panic(key in prop::collection::vec(any::<u8>(), 0..80), value in prop::collection::vec(any::<u8>(), 0..20)) {
            if let Some(r) = LogRun::decode(&key, &value) {
                prop_assert!(r.count > 0);
                let _ = r.end_seq();
            }
        }
    }

    #[test]
    fn empty_runs_and_wrong_sizes_are_refused() {
        let key = log_key(&[1; 32], &[2; 32], 5);
        let empty = LogRun {
            first_seq: 5,
            first_local: 9,
            count: 0,
        };
        assert_eq!(LogRun::decode(&key, &empty.value()), None);
        let run = LogRun { count: 3, ..empty };
        assert_eq!(LogRun::decode(&key[..71], &run.value()), None);
        assert_eq!(LogRun::decode(&key, &run.value()[..15]), None);
        let r = LogRun::decode(&key, &run.value()).unwrap();
        assert_eq!(r.end_seq(), 8);
        assert!(r.continued_by(8, 12));
        assert!(!r.continued_by(8, 13));
        assert!(!r.continued_by(9, 12));
    }
}
