//! Group access control between real nodes on loopback (iroh QUIC, relays off): an
//! owner invites a writer and a reader; the reader's writes are refused by every peer;
//! the writer is removed during sync, its later writes are refused by every peer, its
//! sessions close, and it cannot decrypt what is written after its removal even when
//! handed the events.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use xaeroflux::access_control::Role;
use xaeroflux::{
    AccessError, AuthorId, Event, GroupId, IdHash, NetConfig, NetworkOptions, XaeroFlux,
    XaeroKeypair,
};

const TYPE: u32 = 1000;
/// Generous: states are polled, never timed.
const DEADLINE: Duration = Duration::from_secs(90);

fn open(dir: &Path, seed: u8) -> XaeroFlux {
    let mut net = NetworkOptions::for_data_dir(dir);
    net.config.bind_addr = NetConfig::loopback().bind_addr;
    net.threads = 1;
    XaeroFlux::builder(dir)
        .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
        .network(net)
        .open()
        .unwrap()
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn id(n: &XaeroFlux) -> IdHash {
    n.identity().id()
}

fn log_len(n: &XaeroFlux, g: &GroupId, who: &XaeroFlux) -> u64 {
    let a = AuthorId(id(who).0);
    n.read()
        .unwrap()
        .logs_of(g)
        .unwrap()
        .into_iter()
        .find(|(x, _)| *x == a)
        .map_or(0, |(_, l)| l)
}

/// Events of `author` of type TYPE in `g` held by `n`.
fn data_of(n: &XaeroFlux, g: &GroupId, author: &XaeroFlux) -> Vec<Event> {
    let a = AuthorId(id(author).0);
    let mut sub = n.subscribe(
        xaeroflux::Filter::all()
            .group(*g)
            .event_type(TYPE)
            .start(xaeroflux::Start::Beginning),
    );
    let mut out = Vec::new();
    while let Some(e) = sub.try_next().unwrap() {
        if e.event.header.author == a {
            out.push(e.event);
        }
    }
    out
}

fn role(n: &XaeroFlux, g: &GroupId, who: &XaeroFlux) -> Option<Role> {
    n.access_members(g)
        .unwrap()
        .into_iter()
        .find(|(m, _)| *m == id(who))
        .map(|(_, r)| r)
}

fn far_future() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000
}

#[test]
fn invite_write_remove_and_encrypt_between_real_nodes() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let owner = open(dirs[0].path(), 1);
    let writer = open(dirs[1].path(), 2);
    let reader = open(dirs[2].path(), 3);
    let g = owner.default_group();
    owner.access_create(&g).unwrap();
    assert_eq!(role(&owner, &g, &owner), Some(Role::Owner));

    // Invites (single use, one hour); the ticket still carries the group secret for the
    // handshake MAC, but admission is by membership.
    let inv_w = owner
        .access_invite(&g, Role::Writer, far_future(), true)
        .unwrap();
    let inv_r = owner
        .access_invite(&g, Role::Reader, far_future(), true)
        .unwrap();
    let ticket = owner.ticket(&g, true).unwrap();
    for (node, inv) in [(&writer, &inv_w), (&reader, &inv_r)] {
        node.join(&ticket).unwrap();
        node.access_join(inv, id(&owner)).unwrap();
    }
    wait("the owner admits both joiners", || {
        role(&owner, &g, &writer) == Some(Role::Writer)
            && role(&owner, &g, &reader) == Some(Role::Reader)
            && owner
                .access_control()
                .with(&g, |m| {
                    m.kem_key(&id(&writer)).is_some() && m.kem_key(&id(&reader)).is_some()
                })
                .unwrap()
    });
    // A new epoch sealed to all three.
    owner.access_rotate(&g).unwrap();
    wait("everyone holds the epoch key", || {
        [&writer, &reader].iter().all(|n| {
            n.access_control()
                .with(&g, |m| {
                    m.current_epoch()
                        .is_some_and(|e| e.epoch == 2 && e.sealed.len() == 3)
                })
                .unwrap_or(false)
        })
    });

    // The writer writes (sealed by `write_event_to` itself: the group is encrypted);
    // the reader tries to write.
    for i in 0..5u8 {
        writer.write_event_to(g, &[b'w', i], TYPE).unwrap();
    }
    reader.write_event_to(g, b"reader was here", TYPE).unwrap();
    writer.flush().unwrap();
    reader.flush().unwrap();
    wait("the writer's events reach the owner and the reader", || {
        data_of(&owner, &g, &writer).len() == 5 && data_of(&reader, &g, &writer).len() == 5
    });
    // Stored encrypted, decrypted by members.
    let ev = &data_of(&reader, &g, &writer)[0];
    assert_ne!(&ev.payload[..], &[b'w', 0]);
    assert_eq!(
        ev.payload.len(),
        2 + xaeroflux::access_control::ENVELOPE_OVERHEAD
    );
    assert_eq!(&reader.plaintext(ev).unwrap()[..], &[b'w', 0]);
    assert_eq!(owner.open_sealed(ev).unwrap(), vec![b'w', 0]);
    let by_id = reader.get_plain(&ev.id()).unwrap().unwrap();
    assert_eq!(&by_id.payload[..], &[b'w', 0]);
    // Nobody stored the reader's event (the membership has settled: a full
    // anti-entropy round is not needed for a refusal).
    assert!(data_of(&owner, &g, &reader).is_empty());
    assert!(data_of(&writer, &g, &reader).is_empty());
    assert_eq!(data_of(&reader, &g, &reader).len(), 1);

    // Remove the writer while its sessions are up; then it keeps writing.
    let cut = log_len(&owner, &g, &writer);
    owner.access_remove(&g, &id(&writer)).unwrap();
    assert_eq!(role(&owner, &g, &writer), None);
    for i in 0..5u8 {
        // Sealed with the old epoch key if its node has not learnt of the removal yet,
        // else refused locally (no key of the new epoch); raw engine writes (what a
        // modified node could send) always go in locally.
        let r = writer.write_sealed(&g, &[b'x', i], TYPE);
        assert!(
            r.is_ok() || matches!(r, Err(AccessError::Store(_))),
            "{r:?}"
        );
        writer.engine().write_event_to(g, &[b'y', i], TYPE).unwrap();
    }
    writer.flush().unwrap();
    owner.write_event_to(g, b"after removal", TYPE).unwrap();
    owner.flush().unwrap();
    wait(
        "the reader sees the removal and the owner's new event",
        || role(&reader, &g, &writer).is_none() && data_of(&reader, &g, &owner).len() == 1,
    );
    let secret = data_of(&reader, &g, &owner).remove(0);
    assert_eq!(
        reader.open_sealed(&secret).unwrap(),
        b"after removal".to_vec()
    );
    // The removed writer cannot decrypt it even when handed the event: it holds no key
    // of the new epoch.
    assert!(matches!(
        writer.plaintext(&secret),
        Err(AccessError::Open(
            xaeroflux::access_control::OpenError::NoKey { .. }
        ))
    ));
    // Its sessions with the owner close, and no peer stores its events past the cut-off.
    wait("the owner drops the removed writer", || {
        owner
            .peers()
            .unwrap()
            .iter()
            .all(|p| p.identity != Some(id(&writer)) || !p.connected || !p.groups.contains(&g))
    });
    assert!(log_len(&writer, &g, &writer) > cut);
    assert_eq!(log_len(&owner, &g, &writer), cut);
    assert_eq!(log_len(&reader, &g, &writer), cut);
    assert_eq!(data_of(&owner, &g, &writer).len(), 5);

    for n in [owner, writer, reader] {
        n.close().unwrap();
    }
}
