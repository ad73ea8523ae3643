//! Session message handling: after a (skipped) handshake, feed frames built from the
//! input (well-framed bodies of every type, raw chunks, ticks) into a session holding a
//! small log. It must never panic and never output a batch it did not verify.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::{AuthorId, Checkpoint, Event, EventHeader, Group, GroupSecret, Hlc};
use xaeroflux_sync::frame::FRAME_VERSION;
use xaeroflux_sync::{Input, MemLogs, Output, Role, Session, SessionConfig, TransportParams};
use xaeroid::XaeroKeypair;

struct Fixture {
    group: Group,
    kp: Arc<XaeroKeypair>,
    logs: MemLogs,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let group = Group::from_secret(GroupSecret::from_bytes([42; 32]));
        let kp = Arc::new(XaeroKeypair::generate_from_seed(&[1; 32]));
        let author = AuthorId(*kp.id().as_bytes());
        let mut logs = MemLogs::new();
        logs.add_key(kp.public().clone());
        let mut root = [0; 32];
        for seq in 0..5u64 {
            let ev = Event {
                header: EventHeader {
                    event_type: 1000,
                    group: group.id(),
                    author,
                    seq,
                    hlc: Hlc::new(1, 0),
                },
                payload: vec![seq as u8; 8],
            };
            root = logs.append_local(&ev);
        }
        let cp = Checkpoint {
            group: group.id(),
            author,
            length: 5,
            root,
            hlc: Hlc::new(1, 0),
        }
        .sign(&kp);
        logs.add_checkpoint(cp);
        Fixture { group, kp, logs }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut s = Session::new(SessionConfig::new(f.group.clone(), f.kp.clone()));
    let params = TransportParams {
        local_endpoint: [1; 32],
        remote_endpoint: [2; 32],
        keying_material: [3; 32],
    };
    s.assume_established(Role::Acceptor, params, f.kp.public().clone());
    let mut now = 0u64;
    let mut rest = data;
    while let [op, ty, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let input = match op % 5 {
            // A well-framed message of any type byte.
            0 | 1 => {
                let mut frame = ((len + 2) as u32).to_le_bytes().to_vec();
                frame.push(FRAME_VERSION);
                frame.push(*ty);
                frame.extend_from_slice(body);
                Input::Frame(frame)
            }
            2 => Input::Frame(body.to_vec()),
            // The transport wrote some of the output.
            4 => Input::Drained {
                bytes: u64::from(*ty) * 4096,
            },
            _ => {
                now += u64::from(*ty) * 100;
                Input::Tick
            }
        };
        for o in s.handle(input, now, &f.logs) {
            // Only this author exists and its log is already complete: nothing the
            // fuzzer can forge verifies without the secret key.
            if let Output::StoreVerified(b) = &o {
                assert!(b.first_seq + b.events.len() as u64 <= 5);
            }
        }
        // The session's buffers stay within its configured bounds.
        let m = s.memory();
        let c = SessionConfig::new(f.group.clone(), f.kp.clone());
        assert!(m.queued_requests <= c.max_queued_requests);
        assert!(m.keys <= c.max_session_keys + 1);
        assert!(m.decoder <= 4 * xaeroflux_sync::MAX_FRAME);
        if s.is_closed() {
            return;
        }
    }
});
