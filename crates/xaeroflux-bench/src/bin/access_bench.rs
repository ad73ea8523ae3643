//! Cost of group access control, in one run:
//! 1. ML-KEM-768 encapsulate / decapsulate per second: the `ml-kem` 0.3.4 crate's own
//!    calls (the anchor: `encapsulate_deterministic`, `decapsulate`, as its criterion
//!    bench does) against our sealed keys (the same call plus the KEK derivation and
//!    the 32-byte AEAD wrap);
//! 2. epoch rotation for 10, 100 and 1,000 members: time to seal the new key to every
//!    member and sign the EpochKeys ops, and the bytes of those ops;
//! 3. ingest of 1 KiB events into a store with payload encryption on (a group under
//!    access control: `write_event` seals by itself, envelope v2, AES-256-GCM) against
//!    off (plain `write_event`, the anchor), interleaved, with the ratio (goal >=
//!    0.8x); plus the previous scheme ("before": envelope v1, XChaCha20-Poly1305 with an
//!    OS-random nonce per event, a new cipher and three allocations per event, as the
//!    crate sealed until this change), plain events of the envelope's size (1077 B) and
//!    sealing alone (both schemes), to tell the crypto's share from the size class's.
//!
//! 4. sync over loopback (two nodes in one process, relays off): A writes 1 KiB events
//!    into a group B already syncs, encryption on (B a reader member) against off.
//!
//! Usage: `access_bench [--events N] [--repeat R] [--kem N] [--sync N] [--dir PATH]`
//! (defaults 100,000 events, 5 rounds, 2,000 KEM operations, 20,000 synced events; sync
//! rounds are at most 3). The tables show median and worst.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use xaeroflux::{XaeroFlux, XaeroKeypair};
use xaeroflux_access::{
    ENVELOPE_OVERHEAD, EpochKey, KemKeypair, MemberOp, Membership, OpBody, PayloadSealer, Role,
    SealedKey, SeededEntropy, Stamp,
};
use xaeroflux_core::GroupId;

struct Args {
    events: u64,
    sync: u64,
    repeat: usize,
    kem: usize,
    dir: Option<String>,
}

const USAGE: &str =
    "usage: access_bench [--events N] [--repeat R] [--kem N] [--sync N (0: skip)] [--dir PATH]";

fn args() -> Args {
    let mut a = Args {
        events: 100_000,
        sync: 20_000,
        repeat: 5,
        kem: 2_000,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage_exit());
        match flag.as_str() {
            "--events" => a.events = val().parse().unwrap_or_else(|_| usage_exit()),
            "--sync" => a.sync = val().parse().unwrap_or_else(|_| usage_exit()),
            "--repeat" => {
                a.repeat = val()
                    .parse::<usize>()
                    .unwrap_or_else(|_| usage_exit())
                    .max(1)
            }
            "--kem" => {
                a.kem = val()
                    .parse::<usize>()
                    .unwrap_or_else(|_| usage_exit())
                    .max(1)
            }
            "--dir" => a.dir = Some(val()),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => usage_exit(),
        }
    }
    a
}

