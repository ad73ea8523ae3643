//! What a session holds, and what it lets through from the peer into logs.

use super::Session;

/// Longest peer-supplied reason kept (in characters), see [`sanitize_reason`].
pub const MAX_LOGGED_REASON: usize = 200;
/// The one answer to a Hello from a non-member, whatever is wrong with it: a group
/// this node does not sync, a wrong MAC, a wrong tag, role, keying material or endpoint
/// id. Sent with [`ErrorCode::BadMac`](super::ErrorCode::BadMac) by the session and by the transport alike, so a
/// non-member cannot tell a group this node syncs from one it does not.
pub const NON_MEMBER_REASON: &str = "group membership mac does not verify";

/// A peer-supplied text made safe for logs and system events: at most
/// [`MAX_LOGGED_REASON`] characters, control and bidirectional-formatting characters
/// replaced by `?` (so a reason cannot forge log lines or reorder a terminal's text).
pub fn sanitize_reason(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_LOGGED_REASON)
        .map(|c| {
            let bidi = matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
            if c.is_control() || bidi { '?' } else { c }
        })
        .collect();
    if s.chars().nth(MAX_LOGGED_REASON).is_some() {
        out.push('…');
    }
    out
}

/// What one session holds in memory (for tests, metrics and the chaos simulation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionMemory {
    /// Bytes allocated by the frame decoder.
    pub decoder: usize,
    /// Bytes output and not yet reported written (the transport's outbox).
    pub unsent: u64,
    /// Public keys kept from the peer.
    pub keys: usize,
    /// Requests of the peer queued for an answer.
    pub queued_requests: usize,
    /// Checkpoints of the peer kept for catch-up.
    pub peer_checkpoints: usize,
}

impl SessionMemory {
    /// An upper estimate of the bytes held: decoder + unsent + 1 KiB per key, 48 B per
    /// request, 1 KiB per checkpoint.
    pub fn approx_bytes(&self) -> u64 {
        self.decoder as u64
            + self.unsent
            + 1024 * self.keys as u64
            + 48 * self.queued_requests as u64
            + 1024 * self.peer_checkpoints as u64
    }
}

impl Session {
    /// What the session holds in memory now.
    pub fn memory(&self) -> SessionMemory {
        SessionMemory {
            decoder: self.decoder.allocated(),
            unsent: self.unsent,
            keys: self.keys.len(),
            queued_requests: self.requests.len(),
            peer_checkpoints: self.peer_cps.len(),
        }
    }

    /// Whether answers to the peer's requests wait for the transport to write what
    /// the session output before ([`Input::Drained`](super::Input::Drained)).
    pub fn has_backlog(&self) -> bool {
        !self.requests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_capped_and_cleaned() {
        let forged = "ok\n2026-12-05 INFO peer authenticated\u{1b}[2J\u{202e}evil";
        let s = sanitize_reason(forged);
        assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
        assert!(!s.contains('\u{202e}'));
        assert_eq!(s, "ok?2026-12-05 INFO peer authenticated?[2J?evil");
        let long = "x".repeat(100_000);
        let s = sanitize_reason(&long);
        assert_eq!(s.chars().count(), MAX_LOGGED_REASON + 1);
        assert!(s.ends_with('…'));
        assert_eq!(sanitize_reason("plain reason"), "plain reason");
    }
}
