//! The `/v1/access` routes over a real listener: control, members, add, role, remove,
//! invites (create, list, revoke, redeem on a second node), rotate, share; errors as
//! problems; every route in the OpenAPI document.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use xaeroflux::XaeroFlux;
use xaeroflux_api::access::{AccessRequest, decode_invite};
use xaeroflux_api::{ApiOptions, ApiServer, Client, ClientError};

struct Node {
    server: Option<ApiServer>,
    client: Client,
    store: Arc<XaeroFlux>,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open().unwrap());
    let token = xaeroflux_api::load_or_create_token(dir.path()).unwrap();
    let server = ApiServer::start(
        store.clone(),
        &"127.0.0.1:0".parse().unwrap(),
        ApiOptions::new(&token),
    )
    .unwrap();
    let url = server.url().unwrap();
    Node {
        client: Client::new(&url, &token),
        server: Some(server),
        store,
        _dir: dir,
    }
}

fn code(e: ClientError) -> String {
    e.code().unwrap_or("none").to_string()
}

fn req() -> AccessRequest {
    AccessRequest::default()
}

#[test]
fn members_roles_invites_and_keys_over_the_api() {
    let (a, b) = (node(), node());
    let c = &a.client;
    // Not under access control yet: 404 not_controlled.
    assert_eq!(code(c.access_members(None).unwrap_err()), "not_controlled");
    let r = c.access("control", &req()).unwrap();
    assert_eq!(r.epoch, 1);
    let m = c.access_members(None).unwrap();
    assert_eq!(m.members.len(), 1);
    assert_eq!(m.members[0].role, "owner");
    assert!(m.members[0].you);

    // Add B by key as reader, promote, then a refused grant and bad input.
    let key = b.client.access_key().unwrap();
    assert_eq!(key.key.len(), 898 * 2);
    let add = AccessRequest {
        key: Some(key.key.clone()),
        role: Some("reader".into()),
        ..req()
    };
    c.access("members", &add).unwrap();
    let role_of = |did: &str| {
        c.access_members(None)
            .unwrap()
            .members
            .into_iter()
            .find(|m| m.id == did)
            .map(|m| m.role)
    };
    assert_eq!(role_of(&key.id).as_deref(), Some("reader"));
    let promote = AccessRequest {
        member: Some(key.id.clone()),
        role: Some("writer".into()),
        ..req()
    };
    c.access("members/role", &promote).unwrap();
    assert_eq!(role_of(&key.id).as_deref(), Some("writer"));
    let owner = AccessRequest {
        role: Some("owner".into()),
        ..promote.clone()
    };
    assert_eq!(
        code(c.access("members/role", &owner).unwrap_err()),
        "invalid_request"
    );
    assert_eq!(
        code(c.access("members", &req()).unwrap_err()),
        "invalid_request"
    );
    let bad_group = AccessRequest {
        group: Some("zz".into()),
        ..req()
    };
    assert_eq!(
        code(c.access("rotate", &bad_group).unwrap_err()),
        "invalid_request"
    );

    // Remove: a new epoch.
    let remove = AccessRequest {
        member: Some(key.id.clone()),
        ..req()
    };
    let r = c.access("members/remove", &remove).unwrap();
    assert_eq!(r.epoch, 2);
    assert_eq!(role_of(&key.id), None);
    assert_eq!(c.access("rotate", &req()).unwrap().epoch, 3);
    assert!(c.access("share", &req()).unwrap().detail.contains("0 more"));

    // Invites: create two, list, revoke one.
    let inv = |role: &str, once: bool| AccessRequest {
        role: Some(role.into()),
        expires_in_ms: Some(3_600_000),
        single_use: once,
        ..req()
    };
    let w = c
        .access("invites", &inv("writer", true))
        .unwrap()
        .invite
        .unwrap();
    let r = c
        .access("invites", &inv("reader", false))
        .unwrap()
        .invite
        .unwrap();
    let (_, w_inv) = decode_invite(&w).unwrap();
    let (_, r_inv) = decode_invite(&r).unwrap();
    let list = c.access_invites(None).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|i| i.status == "open"));
    let revoke = AccessRequest {
        invite: Some(data_encoding::HEXLOWER.encode(&r_inv.id())),
        ..req()
    };
    c.access("invites/revoke", &revoke).unwrap();
    let list = c.access_invites(None).unwrap();
    let st = |id: [u8; 16]| {
        let h = data_encoding::HEXLOWER.encode(&id);
        list.iter().find(|i| i.id == h).unwrap().status.clone()
    };
    assert_eq!(st(r_inv.id()), "revoked");
    assert_eq!(st(w_inv.id()), "open");
    assert_eq!(list.iter().find(|i| i.status == "open").unwrap().invite, w);

    // Redeem on B (the group must be one of B's groups: join A's group secret first).
    let g = a.store.default_group();
    let secret = a.store.group(&g).unwrap().unwrap();
    b.store.join_group(secret.secret().clone()).unwrap();
    let redeem = AccessRequest {
        invite: Some(w.clone()),
        ..req()
    };
    let out = b.client.access("redeem", &redeem).unwrap();
    assert_eq!(out.group, g.to_string());
    assert!(out.detail.contains("as writer"), "{}", out.detail);
    // B now follows the group (its members are known once A's ops arrive by sync) and
    // its own log holds the Join and its KEM key.
    let bm = b.client.access_members(Some(&g.to_string())).unwrap();
    assert_eq!(bm.group, g.to_string());
    let mut sub = b.store.subscribe(
        xaeroflux::Filter::all()
            .group(g)
            .event_type(16)
            .start(xaeroflux::Start::Beginning),
    );
    let mut ops = 0;
    while let Some(e) = sub.try_next().unwrap() {
        assert_eq!(e.event.header.author.0, *b.store.identity().id().as_bytes());
        ops += 1;
    }
    assert_eq!(ops, 2);
    assert_eq!(
        code(
            b.client
                .access(
                    "redeem",
                    &AccessRequest {
                        invite: Some("xfi1zz".into()),
                        ..req()
                    }
                )
                .unwrap_err()
        ),
        "invalid_request"
    );
}

