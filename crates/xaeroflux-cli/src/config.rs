//! The configuration file, `~/.config/xaeroflux/config.toml` (or `$XAERO_CONFIG`).
//!
//! Precedence, highest first: command-line flags, `XAERO_*` environment variables (both
//! handled by clap), this file, built-in defaults. Every key is optional:
//!
//! ```toml
//! data_dir = "/var/lib/xaeroflux"      # LMDB environment + key + Merkle file
//! page_path = "/var/lib/xaeroflux/merkle_index.bin"
//! durability = "batched"               # none | batched | immediate
//! threads = 2                          # network runtime worker threads
//! bind = "0.0.0.0:0"                   # UDP address of the QUIC endpoint
//! relays = false                       # use public relays / hole punching
//! lan = true                           # find group peers on the LAN (mDNS)
//! peers = ["xfx1..."]                  # tickets to connect to on start
//! api_bind = "127.0.0.1:7421"          # the daemon's HTTP API (or "unix:/path")
//! blob_eager_max_bytes = 16777216      # fetch attached blobs up to this size at once
//! blob_grace_secs = 86400              # keep an unreferenced blob this long
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xaeroflux::{Builder, NetworkOptions, XaeroFlux};

use crate::cli::{Cli, NetArgs};

/// The file's contents; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Merkle page file.
    pub page_path: Option<PathBuf>,
    /// `none`, `batched` or `immediate`.
    pub durability: Option<String>,
    /// Network runtime worker threads.
    pub threads: Option<usize>,
    /// QUIC endpoint address.
    pub bind: Option<SocketAddr>,
    /// Whether to use relays.
    pub relays: Option<bool>,
    /// Whether to find peers on the LAN with mDNS.
    pub lan: Option<bool>,
    /// Tickets of peers to connect to on start.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Address of the daemon's HTTP API.
    pub api_bind: Option<String>,
    /// Attached blobs up to this size are fetched when their event arrives.
    pub blob_eager_max_bytes: Option<u64>,
    /// Seconds an unreferenced blob is kept before GC releases it.
    pub blob_grace_secs: Option<u64>,
}

impl FileConfig {
    /// The default location: `$XAERO_CONFIG`, else `<config dir>/xaeroflux/config.toml`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("XAERO_CONFIG") {
            return Some(PathBuf::from(p));
        }
        dirs::config_dir().map(|d| d.join("xaeroflux").join("config.toml"))
    }

    /// Reads `path`; a missing file is the empty configuration, a malformed one an error
    /// naming the file.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let cfg: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if let Some(d) = &cfg.durability {
            parse_durability(d).with_context(|| format!("in {}", path.display()))?;
        }
        if cfg.threads == Some(0) {
            bail!("in {}: threads must be at least 1", path.display());
        }
        Ok(cfg)
    }
}

/// Where and how this invocation opens the store: flags and environment over the file
/// over defaults.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Data directory.
    pub dir: PathBuf,
    /// Merkle page file, if not the default.
    pub page_path: Option<PathBuf>,
    /// Durability, if not the default.
    pub durability: Option<xaeroflux::Durability>,
    /// The configuration file's contents.
    pub file: FileConfig,
}

impl Ctx {
    /// Resolves the command line against the configuration file.
    pub fn new(cli: &Cli) -> Result<Self> {
        let path = cli.config.clone().or_else(FileConfig::default_path);
        let file = FileConfig::load(path.as_deref())?;
        let dir = cli
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(xaeroflux::default_data_dir);
        let page_path = cli.page_path.clone().or_else(|| file.page_path.clone());
        let durability = file
            .durability
            .as_deref()
            .map(parse_durability)
            .transpose()?;
        Ok(Self {
            dir,
            page_path,
            durability,
            file,
        })
    }

    /// A store builder for this context, offline (see [`Ctx::online`]).
    pub fn builder(&self) -> Builder {
        let mut b = XaeroFlux::builder(&self.dir).offline();
        if let Some(p) = &self.page_path {
            b = b.page_path(p);
        }
        if let Some(d) = self.durability {
            b = b.durability(d);
        }
        if let Ok(pass) = std::env::var("XAERO_PASSPHRASE") {
            b = b.key_passphrase(pass.into_bytes());
        }
        b
    }

    /// Opens the store in this process without networking (commands that the daemon's
    /// API does not serve yet: `kv`, `blob`).
    pub fn open(&self) -> Result<XaeroFlux> {
        self.builder()
            .open()
            .with_context(|| format!("opening the store in {}", self.dir.display()))
    }

