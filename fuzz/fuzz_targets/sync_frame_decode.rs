//! Frame decoder of the sync protocol: arbitrary bytes in arbitrary chunks never panic,
//! and whatever decodes re-encodes to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_sync::frame::{self, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut d = FrameDecoder::new();
    for part in bytes.chunks(chunk) {
        d.push(part);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    let again = frame::decode(&frame::encode(&m)).expect("re-encoding decodes");
                    assert_eq!(again, m);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
