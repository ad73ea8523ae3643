//! Subcommand implementations.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use xaeroflux::{
    AuthorId, Event, EventId, Filter, Hlc, IndexLoad, NgramTextExtractor, Start, VECTOR_INDEX_FILE,
    VectorExtractor, VectorProgress, VectorSearchConfig, XaeroKeypair, vector_index_info,
};
use xaeroflux_core::event::hex;
use xaeroid::keyfile;

use crate::cli::{Cli, Command, IdCommand};
use crate::config::Ctx;
use crate::node;

const KEY_FILE: &str = "identity.key";

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx::new(&cli)?;
    let dir = ctx.dir.clone();
    match cli.command {
        Command::Id { command } => id(&dir, command),
        Command::Blob { command } => crate::blob::run(&ctx, command),
        Command::Write {
            ref payload,
            event_type,
        } => {
            let data = match payload {
                Some(p) => p.clone().into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading standard input")?;
                    buf
                }
            };
            let store = ctx.open()?;
            let id = store.write_event(&data, event_type)?;
            store.flush()?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { ref id } => {
            let id = EventId::from_hex(id).context("event id")?;
            let store = ctx.open()?;
            match store.get(&id)? {
                Some(ev) => {
                    print_event(&id, &ev);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("no event {id}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Tail { count, follow } => {
            let store = ctx.open()?;
            let total = store.read()?.event_count()?;
            let start = Start::Position(total.saturating_sub(count));
            let mut sub = store.subscribe(Filter::all().start(start));
            // Replay the last `count` events, then (with --follow) stay on the live stream.
            loop {
                let next = if follow {
                    sub.next().transpose()?
                } else {
                    sub.try_next()?
                };
                match next {
                    Some(e) => print_event(&e.id, &e.event),
                    None => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            ref group,
            event_type,
            since,
            ref author,
            limit,
        } => {
            let store = ctx.open()?;
            let author = author
                .as_deref()
                .map(AuthorId::from_hex)
                .transpose()
                .context("author")?;
            let group = match group {
                Some(h) => xaeroflux::GroupId::from_hex(h).context("group id")?,
                None => store.default_group(),
            };
            let since = Hlc::new(since.unwrap_or(0), 0);
            let snap = store.read()?;
            let iter: Box<dyn Iterator<Item = xaeroflux::Result<xaeroflux::StoredEvent<'_>>>> =
                match (event_type, author) {
                    (Some(t), _) => Box::new(snap.by_type(&group, t, since)?),
                    (None, Some(a)) => Box::new(snap.log(&group, &a, 0)?),
                    (None, None) => {
                        Box::new(snap.by_time(&group, since, Hlc::from_u64(u64::MAX))?)
                    }
                };
            let mut n = 0;
            for ev in iter {
                let ev = ev?;
                let h = ev.event.header;
                if author.is_some_and(|a| a != h.author) || h.hlc < since {
                    continue;
                }
                print_event(&ev.event.id(), &ev.event.to_owned());
                n += 1;
                if n >= limit {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats => {
            let store = ctx.open()?;
            let st = store.stats()?;
            println!("data dir     {}", dir.display());
            println!("events       {}", st.events);
            for (name, n) in [
                "XS (<=64 B)",
                "S (<=256 B)",
                "M (<=1 KiB)",
                "L (<=4 KiB)",
                "XL (<=16 KiB)",
            ]
            .iter()
            .zip(st.per_class)
            {
                println!("  {name:<13} {n}");
            }
            println!(
                "mmr root     {}",
                st.mmr_root.map_or("(empty)".into(), |r| hex(&r))
            );
            println!("logs         {}", st.logs.len());
            for (g, a, len, root) in &st.logs {
                println!(
                    "  group {} author {} length {len} root {}",
                    g.short(),
                    a.short(),
                    &hex(root)[..16]
                );
            }
            println!(
                "disk         lmdb {} B, merkle pages {} B",
                st.disk_bytes.0, st.disk_bytes.1
            );
            println!(
                "id index     {} runs, {} ids in memory",
                st.hash_index_runs, st.hash_index_pending
            );
            print_vector_index(&dir);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let store = ctx.open()?;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events ({per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let res = store.verify(|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            });
            bar.finish_and_clear();
            match res {
                Ok(r) => {
                    println!(
                        "ok: {} events re-hashed, {} log roots and the node root recomputed, {} checkpoint signatures verified",
                        r.events, r.logs, r.checkpoints
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("verification FAILED: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Demo { events, peers } => node::demo(&ctx, events, peers),
        Command::Daemon {
            ref net,
            ref peers,
            invite,
        } => node::daemon(&ctx, net, peers, invite),
        Command::Group { command } => node::group(&ctx, command),
        Command::Peers => node::peers(&ctx),
        Command::Search {
            ref text,
            ref vector_file,
            ref event_types,
            k,
            threshold,
            dim,
        } => {
            let query = SearchQuery {
                text: text.as_deref(),
                vector_file: vector_file.as_deref(),
                event_types,
                k,
                threshold,
                dim,
            };
            search(&ctx, &query)
        }
    }
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE)
}

fn read_passphrase() -> Result<Vec<u8>> {
    if let Ok(p) = std::env::var("XAERO_PASSPHRASE") {
        return Ok(p.into_bytes());
    }
    eprint!("passphrase: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the passphrase")?;
    let p = line.trim_end_matches(['\r', '\n']);
    if p.is_empty() {
        bail!("empty passphrase");
    }
    Ok(p.as_bytes().to_vec())
}

fn id(dir: &Path, cmd: IdCommand) -> Result<ExitCode> {
    let path = key_path(dir);
    match cmd {
        IdCommand::New { passphrase, force } => {
            if path.exists() && !force {
                bail!(
                    "{} already exists (use --force to replace it)",
                    path.display()
                );
            }
            let pass = if passphrase {
                Some(read_passphrase()?)
            } else {
                None
            };
            let kp = XaeroKeypair::generate();
            keyfile::save(&path, &kp, pass.as_deref())?;
            show(&kp, &path, pass.is_some());
        }
        IdCommand::Show => {
            let pass = match keyfile::load(&path, None) {
                Err(xaeroid::KeyFileError::PassphraseRequired) => Some(read_passphrase()?),
                _ => None,
            };
            let kp = keyfile::load(&path, pass.as_deref())
                .with_context(|| format!("loading {}", path.display()))?;
            show(&kp, &path, pass.is_some());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(kp: &XaeroKeypair, path: &Path, encrypted: bool) {
    println!("did        {}", kp.public().to_did());
    println!("short id   {}", kp.public().short());
    println!(
        "algorithm  FN-DSA-512 (Falcon-512), public key {} B",
        kp.public().as_bytes().len()
    );
    println!(
        "key file   {}{}",
        path.display(),
        if encrypted { " (encrypted)" } else { "" }
    );
}

fn print_event(id: &EventId, ev: &Event) {
    let h = &ev.header;
    let text = std::str::from_utf8(&ev.payload)
        .ok()
        .filter(|s| !s.chars().any(char::is_control));
    println!(
        "{id} type={} author={} seq={} hlc={}.{} len={} {}",
        h.event_type,
        h.author.short(),
        h.seq,
        h.hlc.millis(),
        h.hlc.counter(),
        ev.payload.len(),
        text.map_or_else(
            || format!("hex:{}", hex(&ev.payload[..ev.payload.len().min(32)])),
            |t| format!("{t:?}")
        )
    );
}

/// Arguments of `search`.
struct SearchQuery<'a> {
    text: Option<&'a str>,
    vector_file: Option<&'a Path>,
    event_types: &'a [u32],
    k: usize,
    threshold: f32,
    dim: usize,
}

/// Character trigrams: what `search --text` embeds with.
const NGRAM: usize = 3;

fn search(ctx: &Ctx, q: &SearchQuery<'_>) -> Result<ExitCode> {
    let embed = NgramTextExtractor::new(q.dim, NGRAM).context("--dim")?;
    let query = match q.text {
        Some(t) => embed
            .embed(t)
            .context("the query text has no characters to compare")?,
        None => {
            let json = match q.vector_file {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading standard input")?;
                    s
                }
            };
            serde_json::from_str::<Vec<f32>>(&json)
                .context("the query vector must be a JSON array of numbers")?
        }
    };
    let store = ctx.open()?;
    let extractor: Arc<dyn VectorExtractor> = Arc::new(embed);
    let extractors: HashMap<u32, Arc<dyn VectorExtractor>> = q
        .event_types
        .iter()
        .map(|&t| (t, extractor.clone()))
        .collect();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("indexing {bar:40} {pos}/{len} events ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut config = VectorSearchConfig::new(q.dim);
    let progress = bar.clone();
    config.on_progress = Some(Arc::new(move |p: VectorProgress| {
        progress.set_length(p.target);
        progress.set_position(p.position);
        if p.load != IndexLoad::Loaded {
            progress.set_message("(rebuilding the index)");
        }
    }));
    store.start_vector_search(extractors, config)?;
    // This process holds the store exclusively: once the committed position is
    // reached, the index is complete.
    loop {
        let s = store.vector_search_stats()?;
        if s.pending == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    bar.finish_and_clear();
    let hits = store.search_vector(&query, q.k, q.threshold)?;
    for h in &hits {
        println!(
            "{:.4}  {}  {}",
            h.similarity,
            h.id,
            preview(&h.event.payload)
        );
    }
    store.close()?;
    Ok(if hits.is_empty() {
        eprintln!("no matches");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The first 80 characters of a text payload, on one line.
fn preview(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(t) => {
            let mut p: String = t
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(80)
                .collect();
            if t.chars().count() > 80 {
                p.push('…');
            }
            p
        }
        Err(_) => format!("hex:{}", hex(&payload[..payload.len().min(32)])),
    }
}

fn print_vector_index(dir: &Path) {
    let path = dir.join(VECTOR_INDEX_FILE);
    match vector_index_info(&path) {
        Ok(None) => {}
        Ok(Some(i)) => println!(
            "vector index {} vectors of dim {}, covers {} events, {} B ({})",
            i.vectors,
            i.dimension,
            i.position,
            i.file_bytes,
            path.display()
        ),
        Err(e) => println!("vector index unreadable ({e}); rebuilt on the next search"),
    }
}
