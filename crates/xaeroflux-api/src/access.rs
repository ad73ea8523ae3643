//! Group access control through the API: the documents of the `/v1/access` routes,
//! the operations behind them (also run by the CLI on a store it holds itself), the
//! access invite string, and the client calls.
//!
//! An access invite is printed as `xfi1` + lowercase base32 of `owner id [32] | invite
//! [760]` (the invite format is in `docs/FORMAT.md`); the invitee redeems it after
//! joining the group's ticket, whose group secret still keys the handshake MAC.

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xaeroflux::access_control::{Invite, InviteStatus, Role};
use xaeroflux::{AccessError, GroupId, IdHash, XaeroFlux, XaeroID};

use crate::model::hex;
use crate::problem::ApiError;

/// Prefix of an access invite string.
pub const INVITE_PREFIX: &str = "xfi1";

/// A member and its role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberJson {
    /// The member's DID (`did:xaero:...`).
    pub id: String,
    /// owner, admin, writer or reader.
    pub role: String,
    /// Whether it is this node.
    pub you: bool,
}

/// The members of a group under access control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MembersJson {
    /// The group.
    pub group: String,
    /// Its current members.
    pub members: Vec<MemberJson>,
    /// The current epoch number (0: not encrypted yet).
    pub epoch: u32,
}

/// An invite this node issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InviteJson {
    /// Invite id (32 hex digits).
    pub id: String,
    /// Role it grants.
    pub role: String,
    /// Expiry, Unix milliseconds.
    pub expires_ms: u64,
    /// Whether it admits one joiner only.
    pub single_use: bool,
    /// open, used or revoked.
    pub status: String,
    /// The invite string to hand out (`xfi1...`).
    pub invite: String,
}

/// A change of membership (which fields are needed depends on the route).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessRequest {
    /// The group (default: the node's default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Add: the member's public key (hex of its XaeroID, as `group key` prints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Remove / role: the member (DID or 64 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Add / role / invite: reader, writer or admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Invite: valid for this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// Invite: single use.
    #[serde(default)]
    pub single_use: bool,
    /// Redeem: the invite string; revoke: the invite id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessResponse {
    /// The group.
    pub group: String,
    /// A sentence for people.
    pub detail: String,
    /// The current epoch after the change.
    pub epoch: u32,
    /// Invite: the invite string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// This node's public key, as `add` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyJson {
    /// Hex of the XaeroID (FN-DSA-512 public key).
    pub key: String,
    /// Its DID.
    pub id: String,
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        use axum::http::StatusCode;
        let detail = e.to_string();
        match e {
            AccessError::Store(s) => s.into(),
            AccessError::NotControlled { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_controlled", detail)
            }
            AccessError::UnknownGroup { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_group", detail)
            }
            AccessError::Refused { .. } => ApiError::new(StatusCode::FORBIDDEN, "refused", detail),
            AccessError::Encode(_) | AccessError::Open(_) => {
                ApiError::bad_request("access_failed", detail)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail),
        }
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_request", format!("{what}: {e}"))
}

fn group(store: &XaeroFlux, g: Option<&str>) -> Result<GroupId, ApiError> {
    match g {
        None => Ok(store.default_group()),
        Some(h) => GroupId::from_hex(h).map_err(|e| bad("group id", e)),
    }
}

fn need<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, ApiError> {
    v.as_deref()
        .ok_or_else(|| ApiError::bad_request("invalid_request", format!("{what} is required")))
}

/// Parses a member given as a DID or 64 hex digits.
pub fn member_id(s: &str) -> Result<IdHash, ApiError> {
    if s.starts_with("did:") {
        return IdHash::from_did(s).map_err(|e| bad("member DID", e));
    }
    GroupId::from_hex(s)
        .map(|g| IdHash(g.0))
        .map_err(|e| bad("member id (DID or 64 hex digits)", e))
}

/// Parses reader, writer or admin.
pub fn parse_role(s: &str) -> Result<Role, ApiError> {
    s.parse()
        .map_err(|_| bad("role", "must be reader, writer or admin"))
}

/// The invite string of `inv` for a group owned by `owner`.
pub fn encode_invite(owner: &IdHash, inv: &Invite) -> String {
    let mut b = owner.0.to_vec();
    b.extend_from_slice(inv.as_bytes());
    format!("{INVITE_PREFIX}{}", BASE32_NOPAD.encode(&b).to_lowercase())
}

