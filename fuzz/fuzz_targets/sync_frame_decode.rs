//! Frame decoder of the sync protocol: arbitrary bytes in arbitrary chunks never panic,
//! and whatever decodes re-encodes to a frame that decodes to the same message. The
//! first byte's low bit picks the pre-handshake decoder, which must only ever yield
//! Hello and Error messages until it is opened (after the first message) and never
//! buffer a frame over `MAX_HANDSHAKE_FRAME` before that.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_sync::frame::{self, FrameDecoder, MAX_HANDSHAKE_FRAME, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let handshake = chunk & 1 == 1;
    let chunk = usize::from(chunk >> 1).max(1);
    let mut d = if handshake {
        FrameDecoder::handshake()
    } else {
        FrameDecoder::new()
    };
    let mut opened = !handshake;
    for part in bytes.chunks(chunk) {
        d.push(part);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    if !opened {
                        assert!(matches!(m, Message::Hello(_) | Message::Error { .. }));
                        d.open();
                        opened = true;
                    }
                    let again = frame::decode(&frame::encode(&m)).expect("re-encoding decodes");
                    assert_eq!(again, m);
                }
                Ok(None) => {
                    if !opened {
                        // Only what one push added beyond a whole handshake frame.
                        assert!(d.buffered() <= 4 + MAX_HANDSHAKE_FRAME + part.len());
                    }
                    break;
                }
                Err(_) => return,
            }
        }
    }
});
