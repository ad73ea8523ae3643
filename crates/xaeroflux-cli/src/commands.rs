//! Subcommand implementations.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use xaeroflux::{
    IndexLoad, NgramTextExtractor, VECTOR_INDEX_FILE, VectorExtractor, VectorProgress,
    VectorSearchConfig, XaeroKeypair, vector_index_info,
};
use xaeroflux_core::event::hex;
use xaeroid::keyfile;

use crate::backend::Node;
use crate::cli::{Cli, Command, IdCommand};
use crate::config::Ctx;
use crate::{data, node};

const KEY_FILE: &str = "identity.key";

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx::new(&cli)?;
    let dir = ctx.dir.clone();
    let json = cli.json;
    match cli.command {
        Command::Id { command } => id(&dir, command, json),
        Command::Kv { command } => crate::kv::run(&ctx, command, json),
        Command::Doc { command } => crate::doc::run(&ctx, command, json),
        Command::Blob { command } => crate::blob::run(&ctx, command),
        Command::Write {
            ref payload,
            event_type,
            ref group,
        } => data::write(
            &Node::open(&ctx)?,
            payload.as_deref(),
            event_type,
            group.clone(),
            json,
        ),
        Command::Get { ref id } => data::get(&Node::open(&ctx)?, id, json),
        Command::Tail {
            count,
            follow,
            ref group,
            event_type,
        } => data::tail(
            &Node::open(&ctx)?,
            count,
            follow,
            group.as_deref(),
            event_type,
            json,
        ),
        Command::Query {
            ref group,
            event_type,
            since,
            ref author,
            limit,
        } => {
            let node = Node::open(&ctx)?;
            let group = match group {
                Some(g) => g.clone(),
                None => match &node {
                    Node::Local(s) => s.default_group().to_string(),
                    Node::Remote(c) => c.identity()?.default_group,
                },
            };
            let q = xaeroflux_api::model::QueryParams {
                group: Some(group),
                event_type,
                author: author.clone(),
                since,
                ..Default::default()
            };
            data::query(&node, q, limit, json)
        }
        Command::Import {
            ref file,
            batch,
            restart,
        } => data::import(&Node::open(&ctx)?, file.as_deref(), batch, restart, json),
        Command::Export {
            from,
            ref group,
            event_type,
            ref output,
        } => data::export(
            &Node::open(&ctx)?,
            from,
            group.clone(),
            event_type,
            output.as_deref(),
        ),
        Command::Stats => {
            let node = Node::open(&ctx)?;
            let code = data::stats(&node, &dir, json)?;
            if !json {
                if let Some(s) = node.local() {
                    let st = s.stats()?;
                    println!(
                        "id index     {} runs, {} ids in memory",
                        st.hash_index_runs, st.hash_index_pending
                    );
                }
                print_vector_index(&dir);
            }
            node.close()?;
            Ok(code)
        }
        Command::Verify => {
            let node = Node::open(&ctx)?;
            let store = match &node {
                Node::Remote(c) => return data::verify_remote(c, json),
                Node::Local(s) => s,
            };
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
                    if json {
                        data::print_json(&serde_json::json!({
                            "state": "ok", "done": r.events, "total": r.events,
                            "logs": r.logs, "checkpoints": r.checkpoints,
                        }))?;
                    } else {
                        println!(
                            "ok: {} events re-hashed, {} log roots and the node root recomputed, {} checkpoint signatures verified",
                            r.events, r.logs, r.checkpoints
                        );
                    }
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
            ref api_bind,
            no_api,
        } => {
            let api = if no_api {
                None
            } else {
                Some(ctx.api_bind(api_bind.as_deref())?)
            };
            node::daemon(&ctx, net, peers, invite, api)
        }
        Command::Group { command } => node::group(&ctx, command, json),
        Command::Peers => node::peers(&ctx, json),
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
            search(&ctx, &query, json)
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
    // No echo on a terminal: the passphrase must not end up on screen or in a
    // terminal's scrollback.
    let p = crate::prompt::read_hidden("passphrase: ")?;
    if p.is_empty() {
        bail!("empty passphrase");
    }
    Ok(p.into_bytes())
}

fn id(dir: &Path, cmd: IdCommand, json: bool) -> Result<ExitCode> {
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
            show(&kp, &path, pass.is_some(), json)?;
        }
        IdCommand::Show => {
            let pass = match keyfile::load(&path, None) {
                Err(xaeroid::KeyFileError::PassphraseRequired) => Some(read_passphrase()?),
                _ => None,
            };
            let kp = keyfile::load(&path, pass.as_deref())
                .with_context(|| format!("loading {}", path.display()))?;
            show(&kp, &path, pass.is_some(), json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(kp: &XaeroKeypair, path: &Path, encrypted: bool, json: bool) -> Result<()> {
    if json {
        return data::print_json(&serde_json::json!({
            "did": kp.public().to_did(),
            "short": kp.public().short(),
            "algorithm": "FN-DSA-512",
            "public_key_bytes": kp.public().as_bytes().len(),
            "key_file": path.display().to_string(),
            "encrypted": encrypted,
        }));
    }
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
    Ok(())
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

fn search(ctx: &Ctx, q: &SearchQuery<'_>, json: bool) -> Result<ExitCode> {
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
    let store = match Node::open(ctx)? {
        Node::Local(s) => s,
        Node::Remote(c) => {
            let hits = c.search(&xaeroflux_api::model::SearchRequest {
                text: None,
                vector: Some(query),
                k: Some(q.k),
                threshold: Some(q.threshold),
            })?;
            for h in &hits {
                if json {
                    data::print_json(h)?;
                } else {
                    let p = h.event.payload().unwrap_or_default();
                    println!("{:.4}  {}  {}", h.similarity, h.event.id, preview(&p));
                }
            }
            if hits.is_empty() {
                eprintln!("no matches");
                return Ok(ExitCode::from(1));
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
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
    let hits = store.search_vector_events(&query, q.k, q.threshold)?;
    for h in &hits {
        if json {
            data::print_json(&xaeroflux_api::model::SearchHit {
                similarity: h.similarity,
                event: xaeroflux_api::model::EventJson::new(&h.id, h.local_seq, &h.event),
            })?;
        } else {
            println!(
                "{:.4}  {}  {}",
                h.similarity,
                h.id,
                preview(&h.event.payload)
            );
        }
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
