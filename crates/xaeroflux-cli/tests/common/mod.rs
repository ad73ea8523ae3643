//! Running the `xaeroflux` binary against a temporary data directory, isolated from the
//! caller's environment and configuration.
#![allow(dead_code, clippy::unwrap_used)]

pub mod daemon;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary with `--data-dir dir`, no inherited data dir, passphrase, API address or
/// configuration file.
pub fn xf(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xaeroflux"));
    c.arg("--data-dir")
        .arg(dir)
        .env_remove("XAERO_DATA_DIR")
        .env_remove("XAERO_PASSPHRASE")
        .env_remove("XAERO_API_BIND")
        .env("XAERO_CONFIG", dir.join("absent-config.toml"));
    c
}

/// Runs one command to the end, with `stdin` as its standard input (empty if `None`).
pub fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = xf(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// The standard output of a command that must have succeeded.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}
