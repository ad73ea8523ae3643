//! Every route over a real listener on 127.0.0.1: auth, DNS-rebinding and origin
//! checks, bad input, and the live stream's resume.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xaeroflux::XaeroFlux;
use xaeroflux_api::model::{QueryParams, SearchRequest, WriteRequest};
use xaeroflux_api::{ApiOptions, ApiServer, Client};

struct Node {
    server: Option<ApiServer>,
    client: Client,
    token: String,
    addr: String,
    _dir: tempfile::TempDir,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open().unwrap());
    let token = xaeroflux_api::load_or_create_token(dir.path()).unwrap();
    let mut opts = ApiOptions::new(&token);
    opts.max_body = 64 * 1024;
    opts.max_batch_body = 1024 * 1024;
    let server = ApiServer::start(store, &"127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let url = server.url().unwrap();
    let addr = url.trim_start_matches("http://").to_string();
    Node {
        client: Client::new(&url, &token),
        server: Some(server),
        token,
        addr,
        _dir: dir,
    }
}

/// A raw HTTP/1.1 request; returns (status, body).
fn raw(addr: &str, request: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn get_req(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n")
}

fn text(t: &str) -> WriteRequest {
    WriteRequest {
        text: Some(t.into()),
        ..WriteRequest::default()
    }
}

fn code(e: xaeroflux_api::ClientError) -> String {
    e.code().unwrap_or("none").to_string()
}

#[test]
fn auth_host_and_origin() {
    let n = node();
    let a = &n.addr;
    let bearer = format!("Authorization: Bearer {}\r\n", n.token);
    // Health is public; everything else needs the token.
    assert_eq!(raw(a, &get_req("/v1/health", a, ""), b"").0, 200);
    let (s, body) = raw(a, &get_req("/v1/identity", a, ""), b"");
    assert_eq!(s, 401);
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    let wrong = format!("Authorization: Bearer {}\r\n", "0".repeat(64));
    assert_eq!(raw(a, &get_req("/v1/identity", a, &wrong), b"").0, 401);
    assert_eq!(raw(a, &get_req("/v1/identity", a, &bearer), b"").0, 200);
    for path in [
        "/v1/stats",
        "/v1/groups",
        "/v1/peers",
        "/v1/events",
        "/v1/subscribe",
        "/v1/openapi.json",
    ] {
        assert_eq!(raw(a, &get_req(path, a, ""), b"").0, 401, "{path}");
    }
    // DNS rebinding: a name that is not ours is refused even with the token.
    let (s, body) = raw(
        a,
        &get_req("/v1/identity", "evil.example:7421", &bearer),
        b"",
    );
    assert_eq!(s, 403);
    assert!(body.contains("forbidden_host"), "{body}");
    assert_eq!(
        raw(a, &get_req("/v1/health", "evil.example", ""), b"").0,
        403
    );
    // A page of another site is refused; the console's own origin is served.
    let foreign = format!("{bearer}Origin: http://evil.example\r\n");
    let (s, body) = raw(a, &get_req("/v1/identity", a, &foreign), b"");
    assert_eq!(s, 403);
    assert!(body.contains("forbidden_origin"), "{body}");
    let other_ip = format!("{bearer}Origin: http://10.1.2.3:7421\r\n");
    assert_eq!(raw(a, &get_req("/v1/identity", a, &other_ip), b"").0, 403);
    let same = format!("{bearer}Origin: http://{a}\r\n");
    assert_eq!(raw(a, &get_req("/v1/identity", a, &same), b"").0, 200);
    // The console page itself is public and refuses framing.
    let (s, body) = raw(a, &get_req("/", a, ""), b"");
    assert_eq!(s, 200);
    assert!(body.contains("XaeroFlux"));
}

#[test]
fn cors_only_for_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open().unwrap());
    let mut opts = ApiOptions::new("t".repeat(64));
    opts.cors_origins = vec!["http://localhost:3000".into()];
    let server = ApiServer::start(store, &"127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let a = server
        .url()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let pre = format!(
        "OPTIONS /v1/events HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\n\r\n"
    );
    let mut s = TcpStream::connect(&a).unwrap();
    s.write_all(pre.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 204"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("access-control-allow-origin: http://localhost:3000")
    );
    let other = format!(
        "Origin: http://localhost:4000\r\nAuthorization: Bearer {}\r\n",
        "t".repeat(64)
    );
    assert_eq!(raw(&a, &get_req("/v1/stats", &a, &other), b"").0, 403);
    server.shutdown();
}

