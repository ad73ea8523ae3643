//! Property tests of the paged Merkle file page codec.
#![allow(clippy::unwrap_used, missing_docs)]

use proptest::prelude::*;
use xaeroflux_core::page::{NODES_PER_PAGE, PAGE_SIZE, Page, PageError, PageView};

fn page() -> impl Strategy<Value = Page> {
    (
        any::<u64>(),
        0u64..(u64::MAX - NODES_PER_PAGE as u64),
        prop::collection::vec(any::<[u8; 32]>(), 0..=NODES_PER_PAGE),
    )
        .prop_map(|(mmr_id, first_pos, nodes)| {
            let mut page = Page::new(mmr_id, first_pos);
            for node in &nodes {
                page.push(node).unwrap();
            }
            page
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip(page in page()) {
        let bytes = page.encode();
        prop_assert_eq!(Page::decode(&bytes).unwrap(), page.clone());
        let view = PageView::new(&bytes).unwrap();
        prop_assert_eq!(view.mmr_id(), page.mmr_id());
        prop_assert_eq!(view.first_pos(), page.first_pos());
        prop_assert_eq!(view.nodes(), page.nodes());
        let mut into = [0xffu8; PAGE_SIZE];
        page.encode_into(&mut into);
        prop_assert_eq!(&into[..], &bytes[..]);
    }

    #[test]
    fn any_single_corrupted_byte_is_detected(
        page in page(),
        offset in 0..PAGE_SIZE,
        xor in 1u8..=255,
    ) {
        let mut bytes = page.encode();
        bytes[offset] ^= xor;
        prop_assert!(Page::decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..(PAGE_SIZE + 64))) {
        let _ = Page::decode(&bytes);
    }

    #[test]
    fn arbitrary_page_sized_bytes_never_panic(
        header in prop::collection::vec(any::<u8>(), 32),
        fill in any::<u8>(),
    ) {
        let mut bytes = vec![fill; PAGE_SIZE];
        bytes[..32].copy_from_slice(&header);
        bytes[..4].copy_from_slice(b"XAER");
        bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
        // Almost surely a checksum mismatch; must still be a typed error, not a panic.
        let decoded = Page::decode(&bytes);
        prop_assert!(matches!(decoded, Err(PageError::ChecksumMismatch)) || decoded.is_ok());
    }

    #[test]
    fn truncated_or_extended_pages_are_wrong_size(page in page(), len in 0..(PAGE_SIZE + 100)) {
        prop_assume!(len != PAGE_SIZE);
        let bytes = page.encode();
        let mut v = bytes.to_vec();
        v.resize(len, 0);
        let wrong_size = matches!(Page::decode(&v), Err(PageError::WrongSize { .. }));
        prop_assert!(wrong_size);
    }
}
