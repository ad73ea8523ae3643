//! Persistent state of the network layer in [`crate::NetConfig::state_dir`]: the
//! endpoint's secret key and the known peers.
//!
//! Files are replaced atomically (write a temporary file, fsync, rename).
//!
//! `endpoint.key` (mode 0600, in a directory created 0700): the 32-byte iroh secret key,
//! raw. A key file group or others may access is refused, as for the identity key.
//!
//! `peers.bin`, format version 2 (integers little-endian; version 1 files, without the
//! flags byte, are still read):
//!
//! | size | field |
//! |-----:|-------|
//! |  8 | magic `"XFXPEERS"` |
//! |  1 | version (1) |
//! |  2 | peer count (u16) |
//! |  per peer | endpoint id (32), address count (u8, at most 16), addresses as in a ticket, group count (u8), group ids (32 each), flags (u8: bit 0 = the peer keeps our key, Hellos may be short; other bits zero) |
//! | 32 | BLAKE3 of everything before |
//!
//! A peers file that does not parse is ignored with a warning (the peers are learnt
//! again); a key file that does not parse is an error (silently changing the endpoint
//! id would orphan every ticket given out).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::ticket::{MAX_TICKET_ADDRS, Reader, TicketError, put_addr};

const KEY_FILE: &str = "endpoint.key";
const PEERS_FILE: &str = "peers.bin";
const PEERS_MAGIC: &[u8; 8] = b"XFXPEERS";
const PEERS_VERSION: u8 = 2;
/// `flags` bit: the peer keeps our key ([`KnownPeer::short_hello`]).
const FLAG_SHORT_HELLO: u8 = 1;
/// Most known peers persisted.
pub const MAX_KNOWN_PEERS: usize = 4096;
/// Most groups remembered per known peer.
pub const MAX_PEER_GROUPS: usize = 255;

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing a file failed.
    #[error("state file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The key file is not 32 bytes.
    #[error("key file {path} is corrupt ({len} bytes, expected 32)")]
    CorruptKey {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The peers file does not parse.
    #[error("peers file is corrupt: {0}")]
    CorruptPeers(String),
    /// The key file may be read by others (or its directory written by others).
    #[error("{path} has mode {mode:o}: others may access it (key file 0600, directory 0700)")]
    InsecurePermissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// A peer we dial: where it is and which groups we sync with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KnownPeer {
    /// Direct addresses.
    pub addrs: Vec<SocketAddr>,
    /// Groups to sync with it.
    pub groups: BTreeSet<[u8; 32]>,
    /// A session with it completed, so it keeps our key: our Hellos to it name the
    /// key by id only (cleared when it says it lacks the key).
    pub short_hello: bool,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `dir/name` atomically, with mode `0600` on Unix.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if let Ok(d) = fs::File::open(dir) {
        // Best effort: makes the rename durable where directories can be fsynced.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Loads the secret key from `dir`, creating it with `generate` on first use.
///
/// As for the identity key: a missing directory is created with mode 0700, the key is
/// written 0600, and (on Unix) a key file that group or others may access, or a
/// directory others may write to, is refused ([`StateError::InsecurePermissions`])
/// rather than used: the key is this node's transport identity.
pub(crate) fn load_or_create_key(
    dir: &Path,
    generate: impl FnOnce() -> [u8; 32],
) -> Result<[u8; 32], StateError> {
    if !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(io_err(dir))?;
    }
    check_mode(dir, 0o022)?;
    let path = dir.join(KEY_FILE);
    match fs::File::open(&path) {
        Ok(f) => {
            let meta = f.metadata().map_err(io_err(&path))?;
            check_meta(&path, &meta, 0o077)?;
            let mut b = Vec::with_capacity(32);
            io::Read::read_to_end(&mut io::Read::take(f, 33), &mut b).map_err(io_err(&path))?;
            let len = b.len();
            b.try_into()
                .map_err(|_| StateError::CorruptKey { path, len })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = generate();
            write_atomic(dir, KEY_FILE, &key)?;
            Ok(key)
        }
        Err(e) => Err(StateError::Io { path, source: e }),
    }
}

/// Refuses `path` if its mode has any of the `forbidden` bits (Unix only).
fn check_mode(path: &Path, forbidden: u32) -> Result<(), StateError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    check_meta(path, &meta, forbidden)
}

