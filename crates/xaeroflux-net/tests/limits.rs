//! Connection limits and non-member answers on real loopback nodes (issue 17, items 3
//! and 11).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use iroh::endpoint::{Connection, ConnectionError, presets};
use iroh::{Endpoint, EndpointAddr, PublicKey, RelayMode, SecretKey};
use xaeroflux_net::{ALPN, KEYING_CONTEXT, KEYING_LABEL, NetHandle};
use xaeroflux_sync::frame::{self, Message};
use xaeroflux_sync::proto::handshake::make_hello;
use xaeroflux_sync::{ErrorCode, Role, TransportParams};

struct Fixture {
    node: NetHandle,
    _host: Arc<TestHost>,
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

fn fixture(tune: impl FnOnce(&mut xaeroflux_net::NetConfig)) -> Fixture {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::new(1);
    host.write(5, 32);
    let mut c = cfg(dir.path());
    c.handshake_timeout = Duration::from_secs(5);
    tune(&mut c);
    let node = NetHandle::start(host.clone(), c, 2).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    Fixture {
        node,
        _host: host,
        _dir: dir,
        rt,
    }
}

impl Fixture {
    fn client(&self) -> Endpoint {
        self.rt.block_on(async {
            Endpoint::builder(presets::Minimal)
                .relay_mode(RelayMode::Disabled)
                .clear_address_lookup()
                .clear_ip_transports()
                .bind_addr("127.0.0.1:0")
                .unwrap()
                .secret_key(SecretKey::generate())
                .bind()
                .await
                .unwrap()
        })
    }

    fn dial(&self, client: &Endpoint) -> Connection {
        let a = self.node.addr();
        let mut addr = EndpointAddr::new(PublicKey::from_bytes(&a.endpoint).unwrap());
        for s in a.addrs {
            addr = addr.with_ip_addr(s);
        }
        self.rt.block_on(client.connect(addr, ALPN)).unwrap()
    }

    fn params(client: &Endpoint, conn: &Connection) -> TransportParams {
        let mut km = [0u8; 32];
        conn.export_keying_material(&mut km, KEYING_LABEL, KEYING_CONTEXT)
            .unwrap();
        TransportParams {
            local_endpoint: *client.id().as_bytes(),
            remote_endpoint: *conn.remote_id().as_bytes(),
            keying_material: km,
        }
    }

    /// Sends `bytes` on a new stream; returns everything the node sent back and how
    /// it closed the connection (code, reason).
    fn exchange(&self, conn: &Connection, bytes: &[u8]) -> (Vec<u8>, u64, Vec<u8>) {
        self.rt.block_on(async {
            let (mut s, mut r) = conn.open_bi().await.unwrap();
            s.write_all(bytes).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(1 << 20))
                .await
                .expect("no answer")
                .unwrap_or_default();
            let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed())
                .await
                .expect("not closed");
            match closed {
                ConnectionError::ApplicationClosed(c) => {
                    (got, c.error_code.into_inner(), c.reason.to_vec())
                }
                other => panic!("unexpected close {other:?}"),
            }
        })
    }

    /// The application error code the node closes `conn` with.
    fn close_code(&self, conn: &Connection) -> u64 {
        let e = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), conn.closed()).await })
            .expect("node did not close the connection");
        match e {
            ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
            other => panic!("unexpected close {other:?}"),
        }
    }
}

#[test]
fn non_member_answers_do_not_depend_on_the_group() {
    let f = fixture(|_| {});
    let client = f.client();
    let answer = |g: &xaeroflux_core::Group, tamper: &dyn Fn(&mut frame::Hello)| {
        let conn = f.dial(&client);
        let p = Fixture::params(&client, &conn);
        let mut hello = make_hello(Role::Initiator, &p, g, &keypair(5), false);
        tamper(&mut hello);
        f.exchange(&conn, &frame::encode(&Message::Hello(Box::new(hello))))
    };
    // A group the node does not sync.
    let unknown = answer(&other_group(), &|_| {});
    // The node's group, by a non-member: a guessed MAC, a wrong tag, a wrong role,
    // other keying material.
    let guessed = answer(&other_group(), &|h| h.group = group().id());
    let tag = answer(&other_group(), &|h| {
        h.group = group().id();
        h.tag = *b"xaeroflux/sync/0";
    });
    let role = answer(&other_group(), &|h| {
        h.group = group().id();
        h.role = Role::Acceptor;
    });
    let km = answer(&other_group(), &|h| {
        h.group = group().id();
        h.keying_material = [9; 32];
    });
    assert_eq!(
        u16::try_from(unknown.1).unwrap(),
        ErrorCode::BadMac.as_u16()
    );
    for (what, a) in [("mac", guessed), ("tag", tag), ("role", role), ("km", km)] {
        assert_eq!(a, unknown, "{what}: answer differs from an unknown group's");
    }
    // None of these leaves a peer entry behind once its connection ended.
    wait_until(5, "failed endpoints forgotten", || {
        f.node.peers().is_empty()
    });
    f.rt.block_on(client.close());
}

#[test]
fn unauthenticated_connections_over_the_limit_are_refused() {
    let f = fixture(|c| c.limits.max_unauthenticated = 2);
    let client = f.client();
    // Two silent connections hold the two slots (a stream, half a frame header).
    let silent: Vec<Connection> = (0..2)
        .map(|_| {
            let c = f.dial(&client);
            f.rt.block_on(async {
                let (mut s, r) = c.open_bi().await.unwrap();
                s.write_all(&[200, 0]).await.unwrap();
                std::mem::forget((s, r));
            });
            c
        })
        .collect();
    // Give the node time to accept both (not an assertion on time: the order).
    std::thread::sleep(Duration::from_secs(1));
    let third = f.dial(&client);
    assert_eq!(
        f.close_code(&third),
        u64::from(ErrorCode::Busy.as_u16()),
        "a third unauthenticated connection is refused at once"
    );
    // The silent ones run into the handshake timeout as before.
    for c in &silent {
        assert_eq!(f.close_code(c), u64::from(ErrorCode::Timeout.as_u16()));
    }
    // Then the slots are free again: a member syncs.
    let d = tempfile::tempdir().unwrap();
    let good = TestHost::new(2);
    let n = start(&good, d.path());
    n.connect(&f.node.ticket(&group().id(), false).unwrap())
        .unwrap();
    wait_until(15, "good peer sync", || good.total() == 5);
    n.shutdown();
    f.rt.block_on(client.close());
}

#[test]
fn sessions_per_endpoint_are_limited() {
    let f = fixture(|c| c.limits.max_sessions_per_endpoint = 1);
    let client = f.client();
    // Two connections from one endpoint, each with a member's valid Hello.
    let hello = |conn: &Connection| {
        let p = Fixture::params(&client, conn);
        frame::encode(&Message::Hello(Box::new(make_hello(
            Role::Initiator,
            &p,
            &group(),
            &keypair(5),
            false,
        ))))
    };
    let first = f.dial(&client);
    let h = hello(&first);
    let _keep = f.rt.block_on(async {
        let (mut s, r) = first.open_bi().await.unwrap();
        s.write_all(&h).await.unwrap();
        (s, r)
    });
    std::thread::sleep(Duration::from_secs(1));
    let second = f.dial(&client);
    let h = hello(&second);
    let (_, code, _) = f.exchange(&second, &h);
    assert_eq!(code, u64::from(ErrorCode::Busy.as_u16()));
    first.close(0u32.into(), b"done");
    f.rt.block_on(client.close());
}
