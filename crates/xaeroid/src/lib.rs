//! XaeroID: post-quantum identities for XaeroFlux (work in progress).
