//! The commands that go online: `daemon`, `group`, `peers` and the sync `demo`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use xaeroflux::{
    AuthorId, GroupId, NET_DIR, NetConfig, NetworkOptions, SystemEvent, SystemSubscription, Ticket,
    XaeroFlux, known_peers,
};
use xaeroflux_core::event::hex;

use xaeroflux_api::{ApiBind, ApiOptions, ApiServer};

use crate::backend::{Node, daemon_client};
use crate::cli::{GroupCommand, NetArgs};
use crate::config::Ctx;
use crate::data::print_json;

/// Event type of the demo's notes.
const DEMO_TYPE: u32 = 1000;
/// How long the demo waits for the nodes to converge.
const DEMO_DEADLINE: Duration = Duration::from_secs(120);
/// No sync progress for this long ends an initial sync.
const QUIET: Duration = Duration::from_secs(2);

fn endpoint_hex(e: &[u8; 32]) -> String {
    hex(&e[..8])
}

/// `xaeroflux daemon`.
pub fn daemon(
    ctx: &Ctx,
    net: &NetArgs,
    peers: &[String],
    invite: bool,
    api: Option<ApiBind>,
) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the interrupt handler")?;
    }
    let lan = ctx.network(net)?.config.lan_discovery;
    let store = Arc::new(ctx.open_online(net)?);
    let mut events = store.system_events();
    let addr = store.node_addr()?;
    println!("node       {}", store.identity().to_did());
    println!("data dir   {}", ctx.dir.display());
    let server = match api {
        Some(bind) => serve_api(ctx, &store, &bind),
        None => None,
    };
    println!("endpoint   {}", hex(&addr.endpoint));
    for a in &addr.addrs {
        println!("  listening on {a}");
    }
    if lan {
        println!("lan        finding peers of these groups on the local network (mDNS; --no-lan)");
    }
    for t in peers.iter().chain(&ctx.file.peers) {
        dial(&store, t)?;
    }
    for g in store.groups() {
        let default = if g == store.default_group() {
            " (default)"
        } else {
            ""
        };
        println!("group      {g}{default}");
        let kind = if invite { "invite" } else { "ticket" };
        println!("  {kind}   {}", store.ticket(&g, invite)?);
    }
    if !invite {
        println!("invites    `--invite` prints tickets that carry the group secret (members only)");
    }
    println!("syncing; Ctrl-C to stop");
    let mut bar = SyncBar::new();
    let mut blob_bars = crate::blob::FetchBars::default();
    while !stop.load(Ordering::SeqCst) {
        if let Some(e) = events.next_timeout(Duration::from_millis(200)) {
            bar.on_event(&e);
            blob_bars.on_event(&e);
        }
        bar.tick();
    }
    bar.finish();
    println!("stopping");
    if let Some(s) = server {
        s.shutdown();
    }
    // The API's runtime is gone, so this is the last handle unless a verification
    // thread still runs; then the store closes when that ends.
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves the local API and console and publishes its address for the CLI; a failure
/// is reported and the daemon syncs on without it.
fn serve_api(ctx: &Ctx, store: &Arc<XaeroFlux>, bind: &ApiBind) -> Option<ApiServer> {
    let started = xaeroflux_api::load_or_create_token(&ctx.dir)
        .map_err(anyhow::Error::from)
        .and_then(|token| {
            let mut opts = ApiOptions::new(token);
            (opts.views, opts.docs) = open_state(ctx, store);
            let mut s = ApiServer::start(store.clone(), bind, opts)?;
            s.publish(&ctx.dir)?;
            Ok(s)
        });
    match started {
        Ok(s) => {
            println!(
                "api        {} (token in {})",
                s.bound(),
                ctx.dir.join(xaeroflux_api::TOKEN_FILE).display()
            );
            if let Some(url) = s.url() {
                println!("console    {url}/");
            }
            Some(s)
        }
        Err(e) => {
            eprintln!("warning: the local api is not served: {e:#}");
            None
        }
    }
}

/// The record views and documents the API serves; one that does not open is reported
/// and its routes answer `views_off`.
fn open_state(
    ctx: &Ctx,
    store: &Arc<XaeroFlux>,
) -> (
    Option<Arc<xaeroflux_views::Views>>,
    Option<Arc<xaeroflux_docs::Docs>>,
) {
    use xaeroflux_docs::{Docs, DocsConfig};
    use xaeroflux_views::{Views, ViewsConfig};
    let views = Views::open(
        store.clone(),
        ViewsConfig::new(Views::default_dir(&ctx.dir)),
    )
    .map_err(|e| eprintln!("warning: record views are not served: {e:#}"))
    .ok();
    let docs = Docs::open(store.clone(), DocsConfig::new(Docs::default_dir(&ctx.dir)))
        .map_err(|e| eprintln!("warning: documents are not served: {e:#}"))
        .ok();
    (views.map(Arc::new), docs.map(Arc::new))
}

