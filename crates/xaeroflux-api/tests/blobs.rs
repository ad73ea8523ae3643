//! The blob routes over a real listener on 127.0.0.1, on an online store (loopback,
//! relays off): streamed upload and download, list, info, the attachment event, auth,
//! unknown and garbage hashes, oversized uploads, and a store without blobs.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use xaeroflux::blob_store::Attachment;
use xaeroflux::{NetConfig, NetworkOptions, XaeroFlux};
use xaeroflux_api::{ApiOptions, ApiServer, Client};

struct Node {
    store: Arc<XaeroFlux>,
    _server: ApiServer,
    client: Client,
    token: String,
    addr: String,
    dir: tempfile::TempDir,
}

fn node(online: bool, max_blob: u64) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut b = XaeroFlux::builder(dir.path());
    if online {
        let mut net = NetworkOptions::for_data_dir(dir.path());
        net.config.bind_addr = NetConfig::loopback().bind_addr;
        net.threads = 1;
        b = b.network(net);
    } else {
        b = b.offline();
    }
    let store = Arc::new(b.open().unwrap());
    let token = xaeroflux_api::load_or_create_token(dir.path()).unwrap();
    let mut opts = ApiOptions::new(&token);
    opts.max_blob_body = max_blob;
    let server = ApiServer::start(store.clone(), &"127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let url = server.url().unwrap();
    Node {
        store,
        client: Client::new(&url, &token),
        addr: url.trim_start_matches("http://").to_string(),
        _server: server,
        token,
        dir,
    }
}

/// A raw HTTP/1.1 request; returns (status, body).
fn raw(addr: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

fn source(n: &Node, name: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let path = n.dir.path().join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[test]
fn upload_list_info_download_and_attach() {
    let n = node(true, 1 << 30);
    let (path, data) = source(&n, "report.pdf", 3 * 1024 * 1024 + 7);
    let added = n.client.blob_add(&path, None, "").unwrap();
    assert_eq!(added.hash, blake3::hash(&data).to_hex().to_string());
    assert_eq!(added.size, data.len() as u64);
    assert_eq!(added.event, None);

    let list = n.client.blob_list().unwrap();
    assert!(list.iter().any(|b| b.hash == added.hash && b.complete));
    let info = n.client.blob_info(&added.hash).unwrap().unwrap();
    assert_eq!(info.size, Some(data.len() as u64));
    assert_eq!(info.local_bytes, data.len() as u64);

    let mut out = Vec::new();
    let mut last = (0, 0);
    let got = n
        .client
        .blob_download(&added.hash, &mut out, |d, s| last = (d, s))
        .unwrap();
    assert_eq!(got, data.len() as u64);
    assert_eq!(last, (got, got));
    assert!(out == data, "downloaded bytes differ");

    // With a group: the attachment event (type 64) is written and decodes.
    let g = n.store.default_group().to_string();
    let added = n.client.blob_add(&path, Some(&g), "report.pdf").unwrap();
    let id = xaeroflux::EventId::from_hex(added.event.as_deref().unwrap()).unwrap();
    let e = n.store.get(&id).unwrap().unwrap();
    assert_eq!(e.header.event_type, 64);
    let a = Attachment::decode(&e.payload).unwrap();
    assert_eq!(a.name, "report.pdf");
    assert_eq!(a.blob.hash.to_string(), added.hash);
    // A referenced blob that is here in full: fetching is a no-op.
    let f = n.client.blob_fetch(&added.hash).unwrap();
    assert_eq!(f.received, 0);
}

#[test]
fn refusals_auth_unknown_garbage_and_oversized() {
    let n = node(true, 4096);
    let a = &n.addr;
    let zeros = "0".repeat(64);
    // No token: refused before anything is read or stored.
    let (s, _) = raw(
        a,
        &format!(
            "POST /v1/blobs HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nContent-Length: 3\r\n\r\n"
        ),
        b"abc",
    );
    assert_eq!(s, 401);
    for path in ["/v1/blobs", &format!("/v1/blobs/{zeros}")] {
        let head = format!("GET {path} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n");
        assert_eq!(raw(a, &head, b"").0, 401, "{path}");
    }
    assert!(n.client.blob_list().unwrap().is_empty());

    // Unknown hash: 404 for info, download and fetch; garbage: 400.
    assert_eq!(n.client.blob_info(&zeros).unwrap(), None);
    let e = n
        .client
        .blob_download(&zeros, &mut Vec::new(), |_, _| {})
        .unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    assert_eq!(
        n.client.blob_fetch(&zeros).unwrap_err().code(),
        Some("not_found")
    );
    for bad in ["xyz", "0123", &"g".repeat(64)] {
        let e = n.client.blob_info(bad).unwrap_err();
        assert_eq!(e.code(), Some("invalid_id"), "{bad}");
    }

    // Over the upload limit: 413, and nothing is listed as complete.
    let (big, _) = source(&n, "big", 10_000);
    let e = n.client.blob_add(&big, None, "").unwrap_err();
    assert_eq!(e.code(), Some("body_too_large"), "{e}");
    assert!(
        n.client
            .blob_list()
            .unwrap()
            .iter()
            .all(|b| b.size != Some(10_000))
    );

    // A bad attachment name or an unknown group: 4xx before the body is taken.
    let (small, _) = source(&n, "small", 100);
    let g = n.store.default_group().to_string();
    let e = n.client.blob_add(&small, Some(&g), "a/b").unwrap_err();
    assert_eq!(e.code(), Some("invalid_name"));
    let e = n.client.blob_add(&small, Some(&zeros), "ok").unwrap_err();
    assert_eq!(e.code(), Some("unknown_group"));
    let head = format!(
        "POST /v1/blobs?group=nothex HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: 3\r\n\r\n",
        n.token
    );
    assert_eq!(raw(a, &head, b"abc").0, 400);
}

#[test]
fn an_offline_store_has_no_blobs() {
    let n = node(false, 1 << 20);
    assert_eq!(n.client.blob_list().unwrap_err().code(), Some("blobs_off"));
    let (p, _) = source(&n, "f", 10);
    assert_eq!(
        n.client.blob_add(&p, None, "").unwrap_err().code(),
        Some("blobs_off")
    );
}
