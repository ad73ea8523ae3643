//! `PostingRun::decode` on arbitrary bytes: never panics, and a decoded run has
//! increasing local sequences and survives a re-encode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::posting::{MAX_RUN, PostingRun};

fuzz_target!(|data: &[u8]| {
    let Some(run) = PostingRun::decode(data) else {
        return;
    };
    assert!(!run.locals.is_empty() && run.locals.len() <= MAX_RUN);
    assert!(run.locals.windows(2).all(|w| w[0] < w[1]));
    let mut again = Vec::new();
    run.encode(&mut again);
    assert_eq!(PostingRun::decode(&again), Some(run));
});
