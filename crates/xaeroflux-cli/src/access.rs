//! `xaeroflux group control | members | add | remove | role | invite | redeem | key`:
//! group access control on the local store (opened in this process: stop the daemon
//! first, it owns the store).
//!
//! An access invite is printed as `xfi1` + lowercase base32 of `owner id [32] | invite
//! [760]` (the invite format is in `docs/FORMAT.md`); the invitee redeems it with
//! `group redeem` after joining the group's ticket (`group join`), whose group secret
//! still keys the handshake MAC.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use data_encoding::BASE32_NOPAD;
use xaeroflux::access_control::{Invite, Role};
use xaeroflux::{GroupId, IdHash, XaeroFlux, XaeroID};

use crate::cli::AccessCommand;
use crate::config::Ctx;

const INVITE_PREFIX: &str = "xfi1";

fn group_of(store: &XaeroFlux, g: Option<String>) -> Result<GroupId> {
    match g {
        Some(h) => GroupId::from_hex(&h).context("group id"),
        None => Ok(store.default_group()),
    }
}

fn member_id(s: &str) -> Result<IdHash> {
    if s.starts_with("did:") {
        return IdHash::from_did(s).context("member DID");
    }
    Ok(IdHash(
        GroupId::from_hex(s)
            .context("member id (DID or 64 hex digits)")?
            .0,
    ))
}

fn parse_role(s: &str) -> Result<Role> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("role must be reader, writer or admin"))
}

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

fn encode_invite(owner: &IdHash, inv: &Invite) -> String {
    let mut b = owner.0.to_vec();
    b.extend_from_slice(inv.as_bytes());
    format!("{INVITE_PREFIX}{}", BASE32_NOPAD.encode(&b).to_lowercase())
}

fn decode_invite(s: &str) -> Result<(IdHash, Invite)> {
    let body = s
        .trim()
        .strip_prefix(INVITE_PREFIX)
        .context("an access invite starts with xfi1")?;
    let b = BASE32_NOPAD
        .decode(body.to_uppercase().as_bytes())
        .context("access invite encoding")?;
    if b.len() < 32 {
        bail!("access invite too short");
    }
    let owner = IdHash(b[..32].try_into().context("owner id")?);
    let inv = Invite::decode(&b[32..]).context("access invite")?;
    Ok((owner, inv))
}

/// Runs one access subcommand.
pub fn run(ctx: &Ctx, cmd: AccessCommand) -> Result<ExitCode> {
    let store = ctx.open()?;
    match cmd {
        AccessCommand::Key => {
            println!(
                "{}",
                xaeroflux_core::event::hex(store.identity().as_bytes())
            );
        }
        AccessCommand::Control { group } => {
            let g = group_of(&store, group)?;
            store.access_create(&g)?;
            println!("group {g} is under access control; you are its owner");
        }
        AccessCommand::Members { group } => {
            let g = group_of(&store, group)?;
            for (m, r) in store.access_members(&g)? {
                let me = if m == store.identity().id() {
                    " (you)"
                } else {
                    ""
                };
                println!("{}  {r}{me}", m.to_did());
            }
        }
        AccessCommand::Add { key, role, group } => {
            let g = group_of(&store, group)?;
            let raw = hex_decode(&key).context("public key: hex of the 898-byte XaeroID")?;
            let id = XaeroID::from_bytes(&raw).context("public key")?;
            store.access_add(&g, &id, parse_role(&role)?)?;
            println!("added {} as {role}", id.to_did());
        }
        AccessCommand::Remove { member, group } => {
            let g = group_of(&store, group)?;
            let m = member_id(&member)?;
            store.access_remove(&g, &m)?;
            println!(
                "removed {}; a new epoch key is sealed to the others",
                m.to_did()
            );
        }
        AccessCommand::Role {
            member,
            role,
            group,
        } => {
            let g = group_of(&store, group)?;
            let m = member_id(&member)?;
            store.access_set_role(&g, &m, parse_role(&role)?)?;
            println!("{} is now {role}", m.to_did());
        }
        AccessCommand::Invite {
            role,
            expires,
            single_use,
            group,
        } => {
            let g = group_of(&store, group)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("clock")?
                .as_millis() as u64;
            let exp = now.saturating_add(parse_duration_ms(&expires)?);
            let inv = store.access_invite(&g, parse_role(&role)?, exp, single_use)?;
            let owner = store
                .access_control()
                .with(&g, |m| m.owner())
                .context("group is not under access control")?;
            println!("{}", encode_invite(&owner, &inv));
        }
        AccessCommand::Redeem { invite } => {
            let (owner, inv) = decode_invite(&invite)?;
            store.access_join(&inv, owner)?;
            println!(
                "joined group {} as {} (admitted once the owner's peers see it)",
                inv.group(),
                inv.role()
            );
        }
    }
    store.close()?;
    Ok(ExitCode::SUCCESS)
}

fn hex_decode(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("hex digit"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_invites_parse() {
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("2h").unwrap(), 7_200_000);
        assert!(parse_duration_ms("2w").is_err());
        let kp = xaeroflux::XaeroKeypair::generate_from_seed(&[3; 32]);
        let inv = Invite::sign(&kp, GroupId([1; 32]), [2; 16], Role::Reader, 5, true).unwrap();
        let s = encode_invite(&kp.id(), &inv);
        let (owner, back) = decode_invite(&s).unwrap();
        assert_eq!(owner, kp.id());
        assert_eq!(back, inv);
        assert!(decode_invite("xfi1aaaa").is_err());
        assert!(decode_invite(&s[..s.len() - 3]).is_err());
    }
}