/// Connects to a ticket's peer, joining the group first if it is an invite.
fn dial(store: &XaeroFlux, ticket: &str) -> Result<()> {
    let t: Ticket = ticket
        .trim()
        .parse()
        .with_context(|| format!("ticket {ticket:?}"))?;
    if t.secret.is_some() {
        let g = store.join(ticket)?;
        println!(
            "joined     group {} via {}",
            g.id(),
            endpoint_hex(&t.endpoint)
        );
    } else {
        store.connect(ticket)?;
        println!(
            "dialling   {} for group {}",
            endpoint_hex(&t.endpoint),
            GroupId(t.group)
        );
    }
    Ok(())
}

/// Shows peer events as lines and received events as a progress spinner.
struct SyncBar {
    bar: Option<ProgressBar>,
    events: u64,
    bytes: u64,
    started: Instant,
    last: Instant,
}

impl SyncBar {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            bar: None,
            events: 0,
            bytes: 0,
            started: now,
            last: now,
        }
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
    }

    fn on_event(&mut self, e: &SystemEvent) {
        match e {
            SystemEvent::PeerConnected {
                peer,
                endpoint,
                group,
            } => self.println(format!(
                "peer       {} ({}) connected for group {}",
                AuthorId(*peer.as_bytes()).short(),
                endpoint_hex(endpoint),
                group.short()
            )),
            SystemEvent::PeerDisconnected {
                endpoint, reason, ..
            } => self.println(format!(
                "peer       {} disconnected: {reason}",
                endpoint_hex(endpoint)
            )),
            SystemEvent::PeerRejected {
                endpoint,
                code,
                why,
                ..
            } => self.println(format!(
                "peer       {} rejected (code {code}): {why}",
                endpoint_hex(endpoint)
            )),
            SystemEvent::ForkDetected {
                group,
                author,
                length,
            } => self.println(format!(
                "FORK       author {} forked its log of group {} at length {length}",
                author.short(),
                group.short()
            )),
            SystemEvent::WriterFailed { reason } => {
                self.println(format!("ERROR      storage writer failed: {reason}"));
            }
            SystemEvent::SyncProgress { events, bytes, .. } => {
                if self.bar.is_none() {
                    let b = ProgressBar::new_spinner();
                    b.set_style(
                        ProgressStyle::with_template("{spinner} syncing: {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    self.bar = Some(b);
                    self.events = 0;
                    self.bytes = 0;
                    self.started = Instant::now();
                }
                self.events += events;
                self.bytes += bytes;
                self.last = Instant::now();
                let secs = self.started.elapsed().as_secs_f64().max(1e-3);
                if let Some(b) = &self.bar {
                    b.set_message(format!(
                        "{} events received ({} KiB, {:.0} events/s)",
                        self.events,
                        self.bytes / 1024,
                        self.events as f64 / secs
                    ));
                }
            }
            _ => {}
        }
    }

    /// Ends a burst of progress after a quiet spell.
    fn tick(&mut self) {
        if self.bar.is_some() && self.last.elapsed() >= QUIET {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            println!(
                "synced     {} events ({} KiB) in {:.1} s",
                self.events,
                self.bytes / 1024,
                self.last.duration_since(self.started).as_secs_f64()
            );
        }
    }
}

/// `xaeroflux group ...`.
pub fn group(ctx: &Ctx, cmd: GroupCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        GroupCommand::Access(c) => return crate::access::run(ctx, c),
        GroupCommand::Create => {
            let node = Node::open(ctx)?;
            let g = node.create_group()?;
            if json {
                print_json(&g)?;
            } else {
                println!("{}", g.id);
            }
            node.close()?;
        }
        GroupCommand::List => {
            let node = Node::open(ctx)?;
            let groups = node.groups()?;
            if json {
                print_json(&groups)?;
            }
            for g in groups.iter().filter(|_| !json) {
                let default = if g.default { " (default)" } else { "" };
                println!("{}  {} logs, {} events{default}", g.id, g.logs, g.events);
            }
            node.close()?;
        }
        GroupCommand::Join { invite, wait, net } => {
            if let Some(c) = daemon_client(ctx)? {
                let g = c.join(&invite)?;
                if json {
                    print_json(&g)?;
                } else {
                    println!("joined     group {} (the daemon syncs it)", g.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let store = ctx.open_online(&net)?;
            let mut events = store.system_events();
            let g = store.join(&invite)?;
            println!("joined     group {}", g.id());
            let synced = wait_for_sync(&mut events, Duration::from_secs(wait));
            if !synced {
                println!(
                    "no peer session yet; `xaeroflux daemon` keeps dialling the inviting peer"
                );
            }
            let n: u64 = store.read()?.logs_of(&g.id())?.iter().map(|(_, n)| n).sum();
            println!("events     {n} in the group");
            store.close()?;
        }
        GroupCommand::Ticket { group, invite, net } => {
            if let Some(c) = daemon_client(ctx)? {
                let g = match group {
                    Some(g) => g,
                    None => c.identity()?.default_group,
                };
                let t = c.ticket(&g, invite)?;
                if json {
                    print_json(&t)?;
                } else {
                    println!("{}", t.ticket);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let store = ctx.open_online(&net)?;
            let g = match group {
                Some(h) => GroupId::from_hex(&h).context("group id")?,
                None => store.default_group(),
            };
            if ctx.network(&net)?.config.bind_addr.port() == 0 {
                eprintln!(
                    "note: this node binds a random port each start; set `--bind` (or `bind` \
                     in the config file) to the same fixed address for the daemon so the \
                     ticket stays valid"
                );
            }
            println!("{}", store.ticket(&g, invite)?);
            store.close()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until a peer session has delivered its backlog: connected, then no progress
/// for [`QUIET`]. False if no session started within `wait`.
fn wait_for_sync(events: &mut SystemSubscription, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut bar = SyncBar::new();
    let mut connected = false;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        if let Some(e) = events.next_timeout(Duration::from_millis(100)) {
            if matches!(e, SystemEvent::PeerConnected { .. }) {
                connected = true;
                since = Instant::now();
            }
            if matches!(e, SystemEvent::SyncProgress { .. }) {
                since = Instant::now();
            }
            bar.on_event(&e);
        }
        if connected && since.elapsed() >= QUIET {
            break;
        }
    }
    bar.finish();
    connected
}

/// `xaeroflux peers`: the remembered peers, read from the state directory.
pub fn peers(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    if let Some(c) = daemon_client(ctx)? {
        let peers = c.peers()?;
        if json {
            print_json(&peers)?;
            return Ok(ExitCode::SUCCESS);
        }
        if peers.is_empty() {
            println!("no peers");
        }
        for p in &peers {
            println!(
                "{}  {}  addrs {}  groups {}  received {} events, {} B sent, {} B received",
                p.endpoint,
                if p.connected { "connected" } else { "dialling" },
                if p.addrs.is_empty() {
                    "-".into()
                } else {
                    p.addrs.join(",")
                },
                p.groups
                    .iter()
                    .map(|g| &g[..10.min(g.len())])
                    .collect::<Vec<_>>()
                    .join(","),
                p.events_received,
                p.bytes_sent,
                p.bytes_received
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let peers = known_peers(&ctx.dir);
    if json {
        let list: Vec<serde_json::Value> = peers
            .iter()
            .map(|(e, p)| {
                serde_json::json!({
                    "endpoint": hex(e),
                    "addrs": p.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "groups": p.groups.iter().map(|g| hex(g)).collect::<Vec<_>>(),
                    "known": true,
                    "connected": false,
                })
            })
            .collect();
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if peers.is_empty() {
        println!(
            "no known peers (add one with `xaeroflux daemon --peer <ticket>` or `group join`)"
        );
    }
    for (endpoint, p) in peers {
        let addrs: Vec<String> = p.addrs.iter().map(ToString::to_string).collect();
        let groups: Vec<String> = p.groups.iter().map(|g| GroupId(*g).short()).collect();
        println!(
            "{}  addrs {}  groups {}",
            hex(&endpoint),
            if addrs.is_empty() {
                "-".into()
            } else {
                addrs.join(",")
            },
            groups.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One demo node.
struct DemoNode {
    name: String,
    store: XaeroFlux,
}

/// Every author log of `group` on `store`: (author, length, root), sorted.
fn group_state(store: &XaeroFlux, group: &GroupId) -> Result<Vec<(AuthorId, u64, [u8; 32])>> {
    let snap = store.read()?;
    let mut out = Vec::new();
    for (author, _) in snap.logs_of(group)? {
        if let Some((len, root)) = snap.log_root(group, &author)? {
            out.push((author, len, root));
        }
    }
    out.sort();
    Ok(out)
}

/// One hash over a group's log roots: equal on two nodes iff they hold the same logs.
fn state_digest(state: &[(AuthorId, u64, [u8; 32])]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for (a, len, root) in state {
        h.update(a.as_bytes());
        h.update(&len.to_le_bytes());
        h.update(root);
    }
    *h.finalize().as_bytes()
}

/// `xaeroflux demo`: this store plus temporary peers on loopback converge.
pub fn demo(ctx: &Ctx, events: u64, peers: u8) -> Result<ExitCode> {
    let t0 = Instant::now();
    let loopback = |state_dir| NetworkOptions {
        config: NetConfig {
            state_dir: Some(state_dir),
            ..NetConfig::loopback()
        },
        threads: 1,
        blobs: None,
    };
    let home = ctx
        .builder()
        .network(loopback(ctx.dir.join(NET_DIR)))
        .open()
        .with_context(|| format!("opening the store in {}", ctx.dir.display()))?;
    let group = home.default_group();
    let invite = home.ticket(&group, true)?;
    println!("store      {} (node A)", ctx.dir.display());
    println!("group      {group}");
    let tmp = tempfile::tempdir().context("temporary directory for the demo peers")?;
    let mut nodes = vec![DemoNode {
        name: "A".into(),
        store: home,
    }];
    for i in 0..peers {
        let dir = tmp.path().join(format!("peer{i}"));
        let store = XaeroFlux::builder(&dir)
            .network(loopback(dir.join(NET_DIR)))
            .open()
            .with_context(|| format!("opening a demo peer in {}", dir.display()))?;
        store.join(&invite)?;
        nodes.push(DemoNode {
            name: char::from(b'B' + i).to_string(),
            store,
        });
    }
    println!(
        "nodes      {} on 127.0.0.1 (QUIC, relays off); B.. joined A's group with an invite",
        nodes.len()
    );

    let tw = Instant::now();
    for n in &nodes {
        for i in 0..events {
            let note = format!(
                "note {i} from node {} ({})",
                n.name,
                n.store.author().short()
            );
            n.store.write_event_to(group, note.as_bytes(), DEMO_TYPE)?;
        }
        n.store.flush()?;
    }
    println!(
        "wrote      {events} events on each node ({} in all, durable in {:.0} ms)",
        events * nodes.len() as u64,
        tw.elapsed().as_secs_f64() * 1e3
    );

    let ts = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} converging: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let states = loop {
        let states = nodes
            .iter()
            .map(|n| group_state(&n.store, &group))
            .collect::<Result<Vec<_>>>()?;
        let counts: Vec<u64> = states
            .iter()
            .map(|s| s.iter().map(|(_, n, _)| n).sum())
            .collect();
        if states.windows(2).all(|w| w[0] == w[1]) {
            break states;
        }
        if ts.elapsed() > DEMO_DEADLINE {
            bar.finish_and_clear();
            bail!(
                "the nodes did not converge within {} s (events per node: {counts:?})",
                DEMO_DEADLINE.as_secs()
            );
        }
        bar.set_message(format!("events per node {counts:?}"));
        bar.tick();
        std::thread::sleep(Duration::from_millis(25));
    };
    bar.finish_and_clear();
    let synced = ts.elapsed();

    println!();
    println!("node  identity      events  logs  group state (BLAKE3 over every log root)");
    for (n, s) in nodes.iter().zip(&states) {
        let total: u64 = s.iter().map(|(_, len, _)| len).sum();
        println!(
            "{:<4}  {:<12}  {total:>6}  {:>4}  {}",
            n.name,
            n.store.author().short(),
            s.len(),
            hex(&state_digest(s))
        );
    }
    println!();
    println!("author logs of the group (identical on every node):");
    for (author, len, root) in &states[0] {
        let writer = nodes
            .iter()
            .find(|n| n.store.author() == *author)
            .map_or("earlier run", |n| n.name.as_str());
        println!(
            "  {:<12}  length {len:>6}  root {}  ({writer})",
            author.short(),
            &hex(root)[..16]
        );
    }
    println!();
    println!(
        "converged  in {:.0} ms after the last write",
        synced.as_secs_f64() * 1e3
    );

    // Proof that what arrived is what A signed: A's checkpoint, checked on the last peer
    // with A's public key, and a full re-verification of every peer's store.
    let a = &nodes[0].store;
    if let Some(last) = nodes.get(1..).and_then(<[DemoNode]>::last) {
        let snap = last.store.read()?;
        if let Some(cp) = snap.latest_checkpoint(&group, &a.author())? {
            cp.verify(a.identity())?;
            println!(
                "checkpoint A's log at length {}, FN-DSA-512 signature verified on node {}",
                cp.checkpoint.length, last.name
            );
        }
    }
    for n in &nodes[1..] {
        let r = n.store.verify(|_, _| {})?;
        println!(
            "verify     node {}: {} events re-hashed, {} log roots, {} checkpoint signatures: ok",
            n.name, r.events, r.logs, r.checkpoints
        );
    }
    for n in nodes.into_iter().rev() {
        n.store.close()?;
    }
    println!(
        "done       in {:.1} s; node A's events stay in {}",
        t0.elapsed().as_secs_f64(),
        ctx.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
