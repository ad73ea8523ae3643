//! Membership rules through the public API: roles, cut-off, forged grants, invites,
//! concurrent admins, epochs; and convergence under any delivery order (proptest).
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use xaeroflux_access::{
    Invite, InviteStatus, KemKeypair, MemberOp, Membership, OpBody, OpenError, Role, SeededEntropy,
    Stamp, open_payload, seal_payload,
};
use xaeroflux_core::GroupId;
use xaeroid::{IdHash, XaeroKeypair};

const G: GroupId = GroupId([42; 32]);

/// 0 = owner, 1..=2 admins-to-be, 3..=5 members-to-be.
fn kp(i: usize) -> &'static XaeroKeypair {
    static K: OnceLock<Vec<XaeroKeypair>> = OnceLock::new();
    &K.get_or_init(|| {
        (0..6u8)
            .map(|i| XaeroKeypair::generate_from_seed(&[i + 1; 32]))
            .collect()
    })[i]
}

fn id(i: usize) -> IdHash {
    kp(i).id()
}

fn at(i: usize, ms: u64, seq: u64) -> Stamp {
    Stamp {
        hlc: ms << 16,
        author: id(i),
        seq,
    }
}

/// The owner's genesis op: one signature (Falcon signatures are randomized, and every
/// replica must hold the same op).
fn genesis_op() -> &'static MemberOp {
    static OP: OnceLock<MemberOp> = OnceLock::new();
    OP.get_or_init(|| {
        MemberOp::sign(
            kp(0),
            G,
            &[],
            OpBody::Genesis {
                owner: kp(0).public().clone(),
            },
        )
        .unwrap()
    })
}

/// A replica with the owner's genesis at (owner, ms 1, seq 0).
fn genesis() -> Membership {
    let mut m = Membership::new(G, id(0));
    m.insert_op(at(0, 1, 0), genesis_op().clone());
    m
}

fn add(who: usize, role: Role, at_seq: u64) -> OpBody {
    OpBody::Add {
        member: kp(who).public().clone(),
        role,
        at_seq,
    }
}

#[test]
fn roles_decide_who_may_write() {
    let mut m = genesis();
    let op = m.make_op(kp(0), add(3, Role::Writer, 0)).unwrap();
    m.insert_op(at(0, 2, 1), op);
    let op = m.make_op(kp(0), add(4, Role::Reader, 0)).unwrap();
    m.insert_op(at(0, 3, 2), op);
    assert_eq!(m.role(&id(0)), Some(Role::Owner));
    assert_eq!(m.role(&id(3)), Some(Role::Writer));
    assert_eq!(m.role(&id(4)), Some(Role::Reader));
    assert_eq!(m.role(&id(5)), None);
    assert!(m.may_write(&id(0), 9));
    assert!(m.may_write(&id(3), 0));
    assert!(!m.may_write(&id(4), 0), "a reader's events are refused");
    assert!(!m.may_write(&id(5), 0), "a stranger's events are refused");
    assert_eq!(m.members().len(), 3);
    // Promote the reader from its seq 5 on: earlier events stay refused.
    let op = m
        .make_op(
            kp(0),
            OpBody::SetRole {
                member: id(4),
                role: Role::Writer,
                at_seq: 5,
            },
        )
        .unwrap();
    m.insert_op(at(0, 4, 3), op);
    assert!(!m.may_write(&id(4), 4));
    assert!(m.may_write(&id(4), 5));
}

#[test]
fn removal_cut_off_holds_in_any_arrival_order() {
    let mut a = genesis();
    let add_w = a.make_op(kp(0), add(3, Role::Writer, 0)).unwrap();
    a.insert_op(at(0, 2, 1), add_w.clone());
    let rm = a
        .make_op(
            kp(0),
            OpBody::Remove {
                member: id(3),
                at_seq: 4,
            },
        )
        .unwrap();
    a.insert_op(at(0, 10, 2), rm.clone());
    // Another replica receives the removal before the add.
    let mut b = genesis();
    b.insert_op(at(0, 10, 2), rm);
    assert!(
        !b.may_write(&id(3), 0),
        "removal waits for the add it names"
    );
    b.insert_op(at(0, 2, 1), add_w);
    for m in [&a, &b] {
        assert_eq!(m.role(&id(3)), None);
        assert!(
            m.may_write(&id(3), 3),
            "events before the cut-off stay valid"
        );
        assert!(
            !m.may_write(&id(3), 4),
            "events from the cut-off are refused"
        );
        assert!(!m.may_write(&id(3), 100));
    }
    assert_eq!(a.root(), b.root());
}

