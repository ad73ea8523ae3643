//! Crash test: a child process rotates the epoch key of a 20-member group (two
//! EpochKeys ops per rotation) and writes sealed events in a loop until it is killed
//! with SIGKILL at a random moment. On reopen the node must hold a consistent epoch:
//! every current member with a KEM key holds the current epoch's key (a rotation cut
//! short is completed when the store opens), the epoch never goes back behind one the
//! child acknowledged, and every stored sealed event opens (nothing was written under a
//! key nobody holds).
//!
//! Environment: `XAERO_ACCESS_CRASH_CYCLES` (default 10), `XAERO_CRASH_SEED`.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xaeroflux::access_control::{KemKeypair, MEMBERSHIP_OP_TYPE, MemberOp, OpBody, OpId, Role};
use xaeroflux::{AuthorId, Event, Filter, GroupId, Hlc, Start, XaeroFlux, XaeroKeypair};
use xaeroflux_core::{Checkpoint, EventHeader};
use xaeroflux_sync::{MemLogs, SyncHost, VerifiedBatch};

const CHILD_ENV: &str = "XAERO_ACCESS_CRASH_CHILD";
const SEED_ENV: &str = "XAERO_CRASH_SEED";
const TYPE: u32 = 1000;
const MEMBERS: u8 = 19;

fn open(dir: &Path) -> XaeroFlux {
    XaeroFlux::builder(dir)
        .identity(XaeroKeypair::generate_from_seed(&[1; 32]))
        .offline()
        .open()
        .unwrap()
}

/// Stores, as if synced from it, a member's one-event log: its KemKey op.
fn deliver_kem_key(store: &XaeroFlux, g: GroupId, member: &XaeroKeypair, heads: &[OpId]) {
    let kem = KemKeypair::generate(&mut xaeroflux::access_control::OsEntropy).unwrap();
    let op = MemberOp::sign(
        member,
        g,
        heads,
        OpBody::KemKey {
            key: kem.public().clone(),
        },
    )
    .unwrap();
    let author = AuthorId(*member.id().as_bytes());
    // After the Add it names (its prev): a second ahead of the owner's clock.
    let hlc = Hlc::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 1_000,
        0,
    );
    let ev = Event {
        header: EventHeader {
            event_type: MEMBERSHIP_OP_TYPE,
            group: g,
            author,
            seq: 0,
            hlc,
        },
        payload: op.as_bytes().to_vec(),
    };
    let mut mem = MemLogs::new();
    let root = mem.append_local(&ev);
    let cp = Checkpoint {
        group: g,
        author,
        length: 1,
        root,
        hlc,
    }
    .sign(member);
    let bytes = ev.encode();
    let batch = VerifiedBatch {
        group: g,
        author,
        author_key: member.public().clone(),
        first_seq: 0,
        ids: vec![ev.id()],
        events: [bytes].iter().collect(),
        checkpoint: Box::new(cp),
        prefix_root: None,
    };
    store.sync_host().store_verified(batch).unwrap();
}

