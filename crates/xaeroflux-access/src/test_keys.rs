//! Identities for unit tests, generated once (Falcon key generation is slow).

use std::sync::OnceLock;

use xaeroid::XaeroKeypair;

static ADMINS: OnceLock<Vec<XaeroKeypair>> = OnceLock::new();
static MEMBERS: OnceLock<Vec<XaeroKeypair>> = OnceLock::new();

/// Admin-to-be `i` (0..4), deterministic.
pub(crate) fn admin(i: usize) -> &'static XaeroKeypair {
    &ADMINS.get_or_init(|| {
        (0..4u8)
            .map(|i| XaeroKeypair::generate_from_seed(&[i + 1; 32]))
            .collect()
    })[i]
}

/// Member-to-be `i` (0..4), deterministic.
pub(crate) fn member(i: usize) -> &'static XaeroKeypair {
    &MEMBERS.get_or_init(|| {
        (0..4u8)
            .map(|i| XaeroKeypair::generate_from_seed(&[i + 100; 32]))
            .collect()
    })[i]
}