#[test]
fn forged_grants_are_void() {
    let mut m = genesis();
    let op = m.make_op(kp(0), add(3, Role::Writer, 0)).unwrap();
    m.insert_op(at(0, 2, 1), op);
    let before = m.root();
    // A writer (not admin) grants itself admin and adds a friend.
    let op = m
        .make_op(
            kp(3),
            OpBody::SetRole {
                member: id(3),
                role: Role::Admin,
                at_seq: 0,
            },
        )
        .unwrap();
    m.insert_op(at(3, 3, 0), op);
    let op = m.make_op(kp(3), add(5, Role::Admin, 0)).unwrap();
    m.insert_op(at(3, 4, 1), op);
    // A stranger signs an add.
    let op = m.make_op(kp(5), add(5, Role::Admin, 0)).unwrap();
    m.insert_op(at(5, 5, 0), op);
    // The owner's op carried in someone else's log (author != signer).
    let op = m.make_op(kp(0), add(4, Role::Admin, 0)).unwrap();
    m.insert_op(at(3, 6, 2), op);
    // The writer's op with the signer field rewritten to the owner's id.
    let op = m.make_op(kp(3), add(4, Role::Admin, 0)).unwrap();
    let mut bytes = op.as_bytes().to_vec();
    bytes[34..66].copy_from_slice(&id(0).0);
    m.insert(at(0, 7, 3), &bytes).unwrap();
    assert_eq!(m.role(&id(3)), Some(Role::Writer));
    assert_eq!(m.role(&id(4)), None);
    assert_eq!(m.role(&id(5)), None);
    assert_eq!(m.root(), before);
    assert_eq!(m.applied().count(), 2);
}

#[test]
fn removed_admin_cannot_backdate_ops_past_its_cut_off() {
    let mut m = genesis();
    let op = m.make_op(kp(0), add(1, Role::Admin, 0)).unwrap();
    m.insert_op(at(0, 2, 1), op);
    // Admin 1 writes two events (seq 0, 1), then is removed from seq 2.
    let rm = m
        .make_op(
            kp(0),
            OpBody::Remove {
                member: id(1),
                at_seq: 2,
            },
        )
        .unwrap();
    m.insert_op(at(0, 20, 2), rm);
    // Its op at seq 5 with an HLC before the removal: void by the cut-off.
    let late = MemberOp::sign(kp(1), G, &[], add(4, Role::Writer, 0)).unwrap();
    m.insert_op(at(1, 10, 5), late);
    assert_eq!(m.role(&id(4)), None);
    // Its op at seq 1 (before the cut-off) stays valid, whenever it arrives.
    let early = MemberOp::sign(kp(1), G, &[], add(5, Role::Reader, 0)).unwrap();
    m.insert_op(at(1, 3, 1), early);
    assert_eq!(m.role(&id(5)), Some(Role::Reader));
}

#[test]
fn concurrent_admins_removing_each_other_converge() {
    // Admins 1 and 2 are added; each then removes the other on the same state.
    let mut adds: Vec<(Stamp, MemberOp)> = Vec::new();
    let mut r = genesis();
    for (i, who) in [1usize, 2].into_iter().enumerate() {
        let op = r.make_op(kp(0), add(who, Role::Admin, 0)).unwrap();
        let s = at(0, 2 + i as u64, 1 + i as u64);
        r.insert_op(s, op.clone());
        adds.push((s, op));
    }
    let remove = |by: usize, whom: usize| {
        r.make_op(
            kp(by),
            OpBody::Remove {
                member: id(whom),
                at_seq: 0,
            },
        )
        .unwrap()
    };
    let (rm2, rm1) = (remove(1, 2), remove(2, 1));
    // Admin 1's removal comes first in total order (ms 10 < 11).
    let (s2, s1) = (at(1, 10, 0), at(2, 11, 0));
    let mut x = genesis();
    for (s, op) in &adds {
        x.insert_op(*s, op.clone());
    }
    x.insert_op(s2, rm2.clone());
    x.insert_op(s1, rm1.clone());
    let mut y = genesis();
    y.insert_op(s1, rm1);
    y.insert_op(s2, rm2);
    for (s, op) in adds.iter().rev() {
        y.insert_op(*s, op.clone());
    }
    assert_eq!(x.root(), y.root());
    assert_eq!(
        x.role(&id(1)),
        Some(Role::Admin),
        "the earlier removal wins"
    );
    assert_eq!(
        x.role(&id(2)),
        None,
        "the later one's signer was already out"
    );
    assert_eq!(y.members(), x.members());
}

