//! The `xaeroflux` command-line tool.
fn main() {}
