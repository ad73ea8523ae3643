//! `Page::decode` / `PageView::new` (and `new_prechecked`) on arbitrary bytes: never
//! panics, anything
//! accepted re-encodes to the same bytes, and a valid page with one corrupted byte is
//! rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::page::{PAGE_SIZE, Page, PageView};

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = Page::decode(data) {
        assert_eq!(&page.encode()[..], data);
    }
    // Page-sized input built from the fuzz bytes, so checks past the size run too.
    let mut bytes = [0u8; PAGE_SIZE];
    let n = data.len().min(PAGE_SIZE);
    bytes[..n].copy_from_slice(&data[..n]);
    if let Ok(view) = PageView::new(&bytes) {
        assert_eq!(view.to_page().encode(), bytes);
    }
    // Without the checksum every other field is still checked: never a panic, and
    // whatever parses exposes only in-range nodes.
    if let Ok(view) = PageView::new_prechecked(&bytes) {
        assert!(view.len() <= xaeroflux_core::page::NODES_PER_PAGE);
        assert_eq!(view.nodes().len(), view.len());
    }
    // A well-formed page built from the input, then one byte flipped.
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut page = Page::new(u64::from(first), u64::from(first) * 3);
    for node in rest.chunks_exact(32).take(510) {
        let mut h = [0u8; 32];
        h.copy_from_slice(node);
        if page.push(&h).is_err() {
            break;
        }
    }
    let mut encoded = page.encode();
    assert_eq!(Page::decode(&encoded).as_ref(), Ok(&page));
    let offset = (usize::from(first) * 131 + rest.len()) % PAGE_SIZE;
    encoded[offset] ^= 0x5a;
    assert!(Page::decode(&encoded).is_err());
});