#[test]
fn invites_expire_are_single_use_and_revocable() {
    let mut m = genesis();
    let once = Invite::sign(kp(0), G, [1; 16], Role::Writer, 100, true).unwrap();
    let many = Invite::sign(kp(0), G, [2; 16], Role::Reader, 100, false).unwrap();
    let revoked = Invite::sign(kp(0), G, [3; 16], Role::Writer, 100, false).unwrap();
    let forged = Invite::sign(kp(4), G, [4; 16], Role::Admin, 100, false).unwrap();
    let join = |m: &Membership, who: usize, invite: &Invite| {
        m.make_op(
            kp(who),
            OpBody::Join {
                invite: invite.clone(),
                member: kp(who).public().clone(),
            },
        )
        .unwrap()
    };
    // Expired: joined at ms 101 > 100.
    let op = join(&m, 3, &once);
    m.insert_op(at(3, 101, 0), op);
    assert_eq!(m.role(&id(3)), None);
    assert_eq!(m.invite_status(&[1; 16]), InviteStatus::Open);
    // In time: member 3 joins as writer from its seq 1.
    let op = join(&m, 3, &once);
    m.insert_op(at(3, 50, 1), op);
    assert_eq!(m.role(&id(3)), Some(Role::Writer));
    assert!(!m.may_write(&id(3), 0));
    assert!(m.may_write(&id(3), 2));
    assert_eq!(m.invite_status(&[1; 16]), InviteStatus::Used);
    // Used: another joiner with the single-use invite is refused.
    let op = join(&m, 4, &once);
    m.insert_op(at(4, 60, 0), op);
    assert_eq!(m.role(&id(4)), None);
    // A multi-use invite admits two.
    let op = join(&m, 4, &many);
    m.insert_op(at(4, 61, 1), op);
    let op = join(&m, 5, &many);
    m.insert_op(at(5, 62, 0), op);
    assert_eq!(m.role(&id(4)), Some(Role::Reader));
    assert_eq!(m.role(&id(5)), Some(Role::Reader));
    // Revoked before use: refused.
    let op = m
        .make_op(kp(0), OpBody::RevokeInvite { invite: [3; 16] })
        .unwrap();
    m.insert_op(at(0, 70, 1), op);
    assert_eq!(m.invite_status(&[3; 16]), InviteStatus::Revoked);
    let op = join(&m, 5, &revoked);
    m.insert_op(at(5, 80, 1), op);
    assert_eq!(m.role(&id(5)), Some(Role::Reader), "unchanged");
    // Issued by a non-admin: refused.
    let rm = m
        .make_op(
            kp(0),
            OpBody::Remove {
                member: id(5),
                at_seq: 2,
            },
        )
        .unwrap();
    m.insert_op(at(0, 90, 2), rm);
    let op = join(&m, 5, &forged);
    m.insert_op(at(5, 95, 2), op);
    assert_eq!(m.role(&id(5)), None);
}

