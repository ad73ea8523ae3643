//! Posting runs: the value of a type or time index entry of the store, listing the
//! local sequences of up to [`MAX_RUN`] events of one stream (see the store's
//! `postings` module and `docs/FORMAT.md`).
//!
//! Layout (little-endian): `count u32 (1..=MAX_RUN) | last_hlc u64 | first_local u64 |
//! count - 1 LEB128 gaps` (each gap `local[i] - local[i-1] >= 1`).

/// Most events in one run.
pub const MAX_RUN: usize = 4096;
/// Largest HLC distance between a run's first and last event: one second.
pub const MAX_SPAN: u64 = 1000 << 16;

/// A run of the type or time index, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingRun {
    /// HLC of the run's last event.
    pub last_hlc: u64,
    /// Local sequences of the events, increasing.
    pub locals: Vec<u64>,
}

impl PostingRun {
    /// Appends the encoded value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (Some(&first), Ok(count)) = (self.locals.first(), u32::try_from(self.locals.len()))
        else {
            return;
        };
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&self.last_hlc.to_le_bytes());
        out.extend_from_slice(&first.to_le_bytes());
        for w in self.locals.windows(2) {
            let mut gap = w[1] - w[0];
            while gap >= 0x80 {
                out.push((gap as u8) | 0x80);
                gap >>= 7;
            }
            out.push(gap as u8);
        }
    }

    /// Decodes a value; `None` unless it is exactly one well-formed run.
    pub fn decode(v: &[u8]) -> Option<PostingRun> {
        let (count, rest) = v.split_first_chunk::<4>()?;
        let count = u32::from_le_bytes(*count) as usize;
        if count == 0 || count > MAX_RUN {
            return None;
        }
        let (last_hlc, rest) = rest.split_first_chunk::<8>()?;
        let (first, mut rest) = rest.split_first_chunk::<8>()?;
        let mut locals = Vec::with_capacity(count);
        let mut local = u64::from_le_bytes(*first);
        locals.push(local);
        for _ in 1..count {
            let mut gap = 0u64;
            let mut shift = 0;
            loop {
                let (&b, r) = rest.split_first()?;
                rest = r;
                if shift == 63 && b > 1 {
                    return None;
                }
                gap |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    break;
                }
                shift += 7;
                if shift > 63 {
                    return None;
                }
            }
            if gap == 0 {
                return None;
            }
            local = local.checked_add(gap)?;
            locals.push(local);
        }
        rest.is_empty().then_some(PostingRun {
            last_hlc: u64::from_le_bytes(*last_hlc),
            locals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn runs_round_trip(first in any::<u64>(), gaps in prop::collection::vec(1u64..1 << 40, 0..200), last_hlc in any::<u64>()) {
            let mut locals = vec![first];
            for g in &gaps {
                match locals.last().unwrap().checked_add(*g) {
                    Some(l) => locals.push(l),
                    None => break,
                }
            }
            let run = PostingRun { last_hlc, locals };
            let mut v = Vec::new();
            run.encode(&mut v);
            prop_assert_eq!(PostingRun::decode(&v), Some(run));
        }

        #[test]
        fn arbitrary_values_never_panic(v in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(run) = PostingRun::decode(&v) {
                prop_assert!(!run.locals.is_empty());
                prop_assert!(run.locals.windows(2).all(|w| w[0] < w[1]));
                let mut again = Vec::new();
                run.encode(&mut again);
                prop_assert_eq!(PostingRun::decode(&again), Some(run));
            }
        }
    }

    #[test]
    fn malformed_runs_are_refused() {
        let run = PostingRun {
            last_hlc: 9,
            locals: vec![5, 6, 300],
        };
        let mut v = Vec::new();
        run.encode(&mut v);
        assert_eq!(PostingRun::decode(&v), Some(run));
        assert_eq!(PostingRun::decode(&v[..v.len() - 1]), None);
        let mut long = v.clone();
        long.push(1);
        assert_eq!(PostingRun::decode(&long), None);
        let mut zero_gap = v.clone();
        zero_gap[20] = 0;
        assert_eq!(PostingRun::decode(&zero_gap), None);
        let mut zero_count = v.clone();
        zero_count[..4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(PostingRun::decode(&zero_count), None);
        // A gap that overflows u64.
        let mut over = Vec::new();
        over.extend_from_slice(&2u32.to_le_bytes());
        over.extend_from_slice(&0u64.to_le_bytes());
        over.extend_from_slice(&u64::MAX.to_le_bytes());
        over.push(1);
        assert_eq!(PostingRun::decode(&over), None);
    }
}
