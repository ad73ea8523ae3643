//! LAN discovery over mDNS (feature `mdns`, [`NetConfig::lan_discovery`]).
//!
//! The endpoint advertises itself under the mDNS service [`SERVICE`] with the group
//! tags of [`crate::lan`] as user data, and listens for other advertisements. A peer
//! whose tags name one of our groups is added like a ticket's peer (remembered, dialled
//! with backoff) for those groups; the handshake then authenticates it as usual. Tags
//! are refreshed when the host's groups change.
//!
//! [`NetConfig::lan_discovery`]: crate::NetConfig::lan_discovery

use std::sync::Arc;
use std::time::Duration;

use iroh::address_lookup::UserData;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use n0_future::StreamExt;
use xaeroflux_core::{Group, GroupId};

use super::{Inner, PeerAddr, SyncNet};
use crate::error::NetError;
use crate::lan;

/// The mDNS service name (`_xaeroflux._udp.local`).
pub const SERVICE: &str = "xaeroflux";

/// How often the advertised tags are compared with the host's groups.
const REFRESH: Duration = Duration::from_secs(2);

/// Starts advertising and listening; the task ends when the node shuts down.
pub(super) fn start(net: &SyncNet) -> Result<(), NetError> {
    let inner = net.inner.clone();
    let mdns = MdnsAddressLookup::builder()
        .service_name(SERVICE)
        .build(inner.endpoint.id())
        .map_err(|e| NetError::Lan(e.to_string()))?;
    inner
        .endpoint
        .address_lookup()
        .map_err(|_| NetError::Closed)?
        .add(mdns.clone());
    let net = net.clone();
    tokio::spawn(async move {
        let mut events = mdns.subscribe().await;
        let mut stop = inner.shutdown.subscribe();
        let mut advertised = String::new();
        let mut refresh = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = refresh.tick() => advertise(&inner, &mut advertised),
                ev = events.next() => match ev {
                    Some(DiscoveryEvent::Discovered { endpoint_info, .. }) => {
                        let groups = inner.host.groups();
                        let endpoint = *endpoint_info.endpoint_id.as_bytes();
                        let text = endpoint_info
                            .data
                            .user_data()
                            .map(|u| u.to_string())
                            .unwrap_or_default();
                        let ours: Vec<GroupId> = lan::matching(&groups, &endpoint, &text)
                            .into_iter()
                            .map(Group::id)
                            .collect();
                        if ours.is_empty() {
                            continue;
                        }
                        let addrs = endpoint_info.data.ip_addrs().copied().collect();
                        tracing::info!(
                            peer = %endpoint_info.endpoint_id.fmt_short(),
                            groups = ours.len(),
                            "found a group peer on the LAN"
                        );
                        if let Err(e) = net.add_peer(PeerAddr { endpoint, addrs }, &ours) {
                            tracing::debug!(error = %e, "ignoring LAN peer");
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        // Dropping `mdns` (the last clone with the endpoint's) stops the advertisements.
        drop(mdns);
    });
    Ok(())
}

/// Publishes the tags of the host's current groups if they changed.
fn advertise(inner: &Arc<Inner>, advertised: &mut String) {
    let text = lan::encode(&inner.host.groups(), &inner.local_id());
    if text == *advertised {
        return;
    }
    match UserData::try_from(text.clone()) {
        Ok(u) => {
            inner.endpoint.set_user_data_for_address_lookup(Some(u));
            *advertised = text;
        }
        Err(e) => tracing::warn!(error = %e, "cannot advertise group tags"),
    }
}