#[test]
fn every_access_route_is_in_the_openapi_document() {
    let doc = serde_json::to_value(xaeroflux_api::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/access/key",
        "/v1/access/members",
        "/v1/access/members/remove",
        "/v1/access/members/role",
        "/v1/access/invites",
        "/v1/access/invites/revoke",
        "/v1/access/control",
        "/v1/access/redeem",
        "/v1/access/rotate",
        "/v1/access/share",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(paths["/v1/access/members"]["get"].is_object());
    assert!(paths["/v1/access/members"]["post"].is_object());
    assert!(doc["components"]["schemas"]["AccessRequest"].is_object());
}

#[test]
fn events_of_an_encrypted_group_are_read_as_plaintext() {
    let a = node();
    a.client.access("control", &req()).unwrap();
    let w = a
        .client
        .write(&xaeroflux_api::model::WriteRequest {
            text: Some("team secret".into()),
            base64: None,
            event_type: Some(1000),
            group: None,
        })
        .unwrap();
    // Stored sealed.
    let id = xaeroflux::EventId::from_hex(&w.id).unwrap();
    let raw = a.store.engine().get(&id).unwrap().unwrap();
    assert_ne!(&raw.payload[..], b"team secret");
    // Read back decrypted, by id and by query.
    let e = a.client.get(&w.id, false).unwrap().unwrap();
    assert_eq!(e.text.as_deref(), Some("team secret"));
    let q = a
        .client
        .query(&xaeroflux_api::model::QueryParams {
            event_type: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(q.events.len(), 1);
    assert_eq!(q.events[0].text.as_deref(), Some("team secret"));
}
