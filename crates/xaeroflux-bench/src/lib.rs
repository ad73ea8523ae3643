//! Shared helpers for the XaeroFlux benchmarks.
