//! LAN discovery over mDNS, on a real (private) network: the test re-runs itself inside
//! a fresh user + network namespace (`unshare --user --map-root-user --net`: root, or
//! unprivileged user namespaces) whose only interface is a multicast-capable loopback,
//! so nothing leaves the machine. There, three nodes bind
//! all interfaces with `lan_discovery` on and no ticket or address given: the two
//! members of one group find each other and sync; the node of another group is never
//! dialled.
#![cfg(feature = "mdns")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Instant;

use common::*;
use xaeroflux_net::NetHandle;

/// Set in the child that runs inside the namespace.
const IN_NETNS: &str = "XAERO_TEST_IN_NETNS";

#[test]
fn lan_members_find_each_other_and_strangers_do_not() {
    if std::env::var_os(IN_NETNS).is_some() {
        scenario();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "ip link set lo up && ip link set lo multicast on && \
         ip route add 224.0.0.0/4 dev lo && \
         exec {exe} --exact lan_members_find_each_other_and_strangers_do_not --nocapture",
        exe = exe.display()
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "sh", "-c", &script])
        .env(IN_NETNS, "1")
        .output()
        .expect("run unshare (util-linux) to make a network namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario in a network namespace failed (needs `unshare` and `ip`, and root or \
         unprivileged user namespaces):\n\
         {stdout}\n{stderr}"
    );
    // The child really ran the scenario (not zero tests).
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
}

fn scenario() {
    init_tracing();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b) = (TestHost::new(1), TestHost::new(2));
    let stranger = TestHost::with_groups(3, vec![other_group()]);
    a.write(20, 64);
    b.write(30, 64);
    let lan = |host: &std::sync::Arc<TestHost>, dir: &std::path::Path| {
        let mut c = cfg(dir);
        c.bind_addr = "0.0.0.0:0".parse().unwrap();
        c.lan_discovery = true;
        NetHandle::start(host.clone(), c, 2).unwrap()
    };
    let t0 = Instant::now();
    let na = lan(&a, dirs[0].path());
    let nb = lan(&b, dirs[1].path());
    let nc = lan(&stranger, dirs[2].path());
    wait_until(60, "members to sync over the LAN", || {
        a.total() == 50 && b.total() == 50
    });
    eprintln!("found and synced over mDNS in {:?}", t0.elapsed());
    assert_eq!(a.summary(), b.summary());
    // The dialler found the other with its LAN addresses and remembers it like a
    // ticket's peer (the other side may simply have accepted the connection).
    let knows = |n: &NetHandle, other: [u8; 32]| {
        n.peers()
            .iter()
            .any(|p| p.endpoint == other && p.known && !p.addrs.is_empty())
    };
    assert!(
        knows(&na, nb.endpoint_id()) || knows(&nb, na.endpoint_id()),
        "a: {:?}\nb: {:?}",
        na.peers(),
        nb.peers()
    );
    // Give the stranger a few more advertisement rounds: nobody dials it, it learns
    // nothing, and it dials nobody.
    std::thread::sleep(std::time::Duration::from_secs(3));
    for n in [&na, &nb] {
        assert!(
            !n.peers().iter().any(|p| p.endpoint == nc.endpoint_id()),
            "stranger was added"
        );
    }
    assert!(nc.peers().is_empty(), "{:?}", nc.peers());
    assert_eq!(stranger.total(), 0);
    nc.shutdown();
    nb.shutdown();
    na.shutdown();
}
