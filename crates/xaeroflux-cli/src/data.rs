//! The data commands, on the store or through the daemon's API (see
//! [`crate::backend`]): write, get, tail, query, stats, verify, import, export.

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use xaeroflux::AuthorId;
use xaeroflux_api::model::{EventJson, QueryParams, StatsJson, WriteRequest};

use crate::backend::Node;

/// Prints `v` as one line of JSON.
pub fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// One event on one line: id, header fields and a preview of the payload.
pub fn print_event(e: &EventJson) {
    let author = AuthorId::from_hex(&e.author).map_or_else(|_| e.author.clone(), |a| a.short());
    let body = match e
        .text
        .as_deref()
        .filter(|t| !t.chars().any(char::is_control))
    {
        Some(t) => format!("{t:?}"),
        None => {
            let p = e.payload().unwrap_or_default();
            format!("hex:{}", xaeroflux_core::event::hex(&p[..p.len().min(32)]))
        }
    };
    println!(
        "{} type={} author={author} seq={} hlc={}.{} len={} {body}",
        e.id, e.event_type, e.seq, e.time_ms, e.time_counter, e.size
    );
}

fn show(e: &EventJson, json: bool) -> Result<()> {
    if json {
        print_json(e)
    } else {
        print_event(e);
        Ok(())
    }
}

