//! Tickets: everything needed to dial a peer for one group, as a short string.
//!
//! Free of iroh types (plain byte arrays and socket addresses) so that tools and the
//! fuzz targets can use the codec without the transport (`default-features = false`).
//!
//! Format (version 1): the text `xfx1` followed by the lowercase, unpadded RFC 4648
//! base32 of these bytes (all integers little-endian):
//!
//! | size | field |
//! |-----:|-------|
//! |  1 | version, [`TICKET_VERSION`] |
//! |  1 | flags: bit 0 = a group secret follows; other bits must be 0 |
//! | 32 | endpoint id (iroh public key) |
//! | 32 | group id |
//! | 32 | group secret, only if flag bit 0 is set |
//! |  1 | address count `n`, at most [`MAX_TICKET_ADDRS`] |
//! |  n × | address: kind (1 byte: 4 or 6), IP (4 or 16 bytes), port (u16) |
//!
//! Nothing may follow the last address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;

/// Text prefix of a ticket (names the format version too).
pub const TICKET_PREFIX: &str = "xfx1";
/// Version byte of the binary ticket.
pub const TICKET_VERSION: u8 = 1;
/// Most socket addresses in a ticket.
pub const MAX_TICKET_ADDRS: usize = 16;
/// Longest ticket text accepted by the parser (bounds the work a hostile string costs).
pub const MAX_TICKET_TEXT: usize = 1024;

const FLAG_SECRET: u8 = 1;

/// Why a ticket does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The text does not start with [`TICKET_PREFIX`].
    #[error("not a ticket: missing prefix {TICKET_PREFIX}")]
    Prefix,
    /// The text is longer than [`MAX_TICKET_TEXT`].
    #[error("ticket text too long: {len} > {max}")]
    TooLong {
        /// Length found.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The text after the prefix is not lowercase unpadded base32.
    #[error("ticket is not valid base32")]
    Base32,
    /// Unknown binary version.
    #[error("unknown ticket version {found}")]
    Version {
        /// Version found.
        found: u8,
    },
    /// Unknown flag bits.
    #[error("unknown ticket flags {found:#04x}")]
    Flags {
        /// Flags found.
        found: u8,
    },
    /// The bytes end early.
    #[error("ticket truncated at byte {at}")]
    Truncated {
        /// Offset where more bytes were needed.
        at: usize,
    },
    /// Too many addresses.
    #[error("too many addresses in ticket: {count} > {max}")]
    TooManyAddrs {
        /// Count found.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// An address kind other than 4 or 6.
    #[error("unknown address kind {found}")]
    AddrKind {
        /// Kind found.
        found: u8,
    },
    /// Bytes after the last address.
    #[error("{extra} trailing bytes after ticket")]
    Trailing {
        /// Count of extra bytes.
        extra: usize,
    },
}

/// An invitation to sync one group with one peer.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The peer's endpoint id (iroh public key bytes).
    pub endpoint: [u8; 32],
    /// Direct socket addresses of the peer.
    pub addrs: Vec<SocketAddr>,
    /// The group to sync.
    pub group: [u8; 32],
    /// The group secret, when the ticket is an invite that grants membership.
    pub secret: Option<[u8; 32]>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("endpoint", &short_hex(&self.endpoint))
            .field("addrs", &self.addrs)
            .field("group", &short_hex(&self.group))
            .field("secret", &self.secret.map(|_| "<redacted>"))
            .finish()
    }
}

fn short_hex(b: &[u8; 32]) -> String {
    b[..5].iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes an address: kind, IP, port. Format: see the module docs.
pub(crate) fn put_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&a.port().to_le_bytes());
}

/// A bounds-checked cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(TicketError::Truncated { at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, TicketError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn arr32(&mut self) -> Result<[u8; 32], TicketError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    pub(crate) fn addr(&mut self) -> Result<SocketAddr, TicketError> {
        let ip = match self.u8()? {
            4 => {
                let mut o = [0u8; 4];
                o.copy_from_slice(self.take(4)?);
                IpAddr::V4(Ipv4Addr::from(o))
            }
            6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(self.take(16)?);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            found => return Err(TicketError::AddrKind { found }),
        };
        let mut p = [0u8; 2];
        p.copy_from_slice(self.take(2)?);
        Ok(SocketAddr::new(ip, u16::from_le_bytes(p)))
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