    /// Network options: flags and environment over the file over defaults.
    pub fn network(&self, args: &NetArgs) -> Result<NetworkOptions> {
        let mut opts = NetworkOptions::for_data_dir(&self.dir);
        if let Some(bind) = args.bind.or(self.file.bind) {
            opts.config.bind_addr = bind;
        }
        opts.config.relays = args.relays || self.file.relays.unwrap_or(false);
        // Nothing on the LAN can reach a loopback endpoint: no advertisements then.
        opts.config.lan_discovery = cfg!(feature = "mdns")
            && !args.no_lan
            && self.file.lan.unwrap_or(true)
            && !opts.config.bind_addr.ip().is_loopback();
        if let Some(t) = args.threads.or(self.file.threads) {
            if t == 0 {
                bail!("threads must be at least 1");
            }
            opts.threads = t;
        }
        if let Some(b) = opts.blobs.as_mut() {
            if let Some(max) = self.file.blob_eager_max_bytes {
                b.policy.eager_max_bytes = max;
            }
            if let Some(g) = self.file.blob_grace_secs {
                b.grace = std::time::Duration::from_secs(g);
            }
        }
        Ok(opts)
    }

    /// The daemon's API address: the flag (or `XAERO_API_BIND`) over the file over
    /// `127.0.0.1:7421`.
    pub fn api_bind(&self, flag: Option<&str>) -> Result<xaeroflux_api::ApiBind> {
        let s = flag
            .or(self.file.api_bind.as_deref())
            .unwrap_or(xaeroflux_api::DEFAULT_API_BIND);
        Ok(s.parse()?)
    }

    /// Opens the store as a syncing node.
    pub fn open_online(&self, args: &NetArgs) -> Result<XaeroFlux> {
        self.builder()
            .network(self.network(args)?)
            .open()
            .with_context(|| format!("opening the store in {}", self.dir.display()))
    }
}

/// Parses a durability name.
pub fn parse_durability(s: &str) -> Result<xaeroflux::Durability> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "none" => xaeroflux::Durability::None,
        "batched" => xaeroflux::Durability::Batched,
        "immediate" => xaeroflux::Durability::Immediate,
        other => bail!("unknown durability {other:?} (expected none, batched or immediate)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses_and_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        assert!(FileConfig::load(Some(&p)).unwrap().data_dir.is_none());
        std::fs::write(
            &p,
            "data_dir = \"/x\"\ndurability = \"Immediate\"\nthreads = 3\nbind = \"127.0.0.1:4000\"\nrelays = true\npeers = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let c = FileConfig::load(Some(&p)).unwrap();
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/x")));
        assert_eq!(c.threads, Some(3));
        assert_eq!(c.bind, Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(c.relays, Some(true));
        assert_eq!(c.peers, ["a", "b"]);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        for (text, needle) in [
            ("durability = \"sometimes\"", "unknown durability"),
            ("threads = 0", "at least 1"),
            ("colour = 1", "unknown field"),
            ("bind = \"nowhere\"", "parsing"),
            ("[[[", "parsing"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = format!("{:#}", FileConfig::load(Some(&p)).unwrap_err());
            assert!(e.contains(needle), "{text}: {e}");
            assert!(e.contains("config.toml"), "{text}: {e}");
        }
    }

    /// LAN discovery: on by default (with the `mdns` feature), off with `--no-lan`,
    /// `lan = false` or a loopback bind address.
    #[test]
    fn lan_discovery_resolution() {
        let ctx = |lan: Option<bool>| Ctx {
            dir: PathBuf::from("/nonexistent"),
            page_path: None,
            durability: None,
            file: FileConfig {
                lan,
                ..FileConfig::default()
            },
        };
        let args = |bind: Option<&str>, no_lan: bool| NetArgs {
            bind: bind.map(|b| b.parse().unwrap()),
            relays: false,
            threads: None,
            no_lan,
        };
        let lan = |c: &Ctx, a: &NetArgs| c.network(a).unwrap().config.lan_discovery;
        assert_eq!(lan(&ctx(None), &args(None, false)), cfg!(feature = "mdns"));
        assert_eq!(
            lan(&ctx(Some(true)), &args(Some("0.0.0.0:4000"), false)),
            cfg!(feature = "mdns")
        );
        assert!(!lan(&ctx(None), &args(None, true)));
        assert!(!lan(&ctx(Some(false)), &args(None, false)));
        assert!(!lan(&ctx(None), &args(Some("127.0.0.1:0"), false)));
        assert!(!lan(&ctx(None), &args(Some("[::1]:0"), false)));
    }

    /// The blob keys of the file reach the node's blob options; absent, the defaults.
    #[test]
    fn blob_options_from_the_file() {
        let file: FileConfig =
            toml::from_str("blob_eager_max_bytes = 1024\nblob_grace_secs = 60\n").unwrap();
        let ctx = |file| Ctx {
            dir: PathBuf::from("/nonexistent"),
            page_path: None,
            durability: None,
            file,
        };
        let args = NetArgs {
            bind: None,
            relays: false,
            threads: None,
            no_lan: true,
        };
        let b = ctx(file).network(&args).unwrap().blobs.unwrap();
        assert_eq!(b.policy.eager_max_bytes, 1024);
        assert_eq!(b.grace, std::time::Duration::from_secs(60));
        let d = ctx(FileConfig::default())
            .network(&args)
            .unwrap()
            .blobs
            .unwrap();
        assert_eq!(d.grace, xaeroflux::BlobOptions::default().grace);
    }
}
