//! Hostile peers over raw iroh connections on the sync ALPN: each must get its
//! connection closed with the right error code, leave the node's store untouched,
//! raise a peer event, and leave the node serving good peers.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use iroh::endpoint::{Connection, ConnectionError, VarInt, presets};
use iroh::{Endpoint, EndpointAddr, PublicKey, RelayMode, SecretKey};
use xaeroflux_net::{ALPN, KEYING_CONTEXT, KEYING_LABEL, NetHandle};
use xaeroflux_sync::frame::{self, Message};
use xaeroflux_sync::proto::handshake::make_hello;
use xaeroflux_sync::{ErrorCode, PeerEvent, Role, SystemEvent, TransportParams};

struct Fixture {
    host: Arc<TestHost>,
    node: NetHandle,
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    client: Endpoint,
}

fn fixture() -> Fixture {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::new(1);
    host.write(50, 32);
    let mut c = cfg(dir.path());
    c.handshake_timeout = Duration::from_millis(800);
    let node = NetHandle::start(host.clone(), c, 2).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
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
    });
    Fixture {
        host,
        node,
        _dir: dir,
        rt,
        client,
    }
}

impl Fixture {
    fn dial(&self) -> Connection {
        let a = self.node.addr();
        let mut addr = EndpointAddr::new(PublicKey::from_bytes(&a.endpoint).unwrap());
        for s in a.addrs {
            addr = addr.with_ip_addr(s);
        }
        self.rt.block_on(self.client.connect(addr, ALPN)).unwrap()
    }

    /// Waits for the node to close `conn` and returns the application error code.
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

    fn send(&self, conn: &Connection, bytes: &[u8]) {
        self.rt.block_on(async {
            let (mut s, _r) = conn.open_bi().await.unwrap();
            s.write_all(bytes).await.unwrap();
            // Keep the receive half alive until the node closes.
            std::mem::forget(_r);
            std::mem::forget(s);
        });
    }

    fn params(&self, conn: &Connection) -> TransportParams {
        let mut km = [0u8; 32];
        conn.export_keying_material(&mut km, KEYING_LABEL, KEYING_CONTEXT)
            .unwrap();
        TransportParams {
            local_endpoint: *self.client.id().as_bytes(),
            remote_endpoint: *conn.remote_id().as_bytes(),
            keying_material: km,
        }
    }

    fn refused(&self, code: ErrorCode) -> usize {
        self.host
            .events_matching(|e| matches!(e, PeerEvent::Refused { code: c, .. } if *c == code))
    }

    fn rejected(&self, code: ErrorCode) -> usize {
        self.host.events_matching(|e| {
            matches!(e, PeerEvent::Session { event: SystemEvent::PeerRejected { code: c, .. }, .. } if *c == code)
        })
    }

    /// The node's store is as written, and a good peer still syncs with it.
    fn still_serves(self) {
        assert_eq!(self.host.total(), 50, "store changed");
        assert_eq!(self.host.summary().len(), 1);
        let d = tempfile::tempdir().unwrap();
        let good = TestHost::new(2);
        let n = start(&good, d.path());
        n.connect(&self.node.ticket(&group().id(), false).unwrap())
            .unwrap();
        wait_until(15, "good peer sync", || good.total() == 50);
        assert_eq!(good.summary(), self.host.summary());
        n.shutdown();
        self.rt.block_on(self.client.close());
    }
}

fn code(c: ErrorCode) -> u64 {
    VarInt::from_u32(u32::from(c.as_u16())).into_inner()
}

#[test]
fn garbage_bytes() {
    let f = fixture();
    let conn = f.dial();
    // Length 6, frame version 1, message type 0x63 (unknown), junk.
    f.send(&conn, &[6, 0, 0, 0, 1, 0x63, 1, 2, 3, 4]);
    assert_eq!(f.close_code(&conn), code(ErrorCode::Malformed));
    wait_until(5, "refused event", || f.refused(ErrorCode::Malformed) == 1);
    f.still_serves();
}

#[test]
fn oversized_frame() {
    let f = fixture();
    let conn = f.dial();
    f.send(&conn, &[0xff, 0xff, 0xff, 0x7f, 1, 1]);
    assert_eq!(f.close_code(&conn), code(ErrorCode::FrameTooLarge));
    wait_until(5, "refused event", || {
        f.refused(ErrorCode::FrameTooLarge) == 1
    });
    f.still_serves();
}

#[test]
fn hello_for_unknown_group() {
    let f = fixture();
    let conn = f.dial();
    let p = f.params(&conn);
    let hello = make_hello(Role::Initiator, &p, &other_group(), &keypair(5), false);
    f.send(&conn, &frame::encode(&Message::Hello(Box::new(hello))));
    // Indistinguishable from a wrong MAC.
    assert_eq!(f.close_code(&conn), code(ErrorCode::BadMac));
    wait_until(5, "refused event", || f.refused(ErrorCode::BadMac) == 1);
    f.still_serves();
}

#[test]
fn hello_with_wrong_mac() {
    let f = fixture();
    let conn = f.dial();
    let p = f.params(&conn);
    let mut hello = make_hello(Role::Initiator, &p, &group(), &keypair(5), false);
    hello.mac[0] ^= 1;
    f.send(&conn, &frame::encode(&Message::Hello(Box::new(hello))));
    assert_eq!(f.close_code(&conn), code(ErrorCode::BadMac));
    wait_until(5, "rejected event", || f.rejected(ErrorCode::BadMac) == 1);
    f.still_serves();
}

#[test]
fn hello_replayed_from_another_connection() {
    let f = fixture();
    let first = f.dial();
    let second = f.dial();
    // A valid member's Hello, bound to the first connection's keying material.
    let hello = make_hello(
        Role::Initiator,
        &f.params(&first),
        &group(),
        &keypair(5),
        false,
    );
    f.send(&second, &frame::encode(&Message::Hello(Box::new(hello))));
    // Answered as any non-member's Hello (the MAC covers the first connection).
    assert_eq!(f.close_code(&second), code(ErrorCode::BadMac));
    wait_until(5, "rejected event", || f.rejected(ErrorCode::BadMac) == 1);
    first.close(0u32.into(), b"done");
    f.still_serves();
}

#[test]
fn slow_loris_is_closed_after_the_handshake_timeout() {
    let f = fixture();
    // Connects and opens nothing.
    let silent = f.dial();
    // Opens a stream and stops in the middle of a frame header.
    let partial = f.dial();
    f.send(&partial, &[200, 0]);
    assert_eq!(f.close_code(&silent), code(ErrorCode::Timeout));
    assert_eq!(f.close_code(&partial), code(ErrorCode::Timeout));
    wait_until(5, "refused events", || f.refused(ErrorCode::Timeout) == 2);
    f.still_serves();
}
