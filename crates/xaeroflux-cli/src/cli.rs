//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// XaeroFlux: an offline-first, peer-to-peer event store.
#[derive(Debug, Parser)]
#[command(name = "xaeroflux", version, about)]
pub struct Cli {
    /// Data directory (default: the platform data dir, e.g. ~/.local/share/xaeroflux).
    #[arg(long, visible_alias = "db-path", global = true, env = "XAERO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path of the paged Merkle file (default: DATA_DIR/merkle_index.bin).
    #[arg(long, global = true, env = "XAERO_PAGE_PATH")]
    pub page_path: Option<PathBuf>,
    /// Configuration file (default: ~/.config/xaeroflux/config.toml). Flags and
    /// XAERO_* variables take precedence over it.
    #[arg(long, global = true, env = "XAERO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON (one document, or one event per line for streams).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Network settings of the commands that go online.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// UDP address of the QUIC endpoint (default 0.0.0.0:0: all interfaces, any port).
    /// A fixed port keeps tickets valid across restarts.
    #[arg(long, env = "XAERO_BIND")]
    pub bind: Option<SocketAddr>,
    /// Use public relays and address lookup to reach peers behind NATs (default off:
    /// direct addresses only).
    #[arg(long, env = "XAERO_RELAYS")]
    pub relays: bool,
    /// Worker threads of the network runtime (default 2).
    #[arg(long, env = "XAERO_THREADS")]
    pub threads: Option<usize>,
    /// Do not look for (or advertise to) peers of our groups on the local network
    /// with mDNS. LAN discovery is on by default, and off anyway when bound to a
    /// loopback address.
    #[arg(long, env = "XAERO_NO_LAN")]
    pub no_lan: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Records of the state views: put, set, get, del, ls, link, root.
    Kv {
        /// What to do.
        #[command(subcommand)]
        command: crate::kv::KvCommand,
    },
    /// Collaborative documents: new, append, edit, show, ls.
    Doc {
        /// What to do.
        #[command(subcommand)]
        command: crate::doc::DocCommand,
    },
    /// Large payloads: add, fetch, export and list blobs (DATA_DIR/blobs).
    Blob {
        /// What to do with blobs.
        #[command(subcommand)]
        command: crate::blob::BlobCommand,
    },
    /// Manage this node's XaeroID (post-quantum identity).
    Id {
        /// What to do with the identity.
        #[command(subcommand)]
        command: IdCommand,
    },
    /// Write one event; prints its id once it is durable.
    Write {
        /// Payload (UTF-8). Read from standard input when absent.
        payload: Option<String>,
        /// Event type (256 and above; 0..=255 are reserved).
        #[arg(long = "type", short = 't', default_value_t = 1000)]
        event_type: u32,
        /// Group id (64 hex digits; default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Print the event with this id (exit code 1 if absent).
    Get {
        /// Event id, 64 hex digits.
        id: String,
    },
    /// Print the most recent events in arrival order.
    Tail {
        /// How many.
        #[arg(short = 'n', default_value_t = 10)]
        count: u64,
        /// Keep printing events as they are committed (until interrupted).
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<u32>,
    },
    /// Write the events of an NDJSON file (or standard input): one JSON object per
    /// line with `text` or `base64`, optional `type` and `group` (what `export` prints
    /// is accepted). Batches are acknowledged once durable; an interrupted import of a
    /// file resumes after its last acknowledged batch.
    Import {
        /// The NDJSON file (standard input when absent).
        file: Option<PathBuf>,
        /// Lines per batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Start over instead of resuming after the last acknowledged batch.
        #[arg(long)]
        restart: bool,
    },
    /// Print events as NDJSON (one JSON object per line), in local order.
    Export {
        /// Start at this position (printed at the end of an earlier export).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<u32>,
        /// Write to this file instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Query a group's events (the default group unless --group).
    Query {
        /// Group id (64 hex digits).
        #[arg(long)]
        group: Option<String>,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<u32>,
        /// Only events at or after this time (milliseconds since the Unix epoch).
        #[arg(long)]
        since: Option<u64>,
        /// Only this author (64 hex digits).
        #[arg(long)]
        author: Option<String>,
        /// At most this many results.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Similarity search over events whose payloads are text.
    ///
    /// Lexical, not semantic: texts are compared by shared character n-grams (typos,
    /// word forms and shared words match; synonyms do not). The index is kept in
    /// DATA_DIR/vector_index.bin, so repeated searches only index new events.
    Search {
        /// Query text, embedded with the built-in n-gram extractor.
        #[arg(long, conflicts_with = "vector_file")]
        text: Option<String>,
        /// Query vector: a JSON array of DIM numbers in this file. Without --text and
        /// --vector-file the array is read from standard input.
        #[arg(long)]
        vector_file: Option<PathBuf>,
        /// Event types whose payloads are UTF-8 text to index (repeatable).
        #[arg(long = "type", short = 't', default_values_t = [1000])]
        event_types: Vec<u32>,
        /// Number of results.
        #[arg(long, short = 'k', default_value_t = 10)]
        k: usize,
        /// Minimum cosine similarity, in [-1, 1].
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        threshold: f32,
        /// Dimension of the n-gram vectors (a different value rebuilds the index).
        #[arg(long, default_value_t = 256)]
        dim: usize,
    },
    /// Counts per size class, log heads, roots, disk use.
    Stats,
    /// Re-hash every event, recompute every MMR root, check every checkpoint signature.
    Verify,
    /// Run a node on the store with peer-to-peer sync until interrupted.
    ///
    /// Prints the node's tickets, connects to the configured peers, keeps syncing its
    /// groups with every peer it knows and logs peer events (RUST_LOG for more).
    Daemon {
        /// Network settings.
        #[command(flatten)]
        net: NetArgs,
        /// Ticket or invite of a peer to connect to (repeatable; also `peers` in the
        /// configuration file). An invite joins its group.
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Print invites (tickets carrying the group secret) instead of plain tickets.
        #[arg(long)]
        invite: bool,
        /// Address of the local HTTP API and web console: HOST:PORT or unix:PATH
        /// (default 127.0.0.1:7421; `api_bind` in the configuration file).
        #[arg(long, env = "XAERO_API_BIND")]
        api_bind: Option<String>,
        /// Do not serve the local API.
        #[arg(long)]
        no_api: bool,
    },
    /// Manage the groups this node syncs.
    Group {
        /// What to do with groups.
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// List the peers this node remembers and redials.
    Peers,
    /// Show sync at work: this store and two temporary peers on loopback, each writing
    /// events, converge to the same logs and roots; then exit.
    Demo {
        /// Events each node writes.
        #[arg(long, default_value_t = 1000)]
        events: u64,
        /// Temporary peers next to this store (1 to 4).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=4))]
        peers: u8,
    },
}

/// `group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a new group (prints its id).
    Create,
    /// The groups of this store.
    List,
    /// Join the group of an invite and fetch its events from the inviting peer.
    Join {
        /// The invite (`xfx1...`, from `group ticket --invite` or the daemon).
        invite: String,
        /// Seconds to wait for the initial sync to go quiet before exiting.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Network settings.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Print a ticket to connect to this node for a group (the default group unless
    /// --group). Addresses are those of this run's endpoint: set a fixed --bind so that
    /// the daemon listens where the ticket says.
    Ticket {
        /// Group id (64 hex digits; default: the store's default group).
        #[arg(long)]
        group: Option<String>,
        /// Include the group secret: whoever holds the ticket can read and write the
        /// group. Share invites only with members.
        #[arg(long)]
        invite: bool,
        /// Network settings.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Access control: members, roles, invites.
    #[command(flatten)]
    Access(AccessCommand),
}

/// Group access control subcommands (part of `group`; on the local store).
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Put a group under access control with this node as owner (members, roles,
    /// invites, end-to-end encrypted epochs).
    Control {
        /// Group id (64 hex digits; default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// List the members of a group and their roles.
    Members {
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Add a member by its public key (`group key` on its node prints it).
    Add {
        /// The member's XaeroID public key (hex).
        key: String,
        /// reader, writer or admin.
        #[arg(long, default_value = "writer")]
        role: String,
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Remove a member (its later events are refused by every peer) and rotate the
    /// epoch key to the remaining members.
    Remove {
        /// The member's DID or id (64 hex digits).
        member: String,
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Change a member's role.
    Role {
        /// The member's DID or id.
        member: String,
        /// reader, writer or admin.
        role: String,
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Sign an invite granting a role (prints `xfi1...`).
    Invite {
        /// reader, writer or admin.
        #[arg(long, default_value = "writer")]
        role: String,
        /// How long it stays valid: seconds, or with a unit s, m, h, d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Only the first redeemer is admitted.
        #[arg(long)]
        single_use: bool,
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Redeem an access invite (after `group join` of the group's ticket).
    Redeem {
        /// The invite (`xfi1...`).
        invite: String,
    },
    /// Print this node's public key (what `group add` takes).
    Key,
    /// List the invites this node issued, with their state.
    Invites {
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Revoke an unused invite by id (32 hex digits, from `group invites`).
    Revoke {
        /// The invite id.
        id: String,
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Seal a new epoch key to every current member; with `--share`, only hand the
    /// current key to members that miss it (joined since the last rotation).
    Rotate {
        /// Share the current key instead of starting a new epoch.
        #[arg(long)]
        share: bool,
        /// Group id (default: the store's default group).
        #[arg(long)]
        group: Option<String>,
    },
}

/// `id` subcommands.
#[derive(Debug, Subcommand)]
pub enum IdCommand {
    /// Create a new identity key in the data directory.
    New {
        /// Encrypt the key file with a passphrase (from $XAERO_PASSPHRASE or the first
        /// line of standard input).
        #[arg(long)]
        passphrase: bool,
        /// Replace an existing key (the old identity is lost).
        #[arg(long)]
        force: bool,
    },
    /// Show the identity: DID, short id, key path.
    Show,
}
