//! Snapshot codec. The byte layout is specified in `docs/FORMAT.md` ("Vector index
//! file") and repeated at [`encode`].

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::distance::Kernels;
use crate::error::{FormatError, Result};
use crate::graph::Graph;
use crate::params::{HnswParams, MAX_LAYER, Metric};

/// First eight bytes of every index file.
pub(crate) const MAGIC: [u8; 8] = *b"XFVECIDX";
/// Current format version.
pub(crate) const VERSION: u32 = 1;
/// Fixed header length.
pub(crate) const HEADER_LEN: usize = 80;
/// "No entry point" marker.
const NONE: u32 = u32::MAX;

/// Hashes everything written through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Format (all integers little-endian):
/// ```text
///  0  magic "XFVECIDX"                  [8]
///  8  version = 1                       u32
/// 12  metric (0 cosine, 1 L2)           u8, then 3 zero bytes
/// 16  dimension                         u32
/// 20  max_connections M                 u32
/// 24  max_layer                         u32
/// 28  ef_construction                   u32
/// 32  max_elements                      u64
/// 40  seed                              u64
/// 48  level generator state             u64
/// 56  count n                           u64
/// 64  covered store position            u64
/// 72  entry point id (u32::MAX if none) u32
/// 76  max level                         u32
/// 80  keys                              n x u64
///     levels                            n x u8
///     vectors (normalised for cosine)   n x dimension x f32
///     level-0 lists                     n x (1 + 2M) x u32: count, ids, zero fill
///     upper lists, nodes in id order    level(id) x (1 + M) x u32, level 1 first
///     checksum                          [32] BLAKE3 of every preceding byte
/// ```
pub(crate) fn encode(g: &Graph, rng: u64, position: u64, out: impl Write) -> Result<()> {
    let mut w = Hashing {
        inner: out,
        hasher: blake3::Hasher::new(),
    };
    let p = &g.params;
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&[p.metric.code(), 0, 0, 0]);
    for v in [
        p.dimension,
        p.max_connections,
        p.max_layer,
        p.ef_construction,
    ] {
        h.extend_from_slice(&(v as u32).to_le_bytes());
    }
    for v in [p.max_elements as u64, p.seed, rng, g.len() as u64, position] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(&g.entry.unwrap_or(NONE).to_le_bytes());
    h.extend_from_slice(&(g.max_level as u32).to_le_bytes());
    debug_assert_eq!(h.len(), HEADER_LEN);
    w.write_all(&h)?;

    let mut buf = Vec::with_capacity(64 * 1024);
    let flush = |w: &mut Hashing<_>, buf: &mut Vec<u8>, force: bool| -> io::Result<()> {
        if force || buf.len() >= 60 * 1024 {
            w.write_all(buf)?;
            buf.clear();
        }
        Ok(())
    };
    for k in &g.keys {
        buf.extend_from_slice(&k.to_le_bytes());
        flush(&mut w, &mut buf, false)?;
    }
    flush(&mut w, &mut buf, true)?;
    w.write_all(&g.levels)?;
    for id in 0..g.len() as u32 {
        for x in g.unpadded(id) {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        flush(&mut w, &mut buf, false)?;
    }
    for words in [&g.links0[..]]
        .into_iter()
        .chain(g.upper.iter().map(|u| &u[..]))
    {
        for x in words {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        flush(&mut w, &mut buf, false)?;
    }
    flush(&mut w, &mut buf, true)?;
    let sum = w.hasher.finalize();
    w.inner.write_all(sum.as_bytes())?;
    w.inner.flush()?;
    Ok(())
}

/// Writes `path` atomically: temp file beside it, fsync, rename, fsync the directory.
pub(crate) fn save(g: &Graph, rng: u64, position: u64, path: &Path) -> Result<()> {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let file = File::create(&tmp)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = encode(g, rng, position, &mut out).and_then(|()| {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Little-endian reader over a slice whose bounds were checked up front.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], FormatError> {
        if self.bytes.len() < n {
            return Err(invalid("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self) -> std::result::Result<u32, FormatError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> std::result::Result<u64, FormatError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

fn invalid(reason: &'static str) -> FormatError {
    FormatError::Invalid { reason }
}

/// Decodes a snapshot. Order of checks: magic, version, header fields, exact file
/// length from the header (checked arithmetic, before any allocation), checksum, then
/// every structural invariant the search code relies on (ids in range, list lengths,
/// link targets present on the level, entry point, unique keys, finite vectors).
pub(crate) fn decode(bytes: &[u8], kernels: Kernels) -> Result<(Graph, u64, u64)> {
    let len = bytes.len() as u64;
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        return Err(FormatError::BadMagic.into());
    }
    if bytes.len() < HEADER_LEN + 32 {
        return Err(FormatError::LengthMismatch {
            len,
            expected: (HEADER_LEN + 32) as u64,
        }
        .into());
    }
    let mut r = Reader { bytes: &bytes[8..] };
    let version = r.u32()?;
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion { version }.into());
    }
    let flags = r.take(4)?;
    let metric = Metric::from_code(flags[0]).ok_or(invalid("unknown metric"))?;
    if flags[1..] != [0, 0, 0] {
        return Err(invalid("reserved bytes not zero").into());
    }
    let dimension = r.u32()? as usize;
    let m = r.u32()? as usize;
    let max_layer = r.u32()? as usize;
    let ef_construction = r.u32()? as usize;
    let max_elements = r.u64()?;
    let seed = r.u64()?;
    let rng = r.u64()?;
    let count = r.u64()?;
    let position = r.u64()?;
    let entry = r.u32()?;
    let max_level = r.u32()? as usize;

    let mut params = HnswParams::new(dimension);
    params.metric = metric;
    params.max_connections = m;
    params.max_layer = max_layer;
    params.ef_construction = ef_construction;
    params.max_elements = usize::try_from(max_elements).map_err(|_| invalid("max_elements"))?;
    params.seed = seed;
    params
        .validate()
        .map_err(|_| invalid("parameters out of range"))?;
    if count >= u64::from(u32::MAX) - 1 {
        return Err(invalid("count").into());
    }

    // Length without the upper lists, which depend on the levels; all in u64 with
    // overflow checks (dimension <= 65536, m <= 256 keep each factor small).
    let stride0 = 1 + 2 * m as u64;
    let fixed = (|| {
        let per_node = 8u64 + 1 + 4 * dimension as u64 + 4 * stride0;
        count
            .checked_mul(per_node)?
            .checked_add(HEADER_LEN as u64 + 32)
    })();
    let Some(fixed) = fixed.filter(|&f| f <= len) else {
        return Err(FormatError::LengthMismatch {
            len,
            expected: fixed.unwrap_or(u64::MAX),
        }
        .into());
    };
    let n = count as usize;
    let levels_at = HEADER_LEN + 8 * n;
    let levels = &bytes[levels_at..levels_at + n];
    let upper_words: u64 = levels.iter().map(|&l| u64::from(l) * (1 + m as u64)).sum();
    let expected = fixed + 4 * upper_words;
    if expected != len {
        return Err(FormatError::LengthMismatch { len, expected }.into());
    }
    let body = bytes.len() - 32;
    if blake3::hash(&bytes[..body]).as_bytes()[..] != bytes[body..] {
        return Err(FormatError::Checksum.into());
    }

    let mut g = Graph::with_reserve(params, kernels, n);
    let mut r = Reader {
        bytes: &bytes[HEADER_LEN..body],
    };
    let keys = r.take(8 * n)?;
    let _ = r.take(n)?;
    let vectors = r.take(4 * dimension * n)?;
    let mut row = vec![0f32; dimension];
    for (id, key) in keys.chunks_exact(8).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(key);
        let key = u64::from_le_bytes(a);
        let src = &vectors[id * 4 * dimension..(id + 1) * 4 * dimension];
        for (x, b) in row.iter_mut().zip(src.chunks_exact(4)) {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if !x.is_finite() {
                return Err(invalid("vector not finite").into());
            }
        }
        let level = usize::from(levels[id]);
        if level > max_layer || level > MAX_LAYER {
            return Err(invalid("level above max_layer").into());
        }
        if g.ids.contains_key(&key) {
            return Err(invalid("duplicate key").into());
        }
        g.push_raw(key, &row, level);
    }
    let words = |r: &mut Reader<'_>, k: usize| -> std::result::Result<Vec<u32>, FormatError> {
        let raw = r.take(4 * k)?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    g.links0 = words(&mut r, n * stride0 as usize)?;
    for (upper, &level) in g.upper.iter_mut().zip(levels) {
        *upper = words(&mut r, usize::from(level) * (1 + m))?;
    }
    // Invariants the search code indexes by.
    for (id, &top) in levels.iter().enumerate() {
        for level in 0..=usize::from(top) {
            let (list, cap) = if level == 0 {
                let s = stride0 as usize;
                (&g.links0[id * s..(id + 1) * s], 2 * m)
            } else {
                let s = 1 + m;
                (&g.upper[id][(level - 1) * s..level * s], m)
            };
            let c = list[0] as usize;
            if c > cap {
                return Err(invalid("neighbour list too long").into());
            }
            for &t in &list[1..1 + c] {
                if t as usize >= n || usize::from(levels[t as usize]) < level {
                    return Err(invalid("link to a node not on that level").into());
                }
            }
            if list[1 + c..].iter().any(|&x| x != 0) {
                return Err(invalid("unused list slots not zero").into());
            }
        }
    }
    if n == 0 {
        if entry != NONE || max_level != 0 {
            return Err(invalid("entry point in an empty index").into());
        }
    } else {
        let top = levels.iter().copied().max().map_or(0, usize::from);
        if entry as usize >= n || usize::from(levels[entry as usize]) != top || max_level != top {
            return Err(invalid("entry point is not on the top level").into());
        }
        g.entry = Some(entry);
        g.max_level = max_level;
    }
    Ok((g, rng, position))
}
