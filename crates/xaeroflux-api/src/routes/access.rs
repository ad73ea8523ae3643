//! `/v1/access`: group access control (members, roles, invites, epoch keys). The
//! operations are in [`crate::access`]; rules in `docs/FORMAT.md` ("Group access
//! control").

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppState, blocking, body, json};
use crate::access::{AccessRequest, AccessResponse, InviteJson, KeyJson, MembersJson};
use crate::problem::{ApiError, Problem};

/// Which group.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GroupQuery {
    /// The group (default: the node's default group).
    group: Option<String>,
}

/// This node's public key (what an admin's `add` takes) and DID.
#[utoipa::path(get, path = "/v1/access/key", tag = "access",
    responses((status = 200, body = KeyJson), (status = 401, body = Problem)))]
pub(crate) async fn key(State(st): State<AppState>) -> Json<KeyJson> {
    Json(crate::access::key(&st.store))
}

/// The current members of a group under access control, with their roles.
#[utoipa::path(get, path = "/v1/access/members", tag = "access", params(GroupQuery),
    responses((status = 200, body = MembersJson), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "not under access control")))]
pub(crate) async fn members(
    State(st): State<AppState>,
    Query(q): Query<GroupQuery>,
) -> Result<Json<MembersJson>, ApiError> {
    let store = st.store.clone();
    blocking(move || crate::access::members(&store, q.group.as_deref()).map(Json)).await
}

/// The invites this node issued for a group, with their state.
#[utoipa::path(get, path = "/v1/access/invites", tag = "access", params(GroupQuery),
    responses((status = 200, body = Vec<InviteJson>), (status = 401, body = Problem),
        (status = 404, body = Problem)))]
pub(crate) async fn invites(
    State(st): State<AppState>,
    Query(q): Query<GroupQuery>,
) -> Result<Json<Vec<InviteJson>>, ApiError> {
    let store = st.store.clone();
    blocking(move || crate::access::invites(&store, q.group.as_deref()).map(Json)).await
}

type Op = fn(&xaeroflux::XaeroFlux, &AccessRequest) -> Result<AccessResponse, ApiError>;

async fn change(
    st: AppState,
    b: Result<Bytes, BytesRejection>,
    op: Op,
) -> Result<Json<AccessResponse>, ApiError> {
    let req: AccessRequest = json(&body(b)?)?;
    let store = st.store.clone();
    blocking(move || op(&store, &req).map(Json)).await
}

macro_rules! change_route {
    ($name:ident, $path:literal, $op:path, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "access", request_body = AccessRequest,
                    responses((status = 200, body = AccessResponse), (status = 400, body = Problem),
                        (status = 401, body = Problem),
                        (status = 403, body = Problem, description = "the membership refused it"),
                        (status = 404, body = Problem, description = "not under access control")))]
        pub(crate) async fn $name(
            State(st): State<AppState>,
            b: Result<Bytes, BytesRejection>,
        ) -> Result<Json<AccessResponse>, ApiError> {
            change(st, b, $op).await
        }
    };
}

change_route!(
    control,
    "/v1/access/control",
    crate::access::control,
    "Puts a group under access control with this node as owner (and a first epoch key)."
);
change_route!(
    add,
    "/v1/access/members",
    crate::access::add,
    "Adds a member by public key (`key`) with a `role`."
);
change_route!(
    remove,
    "/v1/access/members/remove",
    crate::access::remove,
    "Removes a `member` (its later events are refused) and rotates the epoch key."
);
change_route!(
    role,
    "/v1/access/members/role",
    crate::access::set_role,
    "Sets a `member`'s `role` from its next event on."
);
change_route!(
    invite,
    "/v1/access/invites",
    crate::access::invite,
    "Signs an invite for a `role`, valid `expires_in_ms`, optionally `single_use`."
);
change_route!(
    revoke,
    "/v1/access/invites/revoke",
    crate::access::revoke,
    "Revokes an unused invite by id (`invite`, 32 hex digits)."
);
change_route!(
    redeem,
    "/v1/access/redeem",
    crate::access::redeem,
    "Redeems an invite string (`invite`, `xfi1...`): follows the group and joins it."
);
change_route!(
    rotate,
    "/v1/access/rotate",
    crate::access::rotate,
    "Seals a new epoch key to every current member."
);
change_route!(
    share,
    "/v1/access/share",
    crate::access::share,
    "Seals the current epoch key to members that miss it (joined since the last rotation)."
);
