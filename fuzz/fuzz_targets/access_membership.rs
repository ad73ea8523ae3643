//! The membership state machine fed arbitrary events: the input is split into
//! `(hlc u64, author byte, seq u8, length u16, payload)` records. Never panics, and the
//! state does not depend on delivery order (the records are applied forwards and
//! backwards and the roots compared).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_access::{Membership, Stamp};
use xaeroflux_core::GroupId;
use xaeroid::IdHash;

fuzz_target!(|data: &[u8]| {
    let mut recs = Vec::new();
    let mut d = data;
    while d.len() >= 12 && recs.len() < 32 {
        let hlc = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
        let author = IdHash([d[8]; 32]);
        let seq = d[9] as u64;
        let len = (u16::from_le_bytes([d[10], d[11]]) as usize).min(d.len() - 12);
        recs.push((Stamp { hlc, author, seq }, &d[12..12 + len]));
        d = &d[12 + len..];
    }
    let owner = IdHash([0; 32]);
    let mut a = Membership::new(GroupId([1; 32]), owner);
    let mut b = Membership::new(GroupId([1; 32]), owner);
    for (s, p) in &recs {
        let _ = a.insert(*s, p);
    }
    for (s, p) in recs.iter().rev() {
        let _ = b.insert(*s, p);
    }
    // Duplicate stamps keep the first arrival, so compare only when stamps are unique.
    let mut stamps: Vec<_> = recs.iter().map(|(s, _)| *s).collect();
    stamps.sort();
    stamps.dedup();
    if stamps.len() == recs.len() {
        assert_eq!(a.root(), b.root());
    }
});