impl Ticket {
    /// The binary form. Format: see the module docs. Addresses past
    /// [`MAX_TICKET_ADDRS`] are left out.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(100 + 19 * self.addrs.len());
        out.push(TICKET_VERSION);
        out.push(if self.secret.is_some() {
            FLAG_SECRET
        } else {
            0
        });
        out.extend_from_slice(&self.endpoint);
        out.extend_from_slice(&self.group);
        if let Some(s) = &self.secret {
            out.extend_from_slice(s);
        }
        let addrs = &self.addrs[..self.addrs.len().min(MAX_TICKET_ADDRS)];
        // At most MAX_TICKET_ADDRS (16) fits in a byte.
        out.push(addrs.len() as u8);
        for a in addrs {
            put_addr(&mut out, a);
        }
        out
    }

    /// Parses the binary form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != TICKET_VERSION {
            return Err(TicketError::Version { found: version });
        }
        let flags = r.u8()?;
        if flags & !FLAG_SECRET != 0 {
            return Err(TicketError::Flags { found: flags });
        }
        let endpoint = r.arr32()?;
        let group = r.arr32()?;
        let secret = if flags & FLAG_SECRET != 0 {
            Some(r.arr32()?)
        } else {
            None
        };
        let count = usize::from(r.u8()?);
        if count > MAX_TICKET_ADDRS {
            return Err(TicketError::TooManyAddrs {
                count,
                max: MAX_TICKET_ADDRS,
            });
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            addrs.push(r.addr()?);
        }
        if r.remaining() != 0 {
            return Err(TicketError::Trailing {
                extra: r.remaining(),
            });
        }
        Ok(Ticket {
            endpoint,
            addrs,
            group,
            secret,
        })
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b32 = BASE32_NOPAD.encode(&self.to_bytes()).to_ascii_lowercase();
        write!(f, "{TICKET_PREFIX}{b32}")
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_TICKET_TEXT {
            return Err(TicketError::TooLong {
                len: s.len(),
                max: MAX_TICKET_TEXT,
            });
        }
        let body = s.strip_prefix(TICKET_PREFIX).ok_or(TicketError::Prefix)?;
        // Canonical form only: lowercase (one string per ticket).
        if body.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(TicketError::Base32);
        }
        let bytes = BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| TicketError::Base32)?;
        Ticket::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(ip.into()), p)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(ip.into()), p)),
        ]
    }

    fn arb_ticket() -> impl Strategy<Value = Ticket> {
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(arb_addr(), 0..=MAX_TICKET_ADDRS),
            any::<[u8; 32]>(),
            proptest::option::of(any::<[u8; 32]>()),
        )
            .prop_map(|(endpoint, addrs, group, secret)| Ticket {
                endpoint,
                addrs,
                group,
                secret,
            })
    }

    proptest! {
        #[test]
        fn round_trip(t in arb_ticket()) {
            let b = t.to_bytes();
            let v6 = t.addrs.iter().filter(|a| a.is_ipv6()).count();
            let expect = 2 + 64 + if t.secret.is_some() { 32 } else { 0 } + 1
                + 7 * t.addrs.len() + 12 * v6;
            prop_assert_eq!(b.len(), expect);
            prop_assert_eq!(&Ticket::from_bytes(&b).unwrap(), &t);
            let s = t.to_string();
            prop_assert!(s.len() <= MAX_TICKET_TEXT);
            prop_assert_eq!(s.parse::<Ticket>().unwrap(), t);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(t) = Ticket::from_bytes(&b) {
                prop_assert_eq!(t.to_bytes(), b);
            }
        }

        #[test]
        fn truncations_are_errors(t in arb_ticket(), cut in 0usize..1000) {
            let b = t.to_bytes();
            let cut = cut % b.len();
            prop_assert!(Ticket::from_bytes(&b[..cut]).is_err());
        }
    }

    #[test]
    fn typed_errors() {
        let t = Ticket {
            endpoint: [1; 32],
            addrs: vec!["127.0.0.1:4000".parse().unwrap()],
            group: [2; 32],
            secret: None,
        };
        let mut b = t.to_bytes();
        assert_eq!("abc".parse::<Ticket>(), Err(TicketError::Prefix));
        assert_eq!("xfx1!!".parse::<Ticket>(), Err(TicketError::Base32));
        assert_eq!(
            t.to_string()
                .to_uppercase()
                .replacen("XFX1", "xfx1", 1)
                .parse::<Ticket>(),
            Err(TicketError::Base32)
        );
        b.push(0);
        assert_eq!(
            Ticket::from_bytes(&b),
            Err(TicketError::Trailing { extra: 1 })
        );
        b.pop();
        b[0] = 9;
        assert_eq!(
            Ticket::from_bytes(&b),
            Err(TicketError::Version { found: 9 })
        );
        b[0] = 1;
        b[1] = 2;
        assert_eq!(Ticket::from_bytes(&b), Err(TicketError::Flags { found: 2 }));
        b[1] = 0;
        b[66] = 17;
        assert!(matches!(
            Ticket::from_bytes(&b),
            Err(TicketError::TooManyAddrs { count: 17, .. })
        ));
        b[66] = 1;
        b[67] = 5;
        assert_eq!(
            Ticket::from_bytes(&b),
            Err(TicketError::AddrKind { found: 5 })
        );
        let long = format!("xfx1{}", "a".repeat(MAX_TICKET_TEXT));
        assert!(matches!(
            long.parse::<Ticket>(),
            Err(TicketError::TooLong { .. })
        ));
        let secret = Ticket {
            secret: Some([9; 32]),
            ..t
        };
        assert!(!format!("{secret:?}").contains("09"));
    }
}
