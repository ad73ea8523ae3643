//! [`EventList`]: the encoded events of a batch, back to back in one buffer.
//!
//! A sync batch carries up to a frame's worth of events (hundreds of them). Holding
//! each in its own `Vec` cost one allocation and one free per event on both ends of
//! every transfer; one buffer plus the end offsets costs two per batch.

use std::fmt;
use std::ops::Range;

/// Encoded events stored back to back, in order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EventList {
    bytes: Vec<u8>,
    /// End offset of each event in `bytes`.
    ends: Vec<usize>,
}

impl EventList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `events` events of `bytes` bytes in total.
    pub fn with_capacity(events: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(events),
        }
    }

    /// Appends one encoded event.
    pub fn push(&mut self, event: &[u8]) {
        self.bytes.extend_from_slice(event);
        self.ends.push(self.bytes.len());
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the list holds no event.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of the encoded events.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    fn span(&self, i: usize) -> Option<Range<usize>> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(p) => self.ends[p],
            None => 0,
        };
        Some(start..end)
    }

    /// Event `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.span(i).and_then(|r| self.bytes.get(r))
    }

    /// The events in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + DoubleEndedIterator + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for EventList {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut out = EventList::new();
        for e in iter {
            out.push(e.as_ref());
        }
        out
    }
}

impl fmt::Debug for EventList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventList")
            .field("events", &self.len())
            .field("bytes", &self.byte_len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn holds_what_was_pushed(events in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..40)) {
            let list: EventList = events.iter().collect();
            prop_assert_eq!(list.len(), events.len());
            prop_assert_eq!(list.is_empty(), events.is_empty());
            prop_assert_eq!(list.byte_len(), events.iter().map(Vec::len).sum::<usize>());
            let back: Vec<Vec<u8>> = list.iter().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(&back, &events);
            prop_assert_eq!(list.get(events.len()), None);
        }
    }
}
