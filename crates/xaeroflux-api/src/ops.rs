//! The operations behind the routes, on a store in this process. The HTTP handlers
//! call these, and so does the CLI when it holds the store itself, so both print the
//! same documents.

use xaeroflux::{EventId, GroupId, XaeroFlux};

use crate::model::{
    BatchResponse, EventJson, GroupJson, IdentityJson, LogJson, PeerJson, QueryParams,
    QueryResponse, StatsJson, WriteRequest, WriteResponse, hex,
};
use crate::problem::ApiError;
use crate::routes::events;

/// Writes one event: durable on return (it waits for this event's commit only).
pub fn write(store: &XaeroFlux, req: WriteRequest) -> Result<WriteResponse, ApiError> {
    let i = events::input(store, req)?;
    let (id, position) = store.write_event_durable(i.group, &i.payload, i.event_type)?;
    Ok(WriteResponse {
        id: id.to_string(),
        position,
    })
}

/// Writes NDJSON lines of [`WriteRequest`]s: all checked first, then written and
/// flushed once.
pub fn write_batch(store: &XaeroFlux, ndjson: &[u8]) -> Result<BatchResponse, ApiError> {
    events::batch_lines(store, ndjson)
}

/// One event, with its checked Merkle proof if `proof`.
pub fn get(store: &XaeroFlux, id: &EventId, proof: bool) -> Result<Option<EventJson>, ApiError> {
    events::get_event(store, id, proof)
}

/// One page of events in local order.
pub fn query(store: &XaeroFlux, q: &QueryParams) -> Result<QueryResponse, ApiError> {
    events::run_query(store, q)
}

/// Identity and endpoint.
pub fn identity(s: &XaeroFlux) -> IdentityJson {
    let addr = s.node_addr().ok();
    IdentityJson {
        did: s.identity().to_did(),
        short: s.author().short(),
        author: s.author().to_string(),
        default_group: s.default_group().to_string(),
        online: s.is_online(),
        endpoint: addr.as_ref().map(|a| hex(&a.endpoint)),
        addrs: addr
            .map(|a| a.addrs.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
    }
}

/// Counts, roots, disk use.
pub fn stats(store: &XaeroFlux) -> Result<StatsJson, ApiError> {
    let s = store.stats()?;
    Ok(StatsJson {
        events: s.events,
        per_class: s.per_class.to_vec(),
        mmr_root: s.mmr_root.map(|r| hex(&r)),
        logs: s
            .logs
            .iter()
            .map(|(g, a, len, root)| LogJson {
                group: g.to_string(),
                author: a.to_string(),
                length: *len,
                root: hex(root),
            })
            .collect(),
        lmdb_bytes: s.disk_bytes.0,
        merkle_bytes: s.disk_bytes.1,
    })
}

/// One group's summary.
pub fn group(store: &XaeroFlux, g: &GroupId) -> Result<GroupJson, ApiError> {
    let logs = store.read()?.logs_of(g)?;
    Ok(GroupJson {
        id: g.to_string(),
        default: *g == store.default_group(),
        logs: logs.len() as u64,
        events: logs.iter().map(|(_, n)| n).sum(),
    })
}

/// Every group's summary.
pub fn groups(store: &XaeroFlux) -> Result<Vec<GroupJson>, ApiError> {
    store.groups().iter().map(|g| group(store, g)).collect()
}

/// The peers (none when offline).
pub fn peers(store: &XaeroFlux) -> Result<Vec<PeerJson>, ApiError> {
    if !store.is_online() {
        return Ok(Vec::new());
    }
    Ok(store
        .peers()?
        .iter()
        .map(|p| PeerJson {
            endpoint: hex(&p.endpoint),
            identity: p.identity.map(|i| i.to_did()),
            addrs: p.addrs.iter().map(ToString::to_string).collect(),
            groups: p.groups.iter().map(ToString::to_string).collect(),
            known: p.known,
            connected: p.connected,
            events_received: p.events_received,
            bytes_sent: p.traffic.bytes_sent,
            bytes_received: p.traffic.bytes_received,
        })
        .collect())
}
