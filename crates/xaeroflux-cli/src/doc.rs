//! `xaeroflux doc`: collaborative documents (new, append, edit, show, ls).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use xaeroflux::{GroupId, XaeroFlux};
use xaeroflux_api::Client;
use xaeroflux_api::model::{DocSummary, DocTextJson, StateWriteResponse, TextEdit};
use xaeroflux_docs::loro::ToJson;
use xaeroflux_docs::{Docs, DocsConfig};

use crate::backend::Node;
use crate::config::Ctx;

/// The text container the commands edit unless told otherwise.
const BODY: &str = "body";

/// `doc` subcommands. Positions and lengths count Unicode characters.
#[derive(Debug, Subcommand)]
pub enum DocCommand {
    /// Create a document with this text (fails if the document exists).
    New {
        /// Document name, e.g. `notes/standup`.
        name: String,
        /// Its first text.
        text: String,
        /// Text container.
        #[arg(long, default_value = BODY)]
        container: String,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Append text at the end.
    Append {
        /// Document name.
        name: String,
        /// Text to append.
        text: String,
        /// Text container.
        #[arg(long, default_value = BODY)]
        container: String,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Delete `--delete` characters at `--at`, then insert `--insert` there.
    Edit {
        /// Document name.
        name: String,
        /// Position.
        #[arg(long)]
        at: usize,
        /// Characters to delete at the position.
        #[arg(long, default_value_t = 0)]
        delete: usize,
        /// Text to insert at the position.
        #[arg(long, default_value = "")]
        insert: String,
        /// Text container.
        #[arg(long, default_value = BODY)]
        container: String,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Print a document's text (exit code 1 if it does not exist).
    Show {
        /// Document name.
        name: String,
        /// Text container.
        #[arg(long, default_value = BODY)]
        container: String,
        /// Print the whole document (every container) as JSON instead.
        #[arg(long)]
        json: bool,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// List the documents of a group.
    Ls {
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
}

/// Clamps an edit to the text's length; refuses a position past its end.
fn splice_range(len: usize, at: usize, delete: usize) -> Result<(usize, usize)> {
    if at > len {
        bail!("position {at} is past the end of the text ({len} characters)");
    }
    Ok((at, delete.min(len - at)))
}

/// Runs a `doc` command: on the document view of the store in the data directory, or
/// through the API of the daemon that holds it.
pub fn run(ctx: &Ctx, cmd: DocCommand, json: bool) -> Result<ExitCode> {
    match Node::open(ctx)? {
        Node::Remote(c) => remote(&c, cmd, json),
        Node::Local(store) => local(ctx, Arc::new(*store), cmd, json),
    }
}

fn local(ctx: &Ctx, store: Arc<XaeroFlux>, cmd: DocCommand, json: bool) -> Result<ExitCode> {
    let docs = Docs::open(store.clone(), DocsConfig::new(Docs::default_dir(&ctx.dir)))
        .context("opening the document view")?;
    docs.flush()?;
    let group = |g: &Option<String>| -> Result<GroupId> {
        match g {
            Some(h) => GroupId::from_hex(h).context("group id"),
            None => Ok(store.default_group()),
        }
    };
    let code = match cmd {
        DocCommand::New {
            name,
            text,
            container,
            group: g,
        } => {
            let g = group(&g)?;
            if docs.read(&g, &name)?.is_some() {
                bail!("document {name:?} exists; use `doc append` or `doc edit`");
            }
            if text.is_empty() {
                bail!("give the new document some text");
            }
            let mut doc = docs.edit(&g, &name)?;
            doc.text(&container).insert(0, &text)?;
            write(&docs, &mut doc, json)?
        }
        DocCommand::Append {
            name,
            text,
            container,
            group: g,
        } => {
            let mut doc = docs.edit(&group(&g)?, &name)?;
            let t = doc.text(&container);
            t.insert(t.len_unicode(), &text)?;
            write(&docs, &mut doc, json)?
        }
        DocCommand::Edit {
            name,
            at,
            delete,
            insert,
            container,
            group: g,
        } => {
            let g = group(&g)?;
            if docs.read(&g, &name)?.is_none() {
                bail!("no document {name:?}; create it with `doc new`");
            }
            let mut doc = docs.edit(&g, &name)?;
            let t = doc.text(&container);
            let (at, delete) = splice_range(t.len_unicode(), at, delete)?;
            if delete > 0 {
                t.delete(at, delete)?;
            }
            if !insert.is_empty() {
                t.insert(at, &insert)?;
            }
            write(&docs, &mut doc, json)?
        }
        DocCommand::Show {
            name,
            container,
            json: whole,
            group: g,
        } => match docs.read(&group(&g)?, &name)? {
            Some(d) if whole => {
                print_value(&d.get_deep_value().to_json_value(), json)?;
                ExitCode::SUCCESS
            }
            Some(d) => {
                print_text(&d.get_text(container.as_str()).to_string(), json)?;
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no document {name}");
                ExitCode::from(1)
            }
        },
        DocCommand::Ls { group: g } => {
            let g = group(&g)?;
            let mut list = Vec::new();
            for name in docs.names(&g)? {
                let info = docs.info(&g, &name)?;
                list.push(DocSummary {
                    name,
                    updates: info.as_ref().map_or(0, |i| i.updates),
                    pending: info.as_ref().map_or(0, |i| i.pending),
                    snapshot_bytes: info.as_ref().map_or(0, |i| i.snapshot_bytes),
                });
            }
            print_list(&list, json)?;
            ExitCode::SUCCESS
        }
    };
    docs.close();
    Ok(code)
}

/// The same commands through the daemon's API (`/v1/docs`); the output is the same.
fn remote(c: &Client, cmd: DocCommand, json: bool) -> Result<ExitCode> {
    let edit = |name: &str, e: TextEdit| -> Result<ExitCode> {
        print_written(c.edit_text(name, &e)?.id.as_deref(), json)?;
        Ok(ExitCode::SUCCESS)
    };
    match cmd {
        DocCommand::New {
            name,
            text,
            container,
            group,
        } => {
            if c.doc(&name, group.as_deref())?.is_some() {
                bail!("document {name:?} exists; use `doc append` or `doc edit`");
            }
            if text.is_empty() {
                bail!("give the new document some text");
            }
            edit(
                &name,
                TextEdit {
                    container: Some(container),
                    at: Some(0),
                    delete: 0,
                    insert: text,
                    group,
                },
            )
        }
        DocCommand::Append {
            name,
            text,
            container,
            group,
        } => edit(
            &name,
            TextEdit {
                container: Some(container),
                at: None,
                delete: 0,
                insert: text,
                group,
            },
        ),
        DocCommand::Edit {
            name,
            at,
            delete,
            insert,
            container,
            group,
        } => {
            let Some(text) = c.doc_text(&name, Some(&container), group.as_deref())? else {
                bail!("no document {name:?}; create it with `doc new`");
            };
            let (at, delete) = splice_range(text.chars().count(), at, delete)?;
            edit(
                &name,
                TextEdit {
                    container: Some(container),
                    at: Some(at),
                    delete,
                    insert,
                    group,
                },
            )
        }
        DocCommand::Show {
            name,
            container,
            json: whole,
            group,
        } => {
            let shown = if whole {
                c.doc(&name, group.as_deref())?
                    .map(|d| print_value(&d.value, json))
            } else {
                c.doc_text(&name, Some(&container), group.as_deref())?
                    .map(|t| print_text(&t, json))
            };
            match shown {
                Some(r) => {
                    r?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("no document {name}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        DocCommand::Ls { group } => {
            print_list(&c.docs(group.as_deref())?.docs, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The event id of a commit (`nothing changed` on stderr when there was none).
fn print_written(id: Option<&str>, json: bool) -> Result<()> {
    if json {
        return crate::data::print_json(&StateWriteResponse {
            id: id.map(str::to_owned),
        });
    }
    match id {
        Some(id) => println!("{id}"),
        None => eprintln!("nothing changed"),
    }
    Ok(())
}

/// A whole document: pretty JSON, or one line with the global `--json`.
fn print_value(v: &serde_json::Value, json: bool) -> Result<()> {
    if json {
        crate::data::print_json(v)
    } else {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    }
}

fn print_text(text: &str, json: bool) -> Result<()> {
    if json {
        crate::data::print_json(&DocTextJson {
            text: text.to_owned(),
        })
    } else {
        println!("{text}");
        Ok(())
    }
}

fn print_list(list: &[DocSummary], json: bool) -> Result<()> {
    for d in list {
        if json {
            crate::data::print_json(d)?;
        } else {
            println!("{}\t{} updates", d.name, d.updates);
        }
    }
    Ok(())
}

/// Commits the handle's edits (printing the event id) and waits until they are applied.
fn write(docs: &Docs, doc: &mut xaeroflux_docs::Document, json: bool) -> Result<ExitCode> {
    let id = doc.commit()?;
    print_written(id.map(|i| i.to_string()).as_deref(), json)?;
    docs.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_clamped_to_the_text() {
        assert_eq!(splice_range(5, 2, 10).unwrap(), (2, 3));
        assert_eq!(splice_range(5, 5, 1).unwrap(), (5, 0));
        assert_eq!(splice_range(0, 0, 0).unwrap(), (0, 0));
        assert!(splice_range(5, 6, 0).is_err());
    }
}
