//! `xaeroflux doc`: collaborative documents (new, append, edit, show, ls).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use xaeroflux::GroupId;
use xaeroflux_docs::loro::ToJson;
use xaeroflux_docs::{Docs, DocsConfig};

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

/// Runs a `doc` command against the document view of the store in the data directory.
pub fn run(ctx: &Ctx, cmd: DocCommand) -> Result<ExitCode> {
    let store = Arc::new(ctx.open()?);
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
            write(&docs, &mut doc)?
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
            write(&docs, &mut doc)?
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
            write(&docs, &mut doc)?
        }
        DocCommand::Show {
            name,
            container,
            json,
            group: g,
        } => match docs.read(&group(&g)?, &name)? {
            Some(d) if json => {
                println!("{}", d.get_deep_value().to_json_pretty());
                ExitCode::SUCCESS
            }
            Some(d) => {
                println!("{}", d.get_text(container.as_str()).to_string());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no document {name}");
                ExitCode::from(1)
            }
        },
        DocCommand::Ls { group: g } => {
            let g = group(&g)?;
            for name in docs.names(&g)? {
                let info = docs.info(&g, &name)?;
                let updates = info.map_or(0, |i| i.updates);
                println!("{name}\t{updates} updates");
            }
            ExitCode::SUCCESS
        }
    };
    docs.close();
    Ok(code)
}

/// Commits the handle's edits (printing the event id) and waits until they are applied.
fn write(docs: &Docs, doc: &mut xaeroflux_docs::Document) -> Result<ExitCode> {
    match doc.commit()? {
        Some(id) => println!("{id}"),
        None => eprintln!("nothing changed"),
    }
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
