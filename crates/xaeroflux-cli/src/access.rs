//! `xaeroflux group control | members | add | remove | role | invite | invites | revoke
//! | redeem | rotate | key`: group access control, on the store itself or through the
//! API of the daemon that holds it (the same operations: `xaeroflux_api::access`).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use xaeroflux_api::access::{self as ops, AccessRequest, AccessResponse};

use crate::backend::Node;
use crate::cli::AccessCommand;
use crate::config::Ctx;

/// Parses `30m`, `12h`, `7d` or plain seconds.
fn parse_duration_ms(s: &str) -> Result<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().context("expiry: a number then s, m, h or d")?;
    let mul = match unit {
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("expiry unit must be s, m, h or d"),
    };
    n.checked_mul(mul).context("expiry too far")
}

/// A change: run on the local store or posted to the daemon's `/v1/access/{what}`.
fn change(
    node: &Node,
    what: &str,
    op: fn(
        &xaeroflux::XaeroFlux,
        &AccessRequest,
    ) -> Result<AccessResponse, xaeroflux_api::ApiError>,
    req: AccessRequest,
) -> Result<AccessResponse> {
    Ok(match node {
        Node::Local(s) => op(s, &req)?,
        Node::Remote(c) => c.access(what, &req)?,
    })
}

/// Runs one access subcommand.
pub fn run(ctx: &Ctx, cmd: AccessCommand) -> Result<ExitCode> {
    let node = Node::open(ctx)?;
    let req = |group: Option<String>| AccessRequest {
        group,
        ..AccessRequest::default()
    };
    let out = match cmd {
        AccessCommand::Key => {
            let k = match &node {
                Node::Local(s) => ops::key(s),
                Node::Remote(c) => c.access_key()?,
            };
            println!("{}", k.key);
            None
        }
        AccessCommand::Members { group } => {
            let m = match &node {
                Node::Local(s) => ops::members(s, group.as_deref())?,
                Node::Remote(c) => c.access_members(group.as_deref())?,
            };
            for m in m.members {
                let me = if m.you { " (you)" } else { "" };
                println!("{}  {}{me}", m.id, m.role);
            }
            None
        }
        AccessCommand::Invites { group } => {
            let all = match &node {
                Node::Local(s) => ops::invites(s, group.as_deref())?,
                Node::Remote(c) => c.access_invites(group.as_deref())?,
            };
            for i in all {
                let once = if i.single_use { ", single use" } else { "" };
                println!(
                    "{}  {}  {}{once}  expires {} ms",
                    i.id, i.role, i.status, i.expires_ms
                );
            }
            None
        }
        AccessCommand::Control { group } => {
            Some(change(&node, "control", ops::control, req(group))?)
        }
        AccessCommand::Add { key, role, group } => {
            let r = AccessRequest {
                key: Some(key),
                role: Some(role),
                ..req(group)
            };
            Some(change(&node, "members", ops::add, r)?)
        }
        AccessCommand::Remove { member, group } => {
            let r = AccessRequest {
                member: Some(member),
                ..req(group)
            };
            Some(change(&node, "members/remove", ops::remove, r)?)
        }
        AccessCommand::Role {
            member,
            role,
            group,
        } => {
            let r = AccessRequest {
                member: Some(member),
                role: Some(role),
                ..req(group)
            };
            Some(change(&node, "members/role", ops::set_role, r)?)
        }
        AccessCommand::Invite {
            role,
            expires,
            single_use,
            group,
        } => {
            let r = AccessRequest {
                role: Some(role),
                expires_in_ms: Some(parse_duration_ms(&expires)?),
                single_use,
                ..req(group)
            };
            let out = change(&node, "invites", ops::invite, r)?;
            println!("{}", out.invite.clone().unwrap_or_default());
            None
        }
        AccessCommand::Revoke { id, group } => {
            let r = AccessRequest {
                invite: Some(id),
                ..req(group)
            };
            Some(change(&node, "invites/revoke", ops::revoke, r)?)
        }
        AccessCommand::Redeem { invite } => {
            let r = AccessRequest {
                invite: Some(invite),
                ..AccessRequest::default()
            };
            Some(change(&node, "redeem", ops::redeem, r)?)
        }
        AccessCommand::Rotate { share, group } => Some(if share {
            change(&node, "share", ops::share, req(group))?
        } else {
            change(&node, "rotate", ops::rotate, req(group))?
        }),
    };
    if let Some(out) = out {
        println!("{}", out.detail);
    }
    node.close()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("2h").unwrap(), 7_200_000);
        assert!(parse_duration_ms("2w").is_err());
        assert!(parse_duration_ms("h").is_err());
    }
}