fn usage_exit() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn worst(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

const G: GroupId = GroupId([0xA5; 32]);

/// The `ml-kem` crate's own encapsulate / decapsulate, ops/s.
fn kem_raw(a: &Args) -> (Vec<f64>, Vec<f64>) {
    use ml_kem::array::Array;
    use ml_kem::ml_kem_768::DecapsulationKey;
    use ml_kem::{Decapsulate, KeyExport};
    let dk = DecapsulationKey::from_seed(Array::from([3u8; 64]));
    let ek = dk.encapsulation_key().clone();
    let _ = ek.to_bytes();
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..a.repeat {
        let t = Instant::now();
        let mut cts = Vec::with_capacity(a.kem);
        for i in 0..a.kem {
            let mut m = [0u8; 32];
            m[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cts.push(std::hint::black_box(ek.encapsulate_deterministic(&Array::from(m))).0);
        }
        enc.push(a.kem as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for ct in &cts {
            std::hint::black_box(dk.decapsulate(ct));
        }
        dec.push(a.kem as f64 / t.elapsed().as_secs_f64());
    }
    (enc, dec)
}

fn kem_rates(a: &Args) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SeededEntropy::new(1);
    let kp = KemKeypair::generate(&mut rng).unwrap();
    let key = EpochKey::generate(1, &mut rng).unwrap();
    let member = xaeroid::IdHash([1; 32]);
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..a.repeat {
        // Sealing = one encapsulation + one AEAD wrap of 32 bytes.
        let t = Instant::now();
        let mut sealed = Vec::with_capacity(a.kem);
        for _ in 0..a.kem {
            sealed.push(SealedKey::seal(&G, &key, member, kp.public(), &mut rng).unwrap());
        }
        enc.push(a.kem as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for s in &sealed {
            let k = s.open(&G, 1, &key.key_id(), &kp).unwrap();
            assert_eq!(k.epoch(), 1);
        }
        dec.push(a.kem as f64 / t.elapsed().as_secs_f64());
    }
    (enc, dec)
}

/// A membership with `n` members (the owner and `n - 1` writers), all with KEM keys.
fn membership(n: usize, owner: &XaeroKeypair) -> Membership {
    let mut rng = SeededEntropy::new(n as u64);
    let mut m = Membership::new(G, owner.id());
    let at = |hlc: u64, seq: u64| Stamp {
        hlc,
        author: owner.id(),
        seq,
    };
    let op = m
        .make_op(
            owner,
            OpBody::Genesis {
                owner: owner.public().clone(),
            },
        )
        .unwrap();
    m.insert_op(at(1, 0), op);
    let kem = KemKeypair::generate(&mut rng).unwrap();
    let op = m
        .make_op(
            owner,
            OpBody::KemKey {
                key: kem.public().clone(),
            },
        )
        .unwrap();
    m.insert_op(at(2, 1), op);
    let mut seq = 2;
    let mut ops: Vec<(Stamp, MemberOp)> = Vec::new();
    for i in 0..n.saturating_sub(1) {
        let kp =
            XaeroKeypair::generate_from_seed(blake3::hash(&(i as u64).to_le_bytes()).as_bytes());
        let op = MemberOp::sign(
            owner,
            G,
            &[],
            OpBody::Add {
                member: kp.public().clone(),
                role: Role::Writer,
                at_seq: 0,
            },
        )
        .unwrap();
        ops.push((at(10 + seq, seq), op));
        seq += 1;
        let kem = KemKeypair::generate(&mut rng).unwrap();
        let op = MemberOp::sign(
            &kp,
            G,
            &[],
            OpBody::KemKey {
                key: kem.public().clone(),
            },
        )
        .unwrap();
        ops.push((
            Stamp {
                hlc: 10 + seq,
                author: kp.id(),
                seq: 0,
            },
            op,
        ));
        seq += 1;
    }
    m.insert_all(ops.iter().map(|(s, op)| (*s, op.as_bytes())));
    m
}

fn open_store(dir: &Path) -> XaeroFlux {
    XaeroFlux::builder(dir)
        .identity(XaeroKeypair::generate_from_seed(&[7; 32]))
        .offline()
        .open()
        .unwrap()
}

/// The previous sealing (envelope v1): a new XChaCha20-Poly1305 per event, a nonce
/// from the OS per event, the AAD, ciphertext and envelope each in a new `Vec`.
fn seal_v1(group: &GroupId, event_type: u32, key: &EpochKey, plain: &[u8]) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut nonce).unwrap();
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plain.len());
    out.push(1);
    out.extend_from_slice(&key.epoch().to_le_bytes());
    out.extend_from_slice(&key.key_id());
    out.extend_from_slice(&nonce);
    let mut aad = Vec::with_capacity(27 + 36 + out.len());
    aad.extend_from_slice(b"xaeroflux/access/payload/v1");
    aad.extend_from_slice(&group.0);
    aad.extend_from_slice(&event_type.to_le_bytes());
    aad.extend_from_slice(&out);
    let ct = XChaCha20Poly1305::new(key.secret().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .unwrap();
    out.extend_from_slice(&ct);
    out
}

/// Seals `n` 1 KiB payloads without a store (the crypto alone); events/s.
fn seal_only(n: u64, key: &EpochKey, v1: bool) -> f64 {
    let group = GroupId([1; 32]);
    let sealer = PayloadSealer::new(group, key, &mut SeededEntropy::new(9)).unwrap();
    let payload = vec![0x5Au8; 1024];
    let mut buf = Vec::new();
    let t = Instant::now();
    let mut total = 0usize;
    for _ in 0..n {
        if v1 {
            total += seal_v1(&group, 1000, key, &payload).len();
        } else {
            sealer.seal_into(1000, &payload, &mut buf).unwrap();
            total += buf.len();
        }
    }
    assert_eq!(total, n as usize * (1024 + ENVELOPE_OVERHEAD));
    n as f64 / t.elapsed().as_secs_f64()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Plain `write_event`.
    Off,
    /// The group under access control: `write_event` seals (envelope v2).
    Auto,
    /// The previous scheme, sealed by the caller, then `write_event`.
    V1,
}

/// Writes `n` events of `size` plaintext bytes; events/s.
fn ingest(dir: &Path, n: u64, size: usize, mode: Mode) -> f64 {
    let store = open_store(dir);
    let group = store.default_group();
    let key = EpochKey::generate(1, &mut SeededEntropy::new(4)).unwrap();
    if mode == Mode::Auto {
        store.access_create(&group).unwrap();
    }
    let payload = vec![0x5Au8; size];
    let mut p = payload.clone();
    let mut last = None;
    let t = Instant::now();
    for i in 0..n {
        p[..8].copy_from_slice(&i.to_le_bytes());
        last = Some(match mode {
            Mode::V1 => {
                let sealed = seal_v1(&group, 1000, &key, &p);
                store.write_event(&sealed, 1000).unwrap()
            }
            Mode::Off | Mode::Auto => store.write_event(&p, 1000).unwrap(),
        });
    }
    store.flush().unwrap();
    let s = t.elapsed().as_secs_f64();
    if mode == Mode::Auto {
        // It was sealed: the stored payload is an envelope that opens to the plaintext.
        let id = last.unwrap();
        let stored = store.engine().get(&id).unwrap().unwrap();
        assert_eq!(stored.payload.len(), size + ENVELOPE_OVERHEAD);
        let plain = store.get_plain(&id).unwrap().unwrap();
        assert_eq!(plain.payload[8..], payload[8..]);
    }
    store.close().unwrap();
    n as f64 / s
}

/// Loopback sync, encryption on or off: B joins A's group (and, encrypted, redeems a
/// reader invite) and holds A's log so far; then A writes `n` events of 1 KiB and the
/// time runs until B holds them all. Events/s.
fn sync_rate(dir: &Path, n: u64, encrypted: bool) -> f64 {
    use xaeroflux::{NetConfig, NetworkOptions};
    let open_net = |d: &Path, seed: u8| {
        let mut net = NetworkOptions::for_data_dir(d);
        net.config.bind_addr = NetConfig::loopback().bind_addr;
        XaeroFlux::builder(d)
            .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
            .network(net)
            .open()
            .unwrap()
    };
    let a = open_net(&dir.join("a"), 1);
    let g = a.default_group();
    if encrypted {
        a.access_create(&g).unwrap();
    }
    // The invite exists before B dials, so A admits B's first session.
    let inv = encrypted.then(|| {
        a.access_invite(&g, Role::Reader, u64::MAX / 2, true)
            .unwrap()
    });
    let b = open_net(&dir.join("b"), 2);
    let ticket = a.ticket(&g, true).unwrap();
    b.join(&ticket).unwrap();
    if let Some(inv) = &inv {
        b.access_join(inv, a.identity().id()).unwrap();
    }
    let a_log = |s: &XaeroFlux| {
        s.read()
            .unwrap()
            .logs_of(&g)
            .unwrap()
            .into_iter()
            .find(|(au, _)| *au == a.author())
            .map_or(0, |(_, len)| len)
    };
    let wait = |len: u64| {
        let deadline = Instant::now() + std::time::Duration::from_secs(300);
        while a_log(&b) < len {
            assert!(
                Instant::now() < deadline,
                "no convergence: {} < {len}",
                a_log(&b)
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    if encrypted {
        // A hands B the epoch key once B's KEM key arrived.
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        while a
            .access_control()
            .with(&g, |m| m.kem_key(&b.identity().id()).is_none())
            .unwrap()
        {
            assert!(Instant::now() < deadline, "B's KEM key never arrived");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        a.access_share_keys(&g).unwrap();
    }
    wait(a_log(&a));
    let start_len = a_log(&a);
    let mut p = vec![0x5Au8; 1024];
    let t = Instant::now();
    let mut last = None;
    for i in 0..n {
        p[..8].copy_from_slice(&i.to_le_bytes());
        last = Some(a.write_event(&p, 1000).unwrap());
    }
    a.flush().unwrap();
    wait(start_len + n);
    let s = t.elapsed().as_secs_f64();
    // B reads the last one as plaintext.
    let e = b.get_plain(&last.unwrap()).unwrap().unwrap();
    assert_eq!(e.payload[8..], p[8..]);
    a.close().unwrap();
    b.close().unwrap();
    n as f64 / s
}

fn main() {
    let a = args();
    println!(
        "access_bench: {} events of 1 KiB, {} rounds, {} KEM ops per round (median / worst)",
        a.events, a.repeat, a.kem
    );

    let (raw_enc, raw_dec) = kem_raw(&a);
    let (enc, dec) = kem_rates(&a);
    let low = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    println!();
    println!("| ML-KEM-768 | ops/s median | ops/s worst | vs crate |");
    println!("| --- | ---: | ---: | ---: |");
    let (re, rd) = (median(raw_enc.clone()), median(raw_dec.clone()));
    for (name, v, anchor) in [
        ("ml-kem crate: encapsulate (anchor)", &raw_enc, re),
        ("ml-kem crate: decapsulate (anchor)", &raw_dec, rd),
        ("seal an epoch key (encapsulate + KEK + wrap)", &enc, re),
        ("open an epoch key (decapsulate + KEK + unwrap)", &dec, rd),
    ] {
        let m = median(v.clone());
        println!("| {name} | {m:.0} | {:.0} | {:.2}x |", low(v), m / anchor);
    }

    println!();
    println!(
        "| rotation | members | time median (ms) | time worst (ms) | EpochKeys ops | bytes | bytes/member |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let owner = XaeroKeypair::generate_from_seed(&[1; 32]);
    for n in [10usize, 100, 1000] {
        let m = membership(n, &owner);
        assert_eq!(m.members().len(), n);
        let mut times = Vec::new();
        let mut bytes = 0usize;
        let mut count = 0usize;
        let rounds = if n >= 1000 { a.repeat.min(3) } else { a.repeat };
        for r in 0..rounds {
            let mut rng = SeededEntropy::new(100 + r as u64);
            let t = Instant::now();
            let (_, ops) = m.rotate(&owner, &mut rng).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            bytes = ops.iter().map(|o| o.as_bytes().len()).sum();
            count = ops.len();
        }
        println!(
            "| new epoch | {n} | {:.1} | {:.1} | {count} | {bytes} | {:.0} |",
            median(times.clone()),
            worst(&times),
            bytes as f64 / n as f64
        );
    }

    let base = a.dir.as_ref().map_or_else(std::env::temp_dir, Into::into);
    let mut rng = SeededEntropy::new(3);
    let key = EpochKey::generate(1, &mut rng).unwrap();
    let (mut off, mut on, mut before) = (Vec::new(), Vec::new(), Vec::new());
    let (mut off_big, mut seal, mut seal1) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..a.repeat {
        let d1 = tempfile::tempdir_in(&base).unwrap();
        off.push(ingest(d1.path(), a.events, 1024, Mode::Off));
        let d2 = tempfile::tempdir_in(&base).unwrap();
        on.push(ingest(d2.path(), a.events, 1024, Mode::Auto));
        let d4 = tempfile::tempdir_in(&base).unwrap();
        before.push(ingest(d4.path(), a.events, 1024, Mode::V1));
        let d3 = tempfile::tempdir_in(&base).unwrap();
        off_big.push(ingest(
            d3.path(),
            a.events,
            1024 + ENVELOPE_OVERHEAD,
            Mode::Off,
        ));
        seal.push(seal_only(a.events, &key, false));
        seal1.push(seal_only(a.events, &key, true));
    }
    let (offm, onm) = (median(off.clone()), median(on.clone()));
    let slowest = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    let row = |name: &str, v: &[f64]| {
        let m = median(v.to_vec());
        println!("| {name} | {m:.0} | {:.0} | {:.2}x |", slowest(v), m / offm);
    };
    println!();
    println!("| ingest, 1 KiB plaintext | events/s median | events/s worst | vs off |");
    println!("| --- | ---: | ---: | ---: |");
    row("encryption off, 1024 B payloads (anchor)", &off);
    row("encryption on: `write_event` seals (v2, AES-256-GCM)", &on);
    row("encryption on, before (v1, XChaCha20-Poly1305)", &before);
    row(
        "encryption off, 1077 B payloads (same stored size)",
        &off_big,
    );
    row("seal only, no store: v2 sealer", &seal);
    row("seal only, no store: v1 (before)", &seal1);
    println!();
    println!(
        "goal: ingest with encryption >= 0.8x of off: {}",
        if onm / offm >= 0.8 { "met" } else { "NOT met" }
    );

    if a.sync > 0 {
        let (mut s_off, mut s_on) = (Vec::new(), Vec::new());
        for _ in 0..a.repeat.min(3) {
            let d = tempfile::tempdir_in(&base).unwrap();
            s_off.push(sync_rate(d.path(), a.sync, false));
            let d = tempfile::tempdir_in(&base).unwrap();
            s_on.push(sync_rate(d.path(), a.sync, true));
        }
        let base_rate = median(s_off.clone());
        println!();
        println!(
            "| sync over loopback, {} events of 1 KiB (A writes, B stores) | events/s median | events/s worst | vs off |",
            a.sync
        );
        println!("| --- | ---: | ---: | ---: |");
        for (name, v) in [
            ("encryption off (anchor)", &s_off),
            ("encryption on (sealed by A, opened by B)", &s_on),
        ] {
            let m = median(v.clone());
            println!(
                "| {name} | {m:.0} | {:.0} | {:.2}x |",
                slowest(v),
                m / base_rate
            );
        }
    }
}
