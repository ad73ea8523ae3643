//! Group tags advertised for LAN discovery (mDNS), and their text codec.
//!
//! A node that discovers peers on its LAN (feature `mdns`) advertises, next to its
//! endpoint id and addresses, one short tag per group it syncs. A tag is the first
//! [`TAG_LEN`] bytes of `BLAKE3-keyed(discovery key of the group, CONTEXT | endpoint id)`:
//! - only members (who hold the group secret, hence the discovery key) can compute or
//!   recognise it: a member that hears a tag of one of its groups dials that endpoint
//!   for that group, and the handshake then proves membership for real;
//! - it is bound to the advertising endpoint, so two members of one group advertise
//!   different tags and a bystander on the LAN cannot tell which devices share a group
//!   (it can still tell that one device keeps advertising the same tags).
//!
//! The tags travel in the mDNS TXT record's user data (at most 245 characters) as
//! `xfx1:` followed by lowercase hex tags separated by `.`; at most [`MAX_TAGS`] fit.
//! Parsing is defensive: anything malformed yields no tags.

use xaeroflux_core::Group;

/// Bytes of one tag.
pub const TAG_LEN: usize = 8;
/// Most tags one advertisement carries (5 + 14 × 17 - 1 = 242 ≤ 245 characters).
pub const MAX_TAGS: usize = 14;
/// Prefix of the advertised text (names the format version).
pub const PREFIX: &str = "xfx1:";
/// Domain separation of the tag hash.
const CONTEXT: &[u8] = b"xaeroflux/lan-tag/v1";

/// The tag `endpoint` advertises for `group`.
pub fn tag(group: &Group, endpoint: &[u8; 32]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_keyed(&group.discovery_key().0);
    h.update(CONTEXT);
    h.update(endpoint);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
    t
}

/// The advertised text for `endpoint`'s groups (the first [`MAX_TAGS`] of them).
pub fn encode(groups: &[Group], endpoint: &[u8; 32]) -> String {
    let mut s = String::from(PREFIX);
    for (i, g) in groups.iter().take(MAX_TAGS).enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(&data_encoding::HEXLOWER.encode(&tag(g, endpoint)));
    }
    s
}

/// The tags in an advertised text; empty if it is not one.
pub fn decode(text: &str) -> Vec<[u8; TAG_LEN]> {
    let Some(body) = text.strip_prefix(PREFIX) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in body.split('.').take(MAX_TAGS) {
        // `decode_mut` panics on an output of the wrong size: check the length first.
        let mut t = [0u8; TAG_LEN];
        if part.len() != 2 * TAG_LEN {
            return Vec::new();
        }
        match data_encoding::HEXLOWER.decode_mut(part.as_bytes(), &mut t) {
            Ok(TAG_LEN) => out.push(t),
            _ => return Vec::new(),
        }
    }
    out
}

/// Which of `groups` the text advertised by `endpoint` names.
pub fn matching<'a>(groups: &'a [Group], endpoint: &[u8; 32], text: &str) -> Vec<&'a Group> {
    let tags = decode(text);
    groups
        .iter()
        .filter(|g| tags.contains(&tag(g, endpoint)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use xaeroflux_core::GroupSecret;

    fn group(b: u8) -> Group {
        Group::from_secret(GroupSecret::from_bytes([b; 32]))
    }

    #[test]
    fn members_recognise_their_groups_only() {
        let (a, b, c) = (group(1), group(2), group(3));
        let ep = [7u8; 32];
        let text = encode(&[a.clone(), b.clone()], &ep);
        assert!(text.len() <= 245);
        let ours = [b.clone(), c.clone()];
        let m = matching(&ours, &ep, &text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].id(), b.id());
        // Bound to the endpoint: the same text does not match for another endpoint.
        assert!(matching(&ours, &[8u8; 32], &text).is_empty());
        // Two members of one group advertise different tags.
        assert_ne!(tag(&a, &[1; 32]), tag(&a, &[2; 32]));
    }

    #[test]
    fn the_longest_advertisement_fits() {
        let groups: Vec<Group> = (0..40).map(group).collect();
        let text = encode(&groups, &[0; 32]);
        assert!(text.len() <= 245, "{} characters", text.len());
        assert_eq!(decode(&text).len(), MAX_TAGS);
    }

    #[test]
    fn malformed_text_yields_nothing() {
        for t in [
            "",
            "xfx1:",
            "xfx1:zz",
            "xfx1:0011",
            "xfx2:0011223344556677",
            "xfx1:0011223344556677.",
            "xfx1:00112233445566778",
            "xfx1:0011223344556677..0011223344556677",
        ] {
            assert!(decode(t).is_empty(), "{t:?}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in ".{0,300}") {
            let tags = decode(&s);
            prop_assert!(tags.len() <= MAX_TAGS);
        }

        #[test]
        fn encode_then_decode_round_trips(seeds in proptest::collection::vec(any::<u8>(), 0..20),
                                          ep in any::<[u8; 32]>()) {
            let groups: Vec<Group> = seeds.iter().map(|b| group(*b)).collect();
            let text = encode(&groups, &ep);
            let want: Vec<[u8; TAG_LEN]> =
                groups.iter().take(MAX_TAGS).map(|g| tag(g, &ep)).collect();
            prop_assert_eq!(decode(&text), want);
        }
    }
}