/// Parses an invite string into the group's owner and the invite.
pub fn decode_invite(s: &str) -> Result<(IdHash, Invite), ApiError> {
    let body = s
        .trim()
        .strip_prefix(INVITE_PREFIX)
        .ok_or_else(|| bad("access invite", "it starts with xfi1"))?;
    let b = BASE32_NOPAD
        .decode(body.to_uppercase().as_bytes())
        .map_err(|e| bad("access invite encoding", e))?;
    let (owner, inv) = b
        .split_first_chunk::<32>()
        .ok_or_else(|| bad("access invite", "too short"))?;
    let inv = Invite::decode(inv).map_err(|e| bad("access invite", e))?;
    Ok((IdHash(*owner), inv))
}

fn epoch(store: &XaeroFlux, g: &GroupId) -> u32 {
    store
        .access_control()
        .with(g, |m| m.current_epoch().map_or(0, |e| e.epoch))
        .unwrap_or(0)
}

fn done(store: &XaeroFlux, g: &GroupId, detail: String) -> AccessResponse {
    AccessResponse {
        group: g.to_string(),
        detail,
        epoch: epoch(store, g),
        invite: None,
    }
}

fn owner(store: &XaeroFlux, g: &GroupId) -> Result<IdHash, ApiError> {
    Ok(store
        .access_control()
        .with(g, |m| m.owner())
        .ok_or(AccessError::NotControlled { group: *g })?)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `GET /v1/access/key`.
pub fn key(store: &XaeroFlux) -> KeyJson {
    let id = store.identity();
    KeyJson {
        key: hex(id.as_bytes()),
        id: id.to_did(),
    }
}

/// `GET /v1/access/members`.
pub fn members(store: &XaeroFlux, g: Option<&str>) -> Result<MembersJson, ApiError> {
    let g = group(store, g)?;
    let me = store.identity().id();
    let members = store
        .access_members(&g)?
        .into_iter()
        .map(|(m, r)| MemberJson {
            id: m.to_did(),
            role: r.to_string(),
            you: m == me,
        })
        .collect();
    Ok(MembersJson {
        group: g.to_string(),
        members,
        epoch: epoch(store, &g),
    })
}

/// `POST /v1/access/control`.
pub fn control(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    store.access_create(&g)?;
    Ok(done(
        store,
        &g,
        format!("group {g} is under access control; you are its owner"),
    ))
}

/// `POST /v1/access/members`: adds a member by public key.
pub fn add(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    let raw = data_encoding::HEXLOWER_PERMISSIVE
        .decode(need(&req.key, "key")?.trim().as_bytes())
        .map_err(|e| bad("public key (hex of the XaeroID)", e))?;
    let id = XaeroID::from_bytes(&raw).map_err(|e| bad("public key", e))?;
    let role = need(&req.role, "role")?;
    store.access_add(&g, &id, parse_role(role)?)?;
    Ok(done(store, &g, format!("added {} as {role}", id.to_did())))
}

/// `POST /v1/access/members/remove`: removes a member and rotates the epoch key.
pub fn remove(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    let m = member_id(need(&req.member, "member")?)?;
    store.access_remove(&g, &m)?;
    Ok(done(
        store,
        &g,
        format!(
            "removed {}; a new epoch key is sealed to the others",
            m.to_did()
        ),
    ))
}

/// `POST /v1/access/members/role`.
pub fn set_role(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    let m = member_id(need(&req.member, "member")?)?;
    let role = need(&req.role, "role")?;
    store.access_set_role(&g, &m, parse_role(role)?)?;
    Ok(done(store, &g, format!("{} is now {role}", m.to_did())))
}

/// `GET /v1/access/invites`: the invites this node issued.
pub fn invites(store: &XaeroFlux, g: Option<&str>) -> Result<Vec<InviteJson>, ApiError> {
    let g = group(store, g)?;
    let owner = owner(store, &g)?;
    Ok(store
        .access_invites(&g)?
        .into_iter()
        .map(|(i, s)| InviteJson {
            id: hex(&i.id()),
            role: i.role().to_string(),
            expires_ms: i.expires_ms(),
            single_use: i.single_use(),
            status: match s {
                InviteStatus::Open => "open",
                InviteStatus::Used => "used",
                InviteStatus::Revoked => "revoked",
            }
            .into(),
            invite: encode_invite(&owner, &i),
        })
        .collect())
}

/// `POST /v1/access/invites`: signs an invite.
pub fn invite(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    let role = parse_role(need(&req.role, "role")?)?;
    let ttl = req
        .expires_in_ms
        .ok_or_else(|| bad("expires_in_ms", "is required"))?;
    let inv = store.access_invite(&g, role, now_ms().saturating_add(ttl), req.single_use)?;
    let s = encode_invite(&owner(store, &g)?, &inv);
    let mut r = done(store, &g, format!("invite {} as {role}", hex(&inv.id())));
    r.invite = Some(s);
    Ok(r)
}

/// `POST /v1/access/invites/revoke`: revokes an unused invite by id.
pub fn revoke(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    let id = need(&req.invite, "invite")?;
    let raw = data_encoding::HEXLOWER_PERMISSIVE
        .decode(id.trim().as_bytes())
        .map_err(|e| bad("invite id", e))?;
    let id: [u8; 16] = raw
        .try_into()
        .map_err(|_| bad("invite id", "32 hex digits"))?;
    store.access_revoke_invite(&g, id)?;
    Ok(done(store, &g, format!("revoked invite {}", hex(&id))))
}

/// `POST /v1/access/redeem`: joins with an invite string.
pub fn redeem(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let (owner, inv) = decode_invite(need(&req.invite, "invite")?)?;
    store.access_join(&inv, owner)?;
    Ok(done(
        store,
        &inv.group(),
        format!(
            "joined group {} as {} (admitted once the owner's peers see it)",
            inv.group(),
            inv.role()
        ),
    ))
}

/// `POST /v1/access/rotate`: a new epoch key sealed to every current member.
pub fn rotate(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    store.access_rotate(&g)?;
    let mut r = done(store, &g, String::new());
    r.detail = format!("epoch {} sealed to every member with a KEM key", r.epoch);
    Ok(r)
}

/// `POST /v1/access/share`: the current epoch key to members that miss it.
pub fn share(store: &XaeroFlux, req: &AccessRequest) -> Result<AccessResponse, ApiError> {
    let g = group(store, req.group.as_deref())?;
    let n = store.access_share_keys(&g)?;
    Ok(done(
        store,
        &g,
        format!("current epoch key sealed to {n} more member(s)"),
    ))
}

#[cfg(feature = "client")]
impl crate::Client {
    /// `GET /v1/access/key`.
    pub fn access_key(&self) -> Result<KeyJson, crate::ClientError> {
        self.get_json("/v1/access/key")
    }

    /// `GET /v1/access/members`.
    pub fn access_members(&self, group: Option<&str>) -> Result<MembersJson, crate::ClientError> {
        self.get_json(&format!("/v1/access/members{}", group_q(group)))
    }

    /// `GET /v1/access/invites`.
    pub fn access_invites(
        &self,
        group: Option<&str>,
    ) -> Result<Vec<InviteJson>, crate::ClientError> {
        self.get_json(&format!("/v1/access/invites{}", group_q(group)))
    }

    /// A `POST /v1/access/{what}` change: `control`, `members`, `members/remove`,
    /// `members/role`, `invites`, `invites/revoke`, `redeem`, `rotate` or `share`.
    pub fn access(
        &self,
        what: &str,
        req: &AccessRequest,
    ) -> Result<AccessResponse, crate::ClientError> {
        self.post_json(&format!("/v1/access/{what}"), req)
    }
}

#[cfg(feature = "client")]
fn group_q(group: Option<&str>) -> String {
    group.map_or_else(String::new, |g| format!("?group={g}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_strings_round_trip_and_bad_ones_are_errors() {
        let kp = xaeroflux::XaeroKeypair::generate_from_seed(&[3; 32]);
        let inv = Invite::sign(&kp, GroupId([1; 32]), [2; 16], Role::Reader, 5, true).unwrap();
        let s = encode_invite(&kp.id(), &inv);
        let (owner, back) = decode_invite(&s).unwrap();
        assert_eq!(owner, kp.id());
        assert_eq!(back, inv);
        for bad in [
            "",
            "xfi1",
            "xfi1aaaa",
            "xfx1abc",
            &s[..s.len() - 3],
            &s[..40],
        ] {
            assert!(decode_invite(bad).is_err(), "{bad:?}");
        }
    }
}