#[test]
fn write_get_query_and_proofs() {
    let n = node();
    let c = &n.client;
    let id = c.identity().unwrap();
    assert!(id.did.starts_with("did:"));
    assert!(!id.online);
    let w1 = c.write(&text("hello")).unwrap();
    let w2 = c
        .write(&WriteRequest {
            base64: Some("AAEC/w==".into()),
            event_type: Some(2000),
            ..WriteRequest::default()
        })
        .unwrap();
    assert_eq!((w1.position, w2.position), (0, 1));
    // Raw body with type and group in the query.
    let req = format!(
        "POST /v1/events?type=3000&group={} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\n",
        id.default_group, n.addr, n.token
    );
    let (s, body) = raw(&n.addr, &req, b"\x00\xffz");
    assert_eq!(s, 201, "{body}");
    let e = c.get(&w1.id, true).unwrap().unwrap();
    assert_eq!(e.text.as_deref(), Some("hello"));
    assert_eq!(e.event_type, 1000);
    assert_eq!(e.group, id.default_group);
    assert_eq!(e.author, id.author);
    let proof = e.proof.unwrap();
    assert!(proof.verified);
    assert_eq!(proof.leaf_index, 0);
    let e2 = c.get(&w2.id, false).unwrap().unwrap();
    assert_eq!(e2.payload().unwrap(), [0, 1, 2, 255]);
    assert!(e2.text.is_none());
    assert!(e2.proof.is_none());
    assert!(c.get(&"ab".repeat(32), false).unwrap().is_none());
    assert_eq!(code(c.get("xyz", false).unwrap_err()), "invalid_id");

    // Query: filters and a cursor that pages through without gaps or repeats.
    let all = c.query(&QueryParams::default()).unwrap();
    assert_eq!(all.events.len(), 3);
    assert!(!all.more);
    let typed = c
        .query(&QueryParams {
            event_type: Some(2000),
            ..QueryParams::default()
        })
        .unwrap();
    assert_eq!(typed.events.len(), 1);
    assert_eq!(typed.events[0].id, w2.id);
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = c
            .query(&QueryParams {
                limit: Some(2),
                cursor: Some(cursor),
                ..QueryParams::default()
            })
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.position));
        cursor = page.next_cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, [0, 1, 2]);
    let future = c
        .query(&QueryParams {
            since: Some(u64::MAX / 2),
            ..QueryParams::default()
        })
        .unwrap();
    assert!(future.events.is_empty());
    let unknown = c
        .query(&QueryParams {
            group: Some("cd".repeat(32)),
            ..QueryParams::default()
        })
        .unwrap_err();
    assert_eq!(code(unknown), "unknown_group");
}