#[cfg_attr(not(unix), allow(unused_variables))]
fn check_meta(path: &Path, meta: &fs::Metadata, forbidden: u32) -> Result<(), StateError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & forbidden != 0 {
            return Err(StateError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
}

/// Encodes the known peers. Format: see the module docs.
pub(crate) fn encode_peers(peers: &BTreeMap<[u8; 32], KnownPeer>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(PEERS_MAGIC);
    out.push(PEERS_VERSION);
    let n = peers.len().min(MAX_KNOWN_PEERS);
    // MAX_KNOWN_PEERS fits in a u16.
    out.extend_from_slice(&(n as u16).to_le_bytes());
    for (id, p) in peers.iter().take(n) {
        out.extend_from_slice(id);
        let addrs = &p.addrs[..p.addrs.len().min(MAX_TICKET_ADDRS)];
        out.push(addrs.len() as u8);
        for a in addrs {
            put_addr(&mut out, a);
        }
        let groups: Vec<_> = p.groups.iter().take(MAX_PEER_GROUPS).collect();
        out.push(groups.len() as u8);
        for g in groups {
            out.extend_from_slice(g);
        }
        out.push(if p.short_hello { FLAG_SHORT_HELLO } else { 0 });
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Decodes the known peers file.
pub(crate) fn decode_peers(bytes: &[u8]) -> Result<BTreeMap<[u8; 32], KnownPeer>, StateError> {
    let corrupt = |e: TicketError| StateError::CorruptPeers(e.to_string());
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or_else(|| StateError::CorruptPeers("too short".into()))?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body) != blake3::Hash::from_bytes(sum.try_into().unwrap_or([0; 32])) {
        return Err(StateError::CorruptPeers("checksum mismatch".into()));
    }
    let mut r = Reader::new(body);
    if r.take(8).map_err(corrupt)? != PEERS_MAGIC {
        return Err(StateError::CorruptPeers("bad magic".into()));
    }
    let v = r.u8().map_err(corrupt)?;
    if v != PEERS_VERSION && v != 1 {
        return Err(StateError::CorruptPeers(format!("unknown version {v}")));
    }
    let c = r.take(2).map_err(corrupt)?;
    let n = usize::from(u16::from_le_bytes([c[0], c[1]]));
    if n > MAX_KNOWN_PEERS {
        return Err(StateError::CorruptPeers(format!("{n} peers")));
    }
    let mut peers = BTreeMap::new();
    for _ in 0..n {
        let id = r.arr32().map_err(corrupt)?;
        let na = usize::from(r.u8().map_err(corrupt)?);
        if na > MAX_TICKET_ADDRS {
            return Err(StateError::CorruptPeers(format!("{na} addresses")));
        }
        let mut p = KnownPeer::default();
        for _ in 0..na {
            p.addrs.push(r.addr().map_err(corrupt)?);
        }
        let ng = r.u8().map_err(corrupt)?;
        for _ in 0..ng {
            p.groups.insert(r.arr32().map_err(corrupt)?);
        }
        if v >= 2 {
            let flags = r.u8().map_err(corrupt)?;
            if flags & !FLAG_SHORT_HELLO != 0 {
                return Err(StateError::CorruptPeers(format!(
                    "unknown flags {flags:#x}"
                )));
            }
            p.short_hello = flags & FLAG_SHORT_HELLO != 0;
        }
        peers.insert(id, p);
    }
    if r.remaining() != 0 {
        return Err(StateError::CorruptPeers("trailing bytes".into()));
    }
    Ok(peers)
}

/// Loads the known peers of `dir`; a missing or corrupt file yields none.
pub fn load_peers(dir: &Path) -> BTreeMap<[u8; 32], KnownPeer> {
    let path = dir.join(PEERS_FILE);
    match fs::read(&path) {
        Ok(b) => decode_peers(&b).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring known peers file");
            BTreeMap::new()
        }),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot read known peers");
            }
            BTreeMap::new()
        }
    }
}

/// Saves the known peers to `dir`.
pub(crate) fn save_peers(
    dir: &Path,
    peers: &BTreeMap<[u8; 32], KnownPeer>,
) -> Result<(), StateError> {
    write_atomic(dir, PEERS_FILE, &encode_peers(peers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<[u8; 32], KnownPeer> {
        let mut m = BTreeMap::new();
        m.insert(
            [1; 32],
            KnownPeer {
                addrs: vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()],
                groups: [[7; 32], [8; 32]].into_iter().collect(),
                short_hello: true,
            },
        );
        m.insert([2; 32], KnownPeer::default());
        m
    }

    #[cfg(unix)]
    #[test]
    fn endpoint_key_is_private_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("net");
        let key = load_or_create_key(&dir, || [7; 32]).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        // Loaded again, not regenerated.
        assert_eq!(load_or_create_key(&dir, || [9; 32]).unwrap(), key);
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create_key(&dir, || [9; 32]),
            Err(StateError::InsecurePermissions { mode: 0o644, .. })
        ));
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            load_or_create_key(&dir, || [9; 32]),
            Err(StateError::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn peers_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_peers(dir.path()).is_empty());
        save_peers(dir.path(), &sample()).unwrap();
        assert_eq!(load_peers(dir.path()), sample());
        let bytes = encode_peers(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode_peers(&b).is_err(), "flip at {i}");
            assert!(decode_peers(&bytes[..i]).is_err(), "cut at {i}");
        }
        fs::write(dir.path().join(PEERS_FILE), b"garbage").unwrap();
        assert!(load_peers(dir.path()).is_empty());
    }

    /// A version 1 file (no flags byte) still loads, with short Hellos off.
    #[test]
    fn version_1_files_load() {
        let mut b = Vec::new();
        b.extend_from_slice(PEERS_MAGIC);
        b.push(1);
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&[3; 32]);
        b.push(0); // addresses
        b.push(1); // groups
        b.extend_from_slice(&[9; 32]);
        let sum = blake3::hash(&b);
        b.extend_from_slice(sum.as_bytes());
        let peers = decode_peers(&b).unwrap();
        let p = &peers[&[3; 32]];
        assert!(!p.short_hello && p.addrs.is_empty());
        assert_eq!(p.groups.iter().collect::<Vec<_>>(), [&[9; 32]]);
    }

    #[test]
    fn key_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = load_or_create_key(dir.path(), || [5; 32]).unwrap();
        let k2 = load_or_create_key(dir.path(), || [6; 32]).unwrap();
        assert_eq!(k1, [5; 32]);
        assert_eq!(k2, [5; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(dir.path().join(KEY_FILE), [1u8; 5]).unwrap();
        assert!(matches!(
            load_or_create_key(dir.path(), || [6; 32]),
            Err(StateError::CorruptKey { len: 5, .. })
        ));
    }
}
