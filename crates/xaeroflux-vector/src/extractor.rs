//! Turning event payloads into vectors.
//!
//! The engine calls a [`VectorExtractor`] registered for an event type on every
//! committed event of that type. [`NgramTextExtractor`] is a model-free example.

use crate::error::{Error, Result};

/// Maps an event payload to a vector, or `None` to leave the event unindexed. Called
/// from indexing threads, hence `Send + Sync`. Must be deterministic: a rebuilt index
/// must see the same vectors.
pub trait VectorExtractor: Send + Sync {
    /// The vector of `event_data`, or `None` if it has none.
    fn extract_vector(&self, event_data: &[u8]) -> Option<Vec<f32>>;
}

/// A *lexical* text embedding that needs no model: the payload is read as UTF-8,
/// lowercased, padded with one space at each end, and every window of `n` characters
/// is hashed (FNV-1a 64, then a SplitMix64 finaliser) into one of `dimension`
/// buckets with a sign taken from the hash (the "hashing trick", Weinberger et al.
/// 2009); the counts are L2-normalised.
///
/// Cosine similarity of two such vectors measures shared character n-grams: it finds
/// typos, inflections and shared words ("indexing" ~ "indexes"), **not meaning**
/// ("car" and "automobile" are unrelated to it). Use a real sentence-embedding model
/// through your own [`VectorExtractor`] for semantic search. The hash is fixed, so the
/// vectors are stable across platforms and releases.
#[derive(Debug, Clone)]
pub struct NgramTextExtractor {
    dimension: usize,
    n: usize,
}

impl NgramTextExtractor {
    /// `dimension` buckets (1 ..= 65,536; 256-1024 is typical), windows of `n`
    /// characters (1 ..= 16; 3 is typical).
    pub fn new(dimension: usize, n: usize) -> Result<Self> {
        if dimension == 0 || dimension > crate::params::MAX_DIMENSION {
            return Err(Error::InvalidParams {
                name: "dimension",
                reason: "must be in 1..=65536",
            });
        }
        if n == 0 || n > 16 {
            return Err(Error::InvalidParams {
                name: "n",
                reason: "must be in 1..=16",
            });
        }
        Ok(Self { dimension, n })
    }

    /// Output dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The embedding of `text`, or `None` if it is empty or only whitespace.
    pub fn embed(&self, text: &str) -> Option<Vec<f32>> {
        if text.trim().is_empty() {
            return None;
        }
        let mut padded = String::with_capacity(text.len() + 2);
        padded.push(' ');
        padded.extend(text.chars().flat_map(char::to_lowercase));
        padded.push(' ');
        let bounds: Vec<usize> = padded
            .char_indices()
            .map(|(i, _)| i)
            .chain([padded.len()])
            .collect();
        let chars = bounds.len() - 1;
        let n = self.n.min(chars);
        let mut v = vec![0f32; self.dimension];
        for start in 0..=chars - n {
            let gram = &padded.as_bytes()[bounds[start]..bounds[start + n]];
            let h = mix(fnv1a(gram));
            let bucket = (h % self.dimension as u64) as usize;
            v[bucket] += if h >> 63 == 0 { 1.0 } else { -1.0 };
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            // Every gram cancelled out (signed hashing): no direction to compare.
            return None;
        }
        v.iter_mut().for_each(|x| *x /= norm);
        Some(v)
    }
}

impl VectorExtractor for NgramTextExtractor {
    fn extract_vector(&self, event_data: &[u8]) -> Option<Vec<f32>> {
        self.embed(std::str::from_utf8(event_data).ok()?)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn lexically_close_texts_are_similar() {
        let e = NgramTextExtractor::new(512, 3).unwrap();
        let a = e.embed("offline-first event store").unwrap();
        let b = e.embed("Offline first event stores").unwrap();
        let c = e.embed("quantum chromodynamics lecture").unwrap();
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(cos(&a, &b) > 0.6, "{}", cos(&a, &b));
        assert!(cos(&a, &c) < 0.3, "{}", cos(&a, &c));
    }

    #[test]
    fn deterministic_and_rejects_non_text() {
        let e = NgramTextExtractor::new(64, 3).unwrap();
        assert_eq!(e.extract_vector(b"hello"), e.extract_vector(b"hello"));
        assert_eq!(e.extract_vector(b"   "), None);
        assert_eq!(e.extract_vector(&[0xff, 0xfe]), None);
        assert!(e.extract_vector("é".as_bytes()).is_some());
        assert!(NgramTextExtractor::new(0, 3).is_err());
        assert!(NgramTextExtractor::new(8, 0).is_err());
    }
}