#[test]
fn removal_rotates_to_an_epoch_the_removed_member_cannot_open() {
    let mut rng = SeededEntropy::new(11);
    let kems: Vec<KemKeypair> = (0..6)
        .map(|_| KemKeypair::generate(&mut rng).unwrap())
        .collect();
    let mut m = genesis();
    let mut ms = 2;
    let mut seq = [1u64, 0, 0, 0, 0, 0];
    let mut put = |m: &mut Membership, who: usize, op: MemberOp| {
        m.insert_op(at(who, ms, seq[who]), op);
        ms += 1;
        seq[who] += 1;
    };
    for who in [3, 4] {
        let op = m.make_op(kp(0), add(who, Role::Writer, 0)).unwrap();
        put(&mut m, 0, op);
    }
    for who in [0, 3, 4] {
        let op = m
            .make_op(
                kp(who),
                OpBody::KemKey {
                    key: kems[who].public().clone(),
                },
            )
            .unwrap();
        put(&mut m, who, op);
    }
    let (k1, ops) = m.rotate(kp(0), &mut rng).unwrap();
    for op in ops {
        put(&mut m, 0, op);
    }
    assert_eq!(m.current_epoch().map(|e| e.epoch), Some(1));
    let before = seal_payload(&G, 300, &k1, b"old news", &mut rng).unwrap();
    // Remove member 4, then rotate: the new epoch is sealed to 0 and 3 only.
    let op = m
        .make_op(
            kp(0),
            OpBody::Remove {
                member: id(4),
                at_seq: 1,
            },
        )
        .unwrap();
    put(&mut m, 0, op);
    let (k2, ops) = m.rotate(kp(0), &mut rng).unwrap();
    for op in ops {
        put(&mut m, 0, op);
    }
    let e2 = m.current_epoch().unwrap();
    assert_eq!(e2.epoch, 2);
    assert_eq!(e2.sealed.len(), 2);
    let after = seal_payload(&G, 300, &k2, b"secret plans", &mut rng).unwrap();
    // Member 3 opens both epochs.
    let keys3 = m.open_keys(&id(3), &kems[3]);
    let find = |keys: &[xaeroflux_access::EpochKey], e: u32, kid: &[u8; 8]| {
        keys.iter()
            .find(|k| k.epoch() == e && &k.key_id() == kid)
            .cloned()
    };
    let k3 = find(&keys3, 2, &k2.key_id()).unwrap();
    assert_eq!(
        &open_payload(&G, 300, &after, |_, _| Some(&k3)).unwrap()[..],
        b"secret plans"
    );
    // Removed member 4 still opens the old epoch, but not the new one.
    let keys4 = m.open_keys(&id(4), &kems[4]);
    assert_eq!(keys4.len(), 1);
    let k4 = &keys4[0];
    assert_eq!(
        &open_payload(&G, 300, &before, |_, _| Some(k4)).unwrap()[..],
        b"old news"
    );
    assert!(matches!(
        open_payload(&G, 300, &after, |e, kid| (e == k4.epoch()
            && *kid == k4.key_id())
        .then_some(k4)),
        Err(OpenError::NoKey { epoch: 2, .. })
    ));
    assert!(m.current_key(&id(4), &kems[4]).is_err());
    // Even decrypting with its old key under the new header fails.
    assert_eq!(
        open_payload(&G, 300, &after, |_, _| Some(k4)),
        Err(OpenError::Auth)
    );
}

/// A generated history: ops by random actors on random partial views.
#[derive(Debug, Clone)]
struct Step {
    actor: usize,
    kind: u8,
    target: usize,
    role: u8,
    ms: u64,
    view: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (0usize..6, 0u8..4, 1usize..6, 1u8..4, 2u64..40, any::<u8>()).prop_map(
        |(actor, kind, target, role, ms, view)| Step {
            actor,
            kind,
            target,
            role,
            ms,
            view,
        },
    )
}

fn role_of(b: u8) -> Role {
    match b {
        1 => Role::Reader,
        2 => Role::Writer,
        _ => Role::Admin,
    }
}

