//! A `xaeroflux daemon` child process for the tests that go through its API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xaeroflux_api::Client;

use super::xf;

/// A running daemon; interrupted and awaited on drop.
pub struct Daemon {
    child: Child,
    /// Lines it printed up to the console URL.
    pub out: Vec<String>,
    /// The console URL (none on a Unix socket).
    url: Option<String>,
    dir: PathBuf,
}

impl Daemon {
    /// A daemon on `dir` with its API on a free loopback port.
    pub fn start(dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_on(dir, "127.0.0.1:0", extra)
    }

    /// A daemon on `dir` with its API on `api_bind` (`unix:PATH` for a socket).
    pub fn start_on(dir: &Path, api_bind: &str, extra: &[&str]) -> Daemon {
        let mut child = xf(dir)
            .args([
                "daemon",
                "--bind",
                "127.0.0.1:0",
                "--api-bind",
                api_bind,
                "--no-lan",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut out = Vec::new();
        let mut url = None;
        loop {
            let line = lines.next().expect("daemon ended early").unwrap();
            out.push(line.clone());
            if let Some(u) = line.strip_prefix("console") {
                url = Some(u.trim().trim_end_matches('/').to_string());
            }
            if line.starts_with("syncing") {
                break;
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Daemon {
            child,
            out,
            url,
            dir: dir.to_path_buf(),
        }
    }

    /// The console URL the daemon printed.
    pub fn url(&self) -> &str {
        self.url
            .as_deref()
            .expect("the daemon printed no console url")
    }

    /// A client of its API, from the files it published.
    pub fn client(&self) -> Client {
        Client::discover(&self.dir).unwrap().expect("no api.addr")
    }

    /// Interrupts it and checks it exits cleanly.
    pub fn stop(mut self) {
        self.interrupt();
    }

    fn interrupt(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(s.success(), "daemon exited with {s}");
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().unwrap().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