#[test]
fn batch_is_all_or_nothing_and_ordered() {
    let n = node();
    let c = &n.client;
    let mut nd = String::new();
    for i in 0..50 {
        nd.push_str(&format!("{{\"text\":\"line {i}\",\"type\":1001}}\n"));
    }
    nd.push('\n');
    let r = c.write_batch(nd.as_bytes()).unwrap();
    assert_eq!(r.ids.len(), 50);
    for (i, id) in r.ids.iter().enumerate() {
        let e = c.get(id, false).unwrap().unwrap();
        assert_eq!(e.text.unwrap(), format!("line {i}"));
        assert_eq!(e.position, i as u64);
    }
    // A bad line anywhere: nothing of the batch is written, the line is named.
    let bad = "{\"text\":\"ok\"}\n{\"text\":\n";
    let e = c.write_batch(bad.as_bytes()).unwrap_err();
    let xaeroflux_api::ClientError::Problem(p) = e else {
        panic!("{e:?}")
    };
    assert_eq!(p.code, "invalid_json");
    assert_eq!(p.status, 400);
    assert!(p.detail.starts_with("line 2:"), "{}", p.detail);
    let unknown = format!(
        "{{\"text\":\"x\"}}\n{{\"text\":\"y\",\"group\":\"{}\"}}\n",
        "ef".repeat(32)
    );
    assert_eq!(
        code(c.write_batch(unknown.as_bytes()).unwrap_err()),
        "unknown_group"
    );
    // What the store refuses is found before anything is written too: an empty
    // payload, a reserved type, a payload over 16 KiB (in base64), a second payload.
    let big = data_encoding::BASE64.encode(&vec![7u8; 16 * 1024 + 1]);
    for (last, want) in [
        ("{\"text\":\"\"}".to_string(), "empty_payload"),
        ("{\"text\":\"x\",\"type\":7}".to_string(), "reserved_type"),
        (format!("{{\"base64\":\"{big}\"}}"), "payload_too_large"),
        (
            "{\"text\":\"x\",\"base64\":\"eA==\"}".to_string(),
            "invalid_request",
        ),
        ("{\"text\":\"x\",\"extra\":1}".to_string(), "invalid_json"),
    ] {
        let nd = format!("{{\"text\":\"first\"}}\n{{\"text\":\"esc\\\"aped\\n\"}}\n{last}\n");
        let e = c.write_batch(nd.as_bytes()).unwrap_err();
        let xaeroflux_api::ClientError::Problem(p) = e else {
            panic!("{e:?}")
        };
        assert_eq!(p.code, want, "{last}");
        assert!(p.detail.starts_with("line 3:"), "{}", p.detail);
    }
    assert_eq!(c.stats().unwrap().events, 50);
    // Escaped text is written as its unescaped bytes (borrowed or not).
    let r = c
        .write_batch(b"{\"text\":\"a\\\"b\\nc\"}\n{\"text\":\"plain\"}\n")
        .unwrap();
    assert_eq!(
        c.get(&r.ids[0], false).unwrap().unwrap().text.unwrap(),
        "a\"b\nc"
    );
    assert_eq!(
        c.get(&r.ids[1], false).unwrap().unwrap().text.unwrap(),
        "plain"
    );
}

#[test]
fn bad_input_is_4xx_and_the_node_keeps_serving() {
    let n = node();
    let c = &n.client;
    let post = |path: &str, ctype: &str, body: &[u8]| {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            n.addr,
            n.token,
            body.len()
        );
        raw(&n.addr, &req, body)
    };
    let (s, b) = post("/v1/events", "application/json", &vec![b' '; 100 * 1024]);
    assert_eq!(s, 413, "{b}");
    assert!(b.contains("body_too_large"), "{b}");
    let (s, b) = post(
        "/v1/events/batch",
        "application/x-ndjson",
        &vec![b'\n'; 2 * 1024 * 1024],
    );
    assert_eq!(s, 413, "{b}");
    let (s, b) = post("/v1/events", "application/json", b"{not json");
    assert_eq!((s, b.contains("invalid_json")), (400, true), "{b}");
    let (s, b) = post(
        "/v1/events",
        "application/json",
        b"{\"text\":\"a\",\"colour\":1}",
    );
    assert_eq!((s, b.contains("invalid_json")), (400, true), "{b}");
    let (s, b) = post(
        "/v1/events",
        "application/json",
        b"{\"text\":\"a\",\"base64\":\"YQ==\"}",
    );
    assert_eq!((s, b.contains("invalid_request")), (400, true), "{b}");
    let (s, b) = post("/v1/events", "application/json", b"{\"base64\":\"***\"}");
    assert_eq!((s, b.contains("invalid_base64")), (400, true), "{b}");
    let big = format!("{{\"text\":\"{}\"}}", "x".repeat(20 * 1024));
    let (s, b) = post("/v1/events", "application/json", big.as_bytes());
    assert_eq!((s, b.contains("payload_too_large")), (413, true), "{b}");
    let (s, b) = post("/v1/events", "application/octet-stream", b"");
    assert_eq!((s, b.contains("empty_payload")), (400, true), "{b}");
    let (s, b) = post(
        "/v1/events",
        "application/json",
        b"{\"text\":\"a\",\"type\":7}",
    );
    assert_eq!((s, b.contains("reserved_type")), (400, true), "{b}");
    let g = format!("{{\"text\":\"a\",\"group\":\"{}\"}}", "12".repeat(32));
    let (s, b) = post("/v1/events", "application/json", g.as_bytes());
    assert_eq!((s, b.contains("unknown_group")), (404, true), "{b}");
    let (s, b) = post(
        "/v1/events",
        "application/json",
        b"{\"text\":\"a\",\"group\":\"zz\"}",
    );
    assert_eq!((s, b.contains("invalid_id")), (400, true), "{b}");
    let (s, b) = post("/v1/search", "application/json", b"{\"vector\":[1.0,2.0]}");
    assert_eq!((s, b.contains("vector_dimension")), (400, true), "{b}");
    let (s, b) = post("/v1/search", "application/json", b"{}");
    assert_eq!((s, b.contains("invalid_request")), (400, true), "{b}");
    let (s, b) = post(
        "/v1/groups/join",
        "application/json",
        b"{\"invite\":\"xfx1nope\"}",
    );
    assert_eq!((s, b.contains("offline")), (409, true), "{b}");
    let (s, b) = raw(
        &n.addr,
        &get_req(
            "/v1/nowhere",
            &n.addr,
            &format!("Authorization: Bearer {}\r\n", n.token),
        ),
        b"",
    );
    assert_eq!((s, b.contains("not_found")), (404, true), "{b}");
    let del = format!(
        "DELETE /v1/stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        n.addr, n.token
    );
    assert_eq!(raw(&n.addr, &del, b"").0, 405);
    let bad_last = format!(
        "Authorization: Bearer {}\r\nLast-Event-ID: soon\r\n",
        n.token
    );
    assert_eq!(
        raw(&n.addr, &get_req("/v1/subscribe", &n.addr, &bad_last), b"").0,
        400
    );
    // A client that sends half a body and hangs up does not hurt the server.
    {
        let mut s = TcpStream::connect(&n.addr).unwrap();
        let req = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"te",
            n.addr, n.token
        );
        s.write_all(req.as_bytes()).unwrap();
    }
    // Still serving.
    c.health().unwrap();
    assert_eq!(c.write(&text("still here")).unwrap().position, 0);
    assert_eq!(c.stats().unwrap().events, 1);
}

