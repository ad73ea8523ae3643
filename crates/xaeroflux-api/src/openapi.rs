//! The OpenAPI 3.1 document, generated from the route and model types.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{access, blobs, events, node, state, stream};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "XaeroFlux node API",
        description = "The local HTTP API of a XaeroFlux node: write, read and follow events; \
                       records, relations and collaborative documents; groups, peers, \
                       search, stats and verification. Errors are RFC 9457 problem \
                       documents with a stable `code`."
    ),
    paths(
        node::health, node::identity, node::stats, node::verify_start, node::verify_status,
        node::search, node::groups, node::create_group, node::join, node::ticket, node::peers,
        node::connect, node::forget, events::write, events::batch, events::get, events::query,
        stream::subscribe, stream::system, state::scan, state::get_record, state::put_record,
        state::patch_record, state::delete_record, state::links, state::link, state::state_root,
        state::list_docs, state::get_doc, state::get_text, state::edit_text,
        access::key, access::members, access::invites, access::control, access::add,
        access::remove, access::role, access::invite, access::revoke, access::redeem,
        access::rotate, access::share, blobs::upload, blobs::list, blobs::info, blobs::download,
        blobs::fetch
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "events", description = "Write and read events"),
        (name = "streams", description = "Server-Sent Events"),
        (name = "groups", description = "Groups this node syncs"),
        (name = "peers", description = "Peers this node syncs with"),
        (name = "node", description = "Identity, stats, verification, search"),
        (name = "state", description = "Records, relations and the state root"),
        (name = "documents", description = "Collaborative documents"),
        (name = "access", description = "Group access control: members, roles, invites, epoch keys"),
        (name = "blobs", description = "Large payloads referenced by attachment events")
    )
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the token in DATA_DIR/api.token"))
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /v1/openapi.json`.
pub(crate) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
