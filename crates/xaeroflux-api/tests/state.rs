//! The app-state routes over a real listener on 127.0.0.1: records, relations, the
//! state root and documents, the answers the libraries give, bad input, and the
//! routes of a node without views.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as J, json};
use xaeroflux::XaeroFlux;
use xaeroflux_api::{ApiOptions, ApiServer};
use xaeroflux_docs::{Docs, DocsConfig};
use xaeroflux_views::{Value, Views, ViewsConfig};

struct Node {
    server: Option<ApiServer>,
    views: Arc<Views>,
    docs: Arc<Docs>,
    store: Arc<XaeroFlux>,
    token: String,
    addr: String,
    _dir: tempfile::TempDir,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open().unwrap());
    let views =
        Arc::new(Views::open(store.clone(), ViewsConfig::new(dir.path().join("views"))).unwrap());
    let docs =
        Arc::new(Docs::open(store.clone(), DocsConfig::new(dir.path().join("docs"))).unwrap());
    let token = xaeroflux_api::load_or_create_token(dir.path()).unwrap();
    let mut opts = ApiOptions::new(&token);
    opts.views = Some(views.clone());
    opts.docs = Some(docs.clone());
    let server = ApiServer::start(store.clone(), &"127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let addr = server
        .url()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    Node {
        server: Some(server),
        views,
        docs,
        store,
        token,
        addr,
        _dir: dir,
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// One request with the token; returns (status, JSON body or Null).
fn call(n: &Node, method: &str, path: &str, body: Option<J>) -> (u16, J) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(&n.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        n.addr,
        n.token,
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(J::Null))
}

#[test]
fn records_relations_and_the_state_root() {
    let n = node();
    let card = json!({"fields": {"title": "Write docs", "points": 3, "tags": ["a", "b"],
        "blob": {"$bytes": "AAE="}}});
    let (s, r) = call(&n, "PUT", "/v1/records/cards/c1", Some(card));
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["id"].as_str().unwrap().len(), 64);
    let (s, _) = call(
        &n,
        "PUT",
        "/v1/records/cards/c2",
        Some(json!({"fields": {"title": "Review"}})),
    );
    assert_eq!(s, 201);
    // Patch: set one field, unset another.
    let (s, _) = call(
        &n,
        "PATCH",
        "/v1/records/cards/c1",
        Some(json!({"fields": {"done": true, "points": null}})),
    );
    assert_eq!(s, 201);
    let (s, r) = call(&n, "GET", "/v1/records/cards/c1", None);
    assert_eq!(s, 200);
    assert_eq!(
        r["fields"],
        json!({"title": "Write docs", "tags": ["a", "b"], "done": true,
            "blob": {"$bytes": "AAE="}})
    );
    // The library sees the same record.
    let g = n.store.default_group();
    let lib = n.views.get(&g, ("cards", "c1")).unwrap().unwrap();
    assert_eq!(lib["blob"], Value::Bytes(vec![0, 1]));
    assert_eq!(lib["done"], Value::Bool(true));

    let mut last_link = String::new();
    for c in ["c1", "c2"] {
        let (s, r) = call(
            &n,
            "POST",
            "/v1/links",
            Some(
                json!({"from": {"collection": "cards", "key": c}, "rel": "on",
                "to": {"collection": "boards", "key": "b1"}}),
            ),
        );
        assert_eq!(s, 201);
        last_link = r["id"].as_str().unwrap().to_string();
    }
    let (s, r) = call(&n, "GET", "/v1/records/boards/b1/links", None);
    assert_eq!(s, 200);
    assert_eq!(r["to"].as_array().unwrap().len(), 2);
    assert_eq!(r["to"][0]["other"]["key"], "c1");

    // Paging: one per page, then the next.
    let (s, r) = call(&n, "GET", "/v1/records/cards?limit=1", None);
    assert_eq!(s, 200);
    assert_eq!(r["records"].as_array().unwrap().len(), 1);
    assert_eq!(r["next"], "c1");
    let (_, r) = call(&n, "GET", "/v1/records/cards?limit=1&after=c1", None);
    assert_eq!(r["records"][0]["key"], "c2");
    assert!(r.get("next").is_none());

    // Delete: gone, and its board membership with it; as of before the delete, it
    // was on the board.
    let before = {
        let id = xaeroflux::EventId::from_hex(&last_link).unwrap();
        let snap = n.store.read().unwrap();
        snap.get(&id).unwrap().unwrap().event.header.hlc.as_u64()
    };
    let (s, _) = call(&n, "DELETE", "/v1/records/cards/c2", None);
    assert_eq!(s, 201);
    assert_eq!(call(&n, "GET", "/v1/records/cards/c2", None).0, 404);
    let (_, r) = call(&n, "GET", "/v1/records/boards/b1/links", None);
    assert_eq!(r["to"].as_array().unwrap().len(), 1);
    let (_, r) = call(
        &n,
        "GET",
        &format!("/v1/records/boards/b1/links?as_of={before}"),
        None,
    );
    assert_eq!(r["to"].as_array().unwrap().len(), 2, "{r}");

    let (s, r) = call(&n, "GET", "/v1/state-root", None);
    assert_eq!(s, 200);
    assert_eq!(
        r["root"].as_str().unwrap(),
        xaeroflux_core_hex(&n.views.state_root(&g).unwrap())
    );

    // Bad input: an unknown group, a bad name, broken JSON.
    let (s, r) = call(
        &n,
        "GET",
        &format!("/v1/state-root?group={}", "ab".repeat(32)),
        None,
    );
    assert_eq!((s, r["code"].as_str()), (404, Some("unknown_group")));
    let (s, r) = call(
        &n,
        "PUT",
        &format!("/v1/records/cards/{}", "k".repeat(200)),
        Some(json!({"fields": {}})),
    );
    assert_eq!((s, r["code"].as_str()), (400, Some("invalid_record")));
    let (s, _) = call(
        &n,
        "PATCH",
        "/v1/records/cards/c1",
        Some(json!({"nope": 1})),
    );
    assert_eq!(s, 400);
}