#[test]
fn groups_stats_search_verify_openapi() {
    let n = node();
    let c = &n.client;
    let groups = c.groups().unwrap();
    assert_eq!(groups.len(), 1);
    assert!(groups[0].default);
    let g = c.create_group().unwrap();
    assert!(!g.default);
    assert_eq!(c.groups().unwrap().len(), 2);
    c.write(&WriteRequest {
        text: Some("into the new group".into()),
        group: Some(g.id.clone()),
        ..WriteRequest::default()
    })
    .unwrap();
    let listed = c.groups().unwrap();
    let ng = listed.iter().find(|x| x.id == g.id).unwrap();
    assert_eq!((ng.logs, ng.events), (1, 1));
    // Offline: tickets need the network; no peers.
    assert_eq!(code(c.ticket(&g.id, true).unwrap_err()), "offline");
    assert!(c.peers().unwrap().is_empty());

    for t in [
        "the quick brown fox",
        "lazy dogs sleep all day",
        "a fox in the henhouse",
    ] {
        c.write(&text(t)).unwrap();
    }
    let hits = c
        .search(&SearchRequest {
            text: Some("brown foxes".into()),
            k: Some(2),
            ..SearchRequest::default()
        })
        .unwrap();
    assert_eq!(hits[0].event.text.as_deref(), Some("the quick brown fox"));
    assert!(hits.len() <= 2);

    let st = c.stats().unwrap();
    assert_eq!(st.events, 4);
    assert_eq!(st.per_class.iter().sum::<u64>(), 4);
    assert!(st.mmr_root.is_some());
    assert_eq!(st.logs.len(), 2);

    assert_eq!(code(c.verify_status().unwrap_err()), "not_found");
    let job = c.verify_start().unwrap();
    assert_eq!(job.job, 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let j = c.verify_status().unwrap();
        if j.state != "running" {
            break j;
        }
        assert!(Instant::now() < deadline, "verify did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(done.state, "ok", "{done:?}");
    assert_eq!((done.done, done.total), (4, 4));
    assert_eq!(done.logs, Some(2));

    // The OpenAPI document names every route and the problem schema.
    let mut resp = ureq::get(format!("{}/v1/openapi.json", c.base()))
        .header("Authorization", format!("Bearer {}", n.token))
        .call()
        .unwrap();
    let doc: serde_json::Value =
        serde_json::from_slice(&resp.body_mut().read_to_vec().unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/health",
        "/v1/identity",
        "/v1/events",
        "/v1/events/batch",
        "/v1/events/{id}",
        "/v1/subscribe",
        "/v1/system/events",
        "/v1/search",
        "/v1/stats",
        "/v1/verify",
        "/v1/groups",
        "/v1/groups/join",
        "/v1/groups/{id}/ticket",
        "/v1/peers",
        "/v1/peers/{endpoint}",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["EventJson"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Reconnecting with `Last-Event-ID` continues exactly after the last event received.
#[test]
fn subscribe_resumes_without_loss_or_repeats() {
    let n = node();
    let c = &n.client;
    let g2 = c.create_group().unwrap();
    for i in 0..10 {
        c.write(&text(&format!("e{i}"))).unwrap();
        c.write(&WriteRequest {
            text: Some(format!("other{i}")),
            group: Some(g2.id.clone()),
            ..WriteRequest::default()
        })
        .unwrap();
    }
    let default = c.identity().unwrap().default_group;
    let mut got = Vec::new();
    let mut last = None;
    {
        let mut s = c.subscribe(Some(&default), None, Some(-1)).unwrap();
        for _ in 0..4 {
            let e = s.next().unwrap().unwrap();
            last = Some(e.position);
            got.push(e.text.unwrap());
        }
        // Dropping the stream disconnects.
    }
    // More events while disconnected.
    for i in 10..15 {
        c.write(&text(&format!("e{i}"))).unwrap();
    }
    // Resume with the Last-Event-ID header, as EventSource does.
    let mut s = TcpStream::connect(&n.addr).unwrap();
    let req = get_req(
        &format!("/v1/subscribe?group={default}"),
        &n.addr,
        &format!(
            "Authorization: Bearer {}\r\nLast-Event-ID: {}\r\n",
            n.token,
            last.unwrap()
        ),
    );
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    while String::from_utf8_lossy(&buf).matches("\"text\":").count() < 11 {
        assert!(
            Instant::now() < deadline,
            "stream stalled: {}",
            String::from_utf8_lossy(&buf)
        );
        let k = s.read(&mut chunk).unwrap();
        assert!(k > 0, "stream closed");
        buf.extend_from_slice(&chunk[..k]);
    }
    let text_out = String::from_utf8_lossy(&buf);
    for l in text_out.lines() {
        if let Some(i) = l.find("\"text\":\"") {
            let rest = &l[i + 8..];
            got.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    let want: Vec<String> = (0..15).map(|i| format!("e{i}")).collect();
    assert_eq!(got, want);
    // The ids are positions: the resumed stream's first id follows the last one seen.
    assert!(text_out.contains(&format!("id: {}\n", last.unwrap() + 2)));
}

#[test]
fn system_events_stream_reports_flushes() {
    let n = node();
    let mut s = TcpStream::connect(&n.addr).unwrap();
    let req = get_req(
        "/v1/system/events",
        &n.addr,
        &format!("Authorization: Bearer {}\r\n", n.token),
    );
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The stream is established once the headers arrive.
    while !String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
        let k = s.read(&mut chunk).unwrap();
        assert!(k > 0);
        buf.extend_from_slice(&chunk[..k]);
    }
    assert!(String::from_utf8_lossy(&buf).contains("text/event-stream"));
    // A batch write flushes the store (a single write waits for its own commit only).
    n.client.write_batch(b"{\"text\":\"flush me\"}\n").unwrap();
    // Keep-alive comments would keep a broken stream reading forever: a hang guard.
    let give_up = std::time::Instant::now() + Duration::from_secs(120);
    while !String::from_utf8_lossy(&buf).contains("\"kind\":\"flush_completed\"") {
        assert!(std::time::Instant::now() < give_up, "no flush_completed");
        let k = s.read(&mut chunk).unwrap();
        assert!(k > 0, "stream closed");
        buf.extend_from_slice(&chunk[..k]);
    }
    drop(n.server);
}