/// A fresh store: the owner, 19 writers with KEM keys, one epoch sealed to all 20.
fn setup(dir: &Path) {
    let store = open(dir);
    let g = store.default_group();
    store.access_create(&g).unwrap();
    for i in 0..MEMBERS {
        let kp = XaeroKeypair::generate_from_seed(&[100 + i; 32]);
        store.access_add(&g, kp.public(), Role::Writer).unwrap();
        let heads = store.access_control().with(&g, |m| m.heads()).unwrap();
        deliver_kem_key(&store, g, &kp, &heads);
    }
    store.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .access_control()
        .with(&g, |m| m.missing_keys().len())
        .unwrap()
        < usize::from(MEMBERS)
    {
        assert!(Instant::now() < deadline, "the KEM keys never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    store.access_rotate(&g).unwrap();
    assert!(
        store
            .access_control()
            .with(&g, |m| m.missing_keys().is_empty())
            .unwrap()
    );
    store.close().unwrap();
}

/// Child mode: rotate, write a sealed event, report; forever.
fn child(dir: &Path) -> ! {
    let store = open(dir);
    let g = store.default_group();
    let stdout = std::io::stdout();
    let mut i = 0u64;
    loop {
        store.access_rotate(&g).unwrap();
        let epoch = store
            .access_control()
            .with(&g, |m| m.current_epoch().unwrap().epoch)
            .unwrap();
        store
            .write_event(format!("event {i} of epoch {epoch}").as_bytes(), TYPE)
            .unwrap();
        store.flush().unwrap();
        let mut lock = stdout.lock();
        lock.write_all(format!("@epoch {epoch}\n").as_bytes())
            .unwrap();
        lock.flush().unwrap();
        i += 1;
    }
}

#[test]
fn kill_during_rotation_leaves_a_consistent_epoch() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let cycles: u64 = std::env::var("XAERO_ACCESS_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xACCE55);
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let exe = std::env::current_exe().unwrap();
    let mut acked = 0u32;
    let (mut completed, mut rotations) = (0u64, 0u64);
    for cycle in 0..cycles {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill_during_rotation_leaves_a_consistent_epoch",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut so = child.stdout.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let mut se = child.stderr.take().unwrap();
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        std::thread::sleep(Duration::from_millis(200 + seed % 1500));
        let early = child.try_wait().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let out = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
        let err = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
        assert!(early.is_none(), "cycle {cycle}: child ended early:\n{err}");
        for line in out.lines() {
            if let Some(e) = line.find("@epoch ").map(|i| &line[i + 7..])
                && let Ok(e) = e.trim().parse::<u32>()
            {
                acked = acked.max(e);
                rotations += 1;
            }
        }

        // Reopen: the store completes a rotation that was cut short.
        let store = open(dir.path());
        let g = store.default_group();
        let (epoch, sealed, missing, members) = store
            .access_control()
            .with(&g, |m| {
                let e = m.current_epoch().unwrap();
                (e.epoch, e.sealed.len(), m.missing_keys(), m.members().len())
            })
            .unwrap();
        assert_eq!(members, usize::from(MEMBERS) + 1);
        assert!(
            missing.is_empty(),
            "cycle {cycle}: {missing:?} miss epoch {epoch}"
        );
        assert_eq!(sealed, members, "cycle {cycle}");
        assert!(
            epoch >= acked,
            "cycle {cycle}: epoch {epoch} < acknowledged {acked}"
        );
        // Ops of the current epoch: two per rotation, three when it was completed here.
        let ops = count_epoch_ops(&store, &g, epoch);
        if ops > 2 {
            completed += 1;
        }
        // Every sealed event opens with the keys this node holds.
        let mut sub = store.subscribe(
            Filter::all()
                .group(g)
                .event_type(TYPE)
                .start(Start::Beginning),
        );
        while let Some(e) = sub.try_next().unwrap() {
            let plain = store.plaintext(&e.event).unwrap_or_else(|err| {
                panic!("cycle {cycle}: event {} does not open: {err}", e.local_seq)
            });
            assert!(plain.starts_with(b"event "));
        }
        store.close().unwrap();
    }
    println!(
        "{cycles} kills, {rotations} acknowledged rotations, last epoch {acked}, \
         {completed} reopen(s) found the current epoch completed after a cut"
    );
}

/// EpochKeys ops in the store for `epoch`.
fn count_epoch_ops(store: &XaeroFlux, g: &GroupId, epoch: u32) -> usize {
    let mut sub = store.subscribe(
        Filter::all()
            .group(*g)
            .event_type(MEMBERSHIP_OP_TYPE)
            .start(Start::Beginning),
    );
    let mut n = 0;
    while let Some(e) = sub.try_next().unwrap() {
        if let Ok(op) = MemberOp::decode(&e.event.payload)
            && matches!(op.body(), OpBody::EpochKeys { epoch: x, .. } if *x == epoch)
        {
            n += 1;
        }
    }
    n
}

/// The cut itself, made deterministic: only the first EpochKeys op of a rotation is
/// stored (as if the process died between two commits). The node opens the new key
/// from it (the rotator's own copy is in the first op) and completes the epoch on
/// reopen, with one more op of the same epoch.
#[test]
fn a_rotation_cut_after_its_first_op_is_completed_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let owner = XaeroKeypair::generate_from_seed(&[1; 32]);
    let store = open(dir.path());
    let g = store.default_group();
    let before = store
        .access_control()
        .with(&g, |m| m.current_epoch().unwrap().epoch)
        .unwrap();
    let (_, ops) = store
        .access_control()
        .with(&g, |m| {
            m.rotate(&owner, &mut xaeroflux::access_control::OsEntropy)
        })
        .unwrap()
        .unwrap();
    assert_eq!(ops.len(), 2);
    store
        .engine()
        .write_reserved_to(&g, ops[0].as_bytes(), MEMBERSHIP_OP_TYPE)
        .unwrap();
    store.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store
        .access_control()
        .with(&g, |m| m.current_epoch().unwrap().epoch)
        .unwrap()
        == before
    {
        assert!(Instant::now() < deadline, "the cut op was never applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Cut: 13 of 20 hold the new key; a write now seals under it (this node holds it).
    let missing = store
        .access_control()
        .with(&g, |m| m.missing_keys().len())
        .unwrap();
    assert_eq!(missing, 20 - 13);
    store.write_event(b"event during the cut", TYPE).unwrap();
    store.engine().flush().unwrap();
    // Simulated crash: the process ends without completing the rotation.
    drop(store);

    let store = open(dir.path());
    let (epoch, missing, sealed) = store
        .access_control()
        .with(&g, |m| {
            let e = m.current_epoch().unwrap();
            (e.epoch, m.missing_keys(), e.sealed.len())
        })
        .unwrap();
    assert_eq!(epoch, before + 1);
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(sealed, 20);
    assert_eq!(count_epoch_ops(&store, &g, epoch), 2);
    let mut sub = store.subscribe(
        Filter::all()
            .group(g)
            .event_type(TYPE)
            .start(Start::Beginning),
    );
    let e = sub.try_next().unwrap().unwrap();
    assert_eq!(
        &store.plaintext(&e.event).unwrap()[..],
        b"event during the cut"
    );
    store.close().unwrap();
}