fn xaeroflux_core_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn documents_are_edited_and_read() {
    let n = node();
    let path = "/v1/docs/notes%2Fshared/text";
    let (s, r) = call(&n, "POST", path, Some(json!({"insert": "hello"})));
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["id"].as_str().unwrap().len(), 64);
    let (s, _) = call(&n, "POST", path, Some(json!({"insert": " world"})));
    assert_eq!(s, 201);
    let (s, _) = call(
        &n,
        "POST",
        path,
        Some(json!({"at": 0, "delete": 5, "insert": "HELLO"})),
    );
    assert_eq!(s, 201);
    let (s, r) = call(
        &n,
        "POST",
        path,
        Some(json!({"container": "title", "insert": "Standup"})),
    );
    assert_eq!(s, 201, "{r}");
    // Nothing to change: no event.
    let (s, r) = call(&n, "POST", path, Some(json!({})));
    assert_eq!(s, 201);
    assert!(r.get("id").is_none());

    let (s, r) = call(&n, "GET", path, None);
    assert_eq!((s, r["text"].as_str()), (200, Some("HELLO world")));
    let (s, r) = call(&n, "GET", "/v1/docs/notes%2Fshared", None);
    assert_eq!(s, 200);
    assert_eq!(
        r["value"],
        json!({"body": "HELLO world", "title": "Standup"})
    );
    assert_eq!(r["info"]["updates"], 4);
    let (_, r) = call(&n, "GET", "/v1/docs", None);
    assert_eq!(r["docs"][0]["name"], "notes/shared");
    // The library reads the same document.
    let g = n.store.default_group();
    assert_eq!(
        n.docs.text(&g, "notes/shared", "body").unwrap().as_deref(),
        Some("HELLO world")
    );

    let (s, r) = call(&n, "POST", path, Some(json!({"at": 99, "insert": "x"})));
    assert_eq!((s, r["code"].as_str()), (400, Some("invalid_edit")));
    assert_eq!(call(&n, "GET", "/v1/docs/none", None).0, 404);
    assert_eq!(call(&n, "GET", "/v1/docs/none/text", None).0, 404);
}

#[test]
fn a_node_without_views_says_so_and_openapi_lists_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open().unwrap());
    let token = xaeroflux_api::load_or_create_token(dir.path()).unwrap();
    let server = ApiServer::start(
        store.clone(),
        &"127.0.0.1:0".parse().unwrap(),
        ApiOptions::new(&token),
    )
    .unwrap();
    let addr = server
        .url()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    // Borrow the helper's shape with a node that has views, but call this server.
    let other = node();
    let plain = Node {
        server: None,
        views: other.views.clone(),
        docs: other.docs.clone(),
        store: store.clone(),
        token,
        addr,
        _dir: tempfile::tempdir().unwrap(),
    };
    for (m, p) in [
        ("GET", "/v1/records/cards/c1"),
        ("GET", "/v1/state-root"),
        ("GET", "/v1/docs"),
        ("GET", "/v1/docs/n/text"),
    ] {
        let (s, r) = call(&plain, m, p, None);
        assert_eq!((s, r["code"].as_str()), (404, Some("views_off")), "{p}");
    }
    let (s, doc) = call(&plain, "GET", "/v1/openapi.json", None);
    assert_eq!(s, 200);
    for p in [
        "/v1/records/{collection}",
        "/v1/records/{collection}/{key}",
        "/v1/records/{collection}/{key}/links",
        "/v1/links",
        "/v1/state-root",
        "/v1/docs",
        "/v1/docs/{name}",
        "/v1/docs/{name}/text",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} not in the OpenAPI document"
        );
    }
    assert!(
        doc["paths"]["/v1/records/{collection}/{key}"]
            .get("patch")
            .is_some()
    );
    server.shutdown();
}
