//! The state root: a binary Merkle tree over a group's view in key order.
//!
//! Leaves are, in this order, every record (`0x00 ‖ 0x01 ‖ record key ‖ record state`)
//! then every relation (`0x00 ‖ 0x02 ‖ relation key ‖ relation state`), each in key
//! order (see `keys`; states in their canonical encodings), hashed with BLAKE3. Inner
//! nodes are `BLAKE3(0x01 ‖ left ‖ right)`, shaped as in RFC 6962 (the left subtree of
//! `n` leaves holds the largest power of two below `n`); the root of no leaves is
//! `BLAKE3("")`. The state is a function of the set of operations (see `record`), and
//! keys are ordered, so two peers holding the same operations have the same root
//! whatever order they applied them in.
//!
//! The tree is built streaming, with one hash per level held at a time, so the root of
//! a view on disk costs one ordered scan and no memory proportional to its size.

/// Kind byte of a record leaf.
pub(crate) const RECORD_LEAF: u8 = 1;
/// Kind byte of a relation leaf.
pub(crate) const EDGE_LEAF: u8 = 2;

/// A leaf hash.
pub(crate) fn leaf(kind: u8, key: &[u8], state: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[0, kind]);
    h.update(key);
    h.update(state);
    *h.finalize().as_bytes()
}

fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(l);
    h.update(r);
    *h.finalize().as_bytes()
}

/// Builds the root from leaves pushed in order.
#[derive(Debug, Default)]
pub(crate) struct RootBuilder {
    /// Complete subtrees: (height, hash), heights strictly decreasing.
    stack: Vec<(u32, [u8; 32])>,
}

impl RootBuilder {
    pub(crate) fn push(&mut self, leaf: [u8; 32]) {
        let mut cur = (0u32, leaf);
        while let Some(&(h, l)) = self.stack.last() {
            if h != cur.0 {
                break;
            }
            self.stack.pop();
            cur = (h + 1, node(&l, &cur.1));
        }
        self.stack.push(cur);
    }

    pub(crate) fn finish(mut self) -> [u8; 32] {
        let Some((_, mut acc)) = self.stack.pop() else {
            return *blake3::hash(b"").as_bytes();
        };
        while let Some((_, l)) = self.stack.pop() {
            acc = node(&l, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6962 definition, recursively.
    fn reference(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => *blake3::hash(b"").as_bytes(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - (n - 1).leading_zeros() - 1);
                node(&reference(&leaves[..k]), &reference(&leaves[k..]))
            }
        }
    }

    #[test]
    fn streaming_equals_recursive_definition() {
        for n in 0..70u8 {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf(1, &[i], b"s")).collect();
            let mut b = RootBuilder::default();
            for l in &leaves {
                b.push(*l);
            }
            assert_eq!(b.finish(), reference(&leaves), "n = {n}");
        }
    }
}