/// `write`.
pub fn write(
    node: &Node,
    payload: Option<&str>,
    event_type: u32,
    group: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let data = match payload {
        Some(p) => p.as_bytes().to_vec(),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            buf
        }
    };
    let req = match String::from_utf8(data) {
        Ok(text) => WriteRequest {
            text: Some(text),
            ..WriteRequest::default()
        },
        Err(e) => WriteRequest {
            base64: Some(data_encoding::BASE64.encode(e.as_bytes())),
            ..WriteRequest::default()
        },
    };
    let r = node.write(WriteRequest {
        event_type: Some(event_type),
        group,
        ..req
    })?;
    if json {
        print_json(&r)?;
    } else {
        println!("{}", r.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// `get`.
pub fn get(node: &Node, id: &str, json: bool) -> Result<ExitCode> {
    match node.get(id, json)? {
        Some(e) => {
            show(&e, json)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no event {id}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `tail`: the last `count` events, then (with `follow`) every new one.
pub fn tail(
    node: &Node,
    count: u64,
    follow: bool,
    group: Option<&str>,
    event_type: Option<u32>,
    json: bool,
) -> Result<ExitCode> {
    let total = node.stats()?.events;
    let after = total as i64 - count as i64 - 1;
    let after = after.max(-1);
    let mut failed = None;
    if follow {
        node.follow(group, event_type, after, |e| match show(&e, json) {
            Ok(()) => true,
            Err(err) => {
                failed = Some(err);
                false
            }
        })?;
    } else {
        let mut cursor = (after + 1) as u64;
        loop {
            let page = node.query(&QueryParams {
                group: group.map(str::to_owned),
                event_type,
                cursor: Some(cursor),
                limit: Some(1000),
                ..QueryParams::default()
            })?;
            for e in &page.events {
                show(e, json)?;
            }
            cursor = page.next_cursor;
            if !page.more || cursor >= total {
                break;
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// `query`: every page up to `limit` events.
pub fn query(node: &Node, mut q: QueryParams, limit: usize, json: bool) -> Result<ExitCode> {
    let mut n = 0;
    loop {
        q.limit = Some((limit - n).min(1000));
        let page = node.query(&q)?;
        for e in &page.events {
            show(e, json)?;
        }
        n += page.events.len();
        q.cursor = Some(page.next_cursor);
        if !page.more || n >= limit {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stats`.
pub fn stats(node: &Node, dir: &Path, json: bool) -> Result<ExitCode> {
    let st: StatsJson = node.stats()?;
    if json {
        print_json(&st)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("data dir     {}", dir.display());
    if let Some(c) = node.remote() {
        println!("through      the daemon's api at {}", c.addr());
    }
    println!("events       {}", st.events);
    for (name, n) in [
        "XS (<=64 B)",
        "S (<=256 B)",
        "M (<=1 KiB)",
        "L (<=4 KiB)",
        "XL (<=16 KiB)",
    ]
    .iter()
    .zip(&st.per_class)
    {
        println!("  {name:<13} {n}");
    }
    println!(
        "mmr root     {}",
        st.mmr_root.as_deref().unwrap_or("(empty)")
    );
    println!("logs         {}", st.logs.len());
    for l in &st.logs {
        println!(
            "  group {} author {} length {} root {}",
            &l.group[..10.min(l.group.len())],
            &l.author[..10.min(l.author.len())],
            l.length,
            &l.root[..16.min(l.root.len())]
        );
    }
    println!(
        "disk         lmdb {} B, merkle pages {} B",
        st.lmdb_bytes, st.merkle_bytes
    );
    Ok(ExitCode::SUCCESS)
}

/// `verify` through the daemon: start a job and follow its progress.
pub fn verify_remote(c: &xaeroflux_api::Client, json: bool) -> Result<ExitCode> {
    let mut job = c.verify_start()?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    while job.state == "running" {
        std::thread::sleep(Duration::from_millis(100));
        job = c.verify_status()?;
        bar.set_length(job.total);
        bar.set_position(job.done);
    }
    bar.finish_and_clear();
    if json {
        print_json(&job)?;
    }
    if job.state == "ok" {
        if !json {
            println!(
                "ok: {} events re-hashed, {} log roots and the node root recomputed, {} checkpoint signatures verified",
                job.done,
                job.logs.unwrap_or(0),
                job.checkpoints.unwrap_or(0)
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "verification FAILED: {}",
            job.error.as_deref().unwrap_or("unknown")
        );
        Ok(ExitCode::from(2))
    }
}

/// The line of an NDJSON input as a write request: `text` or `base64` (base64 wins when
/// both are there, as in `export` lines), `type`, `group`; other fields are ignored.
fn import_line(line: &str) -> Result<WriteRequest> {
    let v: serde_json::Value = serde_json::from_str(line)?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let base64 = s("base64");
    let text = if base64.is_some() { None } else { s("text") };
    if text.is_none() && base64.is_none() {
        bail!("no `text` or `base64`");
    }
    let event_type = match v.get("type") {
        None | Some(serde_json::Value::Null) => None,
        Some(t) => Some(
            t.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .context("`type` must be a number")?,
        ),
    };
    Ok(WriteRequest {
        text,
        base64,
        event_type,
        group: s("group"),
    })
}

/// Where an import of `file` records its acknowledged lines.
fn progress_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".import-progress");
    file.with_file_name(name)
}

/// `import`.
pub fn import(
    node: &Node,
    file: Option<&Path>,
    batch: usize,
    restart: bool,
    json: bool,
) -> Result<ExitCode> {
    let batch = batch.max(1);
    let (reader, total, state): (Box<dyn BufRead>, u64, Option<PathBuf>) = match file {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            (
                Box::new(std::io::BufReader::new(f)),
                len,
                Some(progress_path(p)),
            )
        }
        None => (Box::new(std::io::stdin().lock()), 0, None),
    };
    let skip: u64 = match &state {
        Some(s) if !restart => std::fs::read_to_string(s)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    if skip > 0 {
        eprintln!(
            "resuming after line {skip} (acknowledged by an earlier run; --restart to start over)"
        );
    }
    let bar = if total > 0 {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("importing {bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut buf = Vec::new();
    let mut in_buf = 0usize;
    let mut line_no = 0u64;
    let mut written = 0u64;
    let mut flush = |buf: &mut Vec<u8>, in_buf: &mut usize, line_no: u64| -> Result<()> {
        if *in_buf == 0 {
            return Ok(());
        }
        let r = node
            .write_batch(buf)
            .with_context(|| format!("the batch ending at line {line_no}"))?;
        written += r.ids.len() as u64;
        if let Some(s) = &state {
            std::fs::write(s, format!("{line_no}\n"))
                .with_context(|| format!("writing {}", s.display()))?;
        }
        buf.clear();
        *in_buf = 0;
        Ok(())
    };
    for line in reader.lines() {
        let line = line.context("reading the input")?;
        line_no += 1;
        bar.inc(line.len() as u64 + 1);
        if line_no <= skip || line.trim().is_empty() {
            continue;
        }
        let req = import_line(&line).with_context(|| format!("line {line_no}"))?;
        serde_json::to_writer(&mut buf, &req)?;
        buf.push(b'\n');
        in_buf += 1;
        if in_buf >= batch {
            flush(&mut buf, &mut in_buf, line_no)?;
            bar.set_message(format!("{line_no} lines"));
        }
    }
    flush(&mut buf, &mut in_buf, line_no)?;
    bar.finish_and_clear();
    if let Some(s) = &state {
        let _ = std::fs::remove_file(s);
    }
    if json {
        print_json(&serde_json::json!({ "imported": written, "lines": line_no }))?;
    } else {
        println!("imported   {written} events from {line_no} lines (durable)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `export`.
pub fn export(
    node: &Node,
    from: u64,
    group: Option<String>,
    event_type: Option<u32>,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut q = QueryParams {
        group,
        event_type,
        cursor: Some(from),
        limit: Some(1000),
        ..QueryParams::default()
    };
    let mut n = 0u64;
    loop {
        let page = node.query(&q)?;
        for e in &page.events {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        n += page.events.len() as u64;
        q.cursor = Some(page.next_cursor);
        if !page.more {
            break;
        }
    }
    out.flush()?;
    eprintln!(
        "exported   {n} events; continue later with --from {}",
        q.cursor.unwrap_or(from)
    );
    Ok(ExitCode::SUCCESS)
}
