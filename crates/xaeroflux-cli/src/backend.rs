//! Where a data command runs: on the store itself, or through the API of the daemon
//! that holds it.
//!
//! A command first opens the store. If another process holds it and that process
//! published an API address (`DATA_DIR/api.addr`, written by `xaeroflux daemon`), the
//! command goes through that API with the token of `DATA_DIR/api.token`. Both paths
//! return the same documents (`xaeroflux_api::model`), so output does not depend on
//! which one ran.

use anyhow::{Context, Result};
use xaeroflux::XaeroFlux;
use xaeroflux_api::Client;
use xaeroflux_api::model::{
    BatchResponse, EventJson, GroupJson, QueryParams, QueryResponse, StatsJson, WriteRequest,
    WriteResponse,
};

use crate::config::Ctx;

/// The store, or the daemon's API.
pub enum Node {
    /// This process holds the store.
    Local(Box<XaeroFlux>),
    /// A daemon holds it; its API.
    Remote(Client),
}

impl Node {
    /// Opens the store, or finds the daemon that holds it.
    pub fn open(ctx: &Ctx) -> Result<Node> {
        match ctx.builder().open() {
            Ok(s) => Ok(Node::Local(Box::new(s))),
            Err(xaeroflux::Error::Locked { path }) => {
                let client = Client::discover(&ctx.dir)
                    .context("finding the api of the process that holds the store")?
                    .with_context(|| {
                        format!(
                            "data directory {} is in use by another process, which serves no api \
                             (no {} there); stop it, or run it as `xaeroflux daemon`",
                            path.display(),
                            xaeroflux_api::ADDR_FILE
                        )
                    })?;
                client.health().with_context(|| {
                    format!(
                        "data directory {} is in use, and its daemon's api at {} does not answer",
                        path.display(),
                        client.addr()
                    )
                })?;
                Ok(Node::Remote(client))
            }
            Err(e) => Err(e).with_context(|| format!("opening the store in {}", ctx.dir.display())),
        }
    }

    /// Writes one event; durable on return.
    pub fn write(&self, req: WriteRequest) -> Result<WriteResponse> {
        Ok(match self {
            Node::Local(s) => xaeroflux_api::ops::write(s, req)?,
            Node::Remote(c) => c.write(&req)?,
        })
    }

    /// Writes NDJSON lines of write requests; durable on return.
    pub fn write_batch(&self, ndjson: &[u8]) -> Result<BatchResponse> {
        Ok(match self {
            Node::Local(s) => xaeroflux_api::ops::write_batch(s, ndjson)?,
            Node::Remote(c) => c.write_batch(ndjson)?,
        })
    }

    /// One event by id.
    pub fn get(&self, id: &str, proof: bool) -> Result<Option<EventJson>> {
        Ok(match self {
            Node::Local(s) => {
                let id = xaeroflux::EventId::from_hex(id).context("event id")?;
                xaeroflux_api::ops::get(s, &id, proof)?
            }
            Node::Remote(c) => c.get(id, proof)?,
        })
    }

    /// One page of events in local order.
    pub fn query(&self, q: &QueryParams) -> Result<QueryResponse> {
        Ok(match self {
            Node::Local(s) => xaeroflux_api::ops::query(s, q)?,
            Node::Remote(c) => c.query(q)?,
        })
    }

    /// Counts and roots.
    pub fn stats(&self) -> Result<StatsJson> {
        Ok(match self {
            Node::Local(s) => xaeroflux_api::ops::stats(s)?,
            Node::Remote(c) => c.stats()?,
        })
    }

    /// The groups.
    pub fn groups(&self) -> Result<Vec<GroupJson>> {
        Ok(match self {
            Node::Local(s) => xaeroflux_api::ops::groups(s)?,
            Node::Remote(c) => c.groups()?,
        })
    }

    /// Creates a group.
    pub fn create_group(&self) -> Result<GroupJson> {
        Ok(match self {
            Node::Local(s) => xaeroflux_api::ops::group(s, &s.create_group()?.id())?,
            Node::Remote(c) => c.create_group()?,
        })
    }

    /// Follows events (replays those after `after`; -1 from the first), calling `f`
    /// for each until it returns false or the stream ends.
    pub fn follow(
        &self,
        group: Option<&str>,
        event_type: Option<u32>,
        after: i64,
        mut f: impl FnMut(EventJson) -> bool,
    ) -> Result<()> {
        match self {
            Node::Local(s) => {
                let mut filter = xaeroflux::Filter::all().start(if after < 0 {
                    xaeroflux::Start::Beginning
                } else {
                    xaeroflux::Start::Position(after as u64 + 1)
                });
                if let Some(g) = group {
                    filter = filter.group(xaeroflux::GroupId::from_hex(g).context("group id")?);
                }
                if let Some(t) = event_type {
                    filter = filter.event_type(t);
                }
                for e in s.subscribe(filter) {
                    if !f(EventJson::committed(&e?)) {
                        break;
                    }
                }
            }
            Node::Remote(c) => {
                for e in c.subscribe(group, event_type, Some(after))? {
                    if !f(e?) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Closes a local store.
    pub fn close(self) -> Result<()> {
        if let Node::Local(s) = self {
            s.close()?;
        }
        Ok(())
    }

    /// The API client when a daemon holds the store.
    pub fn remote(&self) -> Option<&Client> {
        match self {
            Node::Remote(c) => Some(c),
            Node::Local(_) => None,
        }
    }

    /// The store when this process holds it.
    pub fn local(&self) -> Option<&XaeroFlux> {
        match self {
            Node::Local(s) => Some(s),
            Node::Remote(_) => None,
        }
    }
}

/// The client of a running daemon that serves this data directory, if one answers.
pub fn daemon_client(ctx: &Ctx) -> Result<Option<Client>> {
    let Ok(Some(c)) = Client::discover(&ctx.dir) else {
        return Ok(None);
    };
    // A stale address file (the daemon died) names nobody, or somebody else.
    Ok(c.health().is_ok().then_some(c))
}