/// Builds the op set: each actor signs on the heads of a replica that saw a prefix of
/// the ops generated so far (so ops are often concurrent).
fn history(steps: &[Step]) -> Vec<(Stamp, Vec<u8>)> {
    let mut out: Vec<(Stamp, Vec<u8>)> = Vec::new();
    out.push((at(0, 1, 0), genesis_op().as_bytes().to_vec()));
    let mut seqs = [1u64, 0, 0, 0, 0, 0];
    for s in steps {
        let seen = (s.view as usize) % (out.len() + 1);
        let mut view = Membership::new(G, id(0));
        for (st, b) in &out[..seen.max(1)] {
            view.insert(*st, b).unwrap();
        }
        let body = match s.kind {
            0 => add(s.target, role_of(s.role), seqs[s.target]),
            1 => OpBody::SetRole {
                member: id(s.target),
                role: role_of(s.role),
                at_seq: seqs[s.target],
            },
            2 => OpBody::Remove {
                member: id(s.target),
                at_seq: seqs[s.target],
            },
            _ => OpBody::RevokeInvite {
                invite: [s.role; 16],
            },
        };
        let op = view.make_op(kp(s.actor), body).unwrap();
        let seq = seqs[s.actor];
        seqs[s.actor] += 1;
        out.push((at(s.actor, s.ms, seq), op.as_bytes().to_vec()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any delivery order of the same op set gives the same state on every replica.
    #[test]
    fn any_delivery_order_converges(
        steps in proptest::collection::vec(step(), 1..10),
        perms in proptest::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let ops = history(&steps);
        let mut reference = Membership::new(G, id(0));
        for (s, b) in &ops {
            reference.insert(*s, b).unwrap();
        }
        for p in perms {
            // A rotation and a reversal of the list: different delivery orders.
            let mut order = ops.clone();
            let k = p.index(order.len());
            order.rotate_left(k);
            if k % 2 == 1 {
                order.reverse();
            }
            let mut r = Membership::new(G, id(0));
            for (s, b) in &order {
                r.insert(*s, b).unwrap();
            }
            prop_assert_eq!(r.root(), reference.root());
            prop_assert_eq!(r.members(), reference.members());
            // The owner is never displaced.
            prop_assert_eq!(r.role(&id(0)), Some(Role::Owner));
        }
    }
}

#[test]
fn a_rotation_cut_short_is_completed_by_sharing_the_same_key() {
    let mut rng = SeededEntropy::new(21);
    let mut m = genesis();
    let owner_kem = KemKeypair::generate(&mut rng).unwrap();
    let op = m
        .make_op(
            kp(0),
            OpBody::KemKey {
                key: owner_kem.public().clone(),
            },
        )
        .unwrap();
    m.insert_op(at(0, 2, 1), op);
    // 19 writers with KEM keys: a rotation takes two EpochKeys ops (13 + 7 keys).
    let mut kems = Vec::new();
    let mut seq = 2;
    for i in 0..19u8 {
        let w = XaeroKeypair::generate_from_seed(&[100 + i; 32]);
        let op = MemberOp::sign(
            kp(0),
            G,
            &m.heads(),
            OpBody::Add {
                member: w.public().clone(),
                role: Role::Writer,
                at_seq: 0,
            },
        )
        .unwrap();
        m.insert_op(at(0, 10 + seq, seq), op);
        seq += 1;
        let k = KemKeypair::generate(&mut rng).unwrap();
        let op = m
            .make_op(
                &w,
                OpBody::KemKey {
                    key: k.public().clone(),
                },
            )
            .unwrap();
        m.insert_op(
            Stamp {
                hlc: (10 + seq) << 16,
                author: w.id(),
                seq: 0,
            },
            op,
        );
        seq += 1;
        kems.push((w.id(), k));
    }
    let (key, ops) = m.rotate(kp(0), &mut rng).unwrap();
    assert_eq!(ops.len(), 2);
    // Only the first op is stored (a crash in between).
    m.insert_op(at(0, 500, seq), ops[0].clone());
    seq += 1;
    assert_eq!(m.current_epoch().unwrap().epoch, 1);
    assert_eq!(m.missing_keys().len(), 20 - 13);
    // The rotating admin's own copy is in the first op: it can complete the epoch.
    let mine = m.current_key(&id(0), &owner_kem).unwrap();
    assert_eq!(mine.key_id(), key.key_id());
    let wrong = xaeroflux_access::EpochKey::generate(1, &mut rng).unwrap();
    assert!(m.share(kp(0), &wrong, &mut rng).is_err());
    let more = m.share(kp(0), &mine, &mut rng).unwrap();
    assert_eq!(more.len(), 1);
    for op in more {
        m.insert_op(at(0, 501, seq), op);
        seq += 1;
    }
    assert!(m.missing_keys().is_empty());
    assert_eq!(m.current_epoch().unwrap().sealed.len(), 20);
    for (w, k) in &kems {
        assert_eq!(m.current_key(w, k).unwrap().key_id(), key.key_id());
    }
    // Nothing left to share; the epoch did not change.
    assert!(m.share(kp(0), &mine, &mut rng).unwrap().is_empty());
    assert_eq!(m.current_epoch().unwrap().epoch, 1);
}
