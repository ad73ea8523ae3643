//! `xaeroflux kv`: records of the state views (put, set, get, del, ls, link, root).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use xaeroflux::{GroupId, Hlc};
use xaeroflux_views::{Fields, RecordRef, Value, Views, ViewsConfig};

use crate::config::Ctx;

/// `kv` subcommands. Values are `field=value`: an integer, a float, `true`, `false`,
/// `null`, or text (quote it with `"` to keep a number as text).
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Replace a record with these fields.
    Put {
        /// Collection, e.g. `cards`.
        collection: String,
        /// Key in the collection.
        key: String,
        /// `field=value` pairs.
        fields: Vec<String>,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Set (`field=value`) or unset (`field=`) fields, keeping the others.
    Set {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// `field=value` pairs.
        fields: Vec<String>,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Print a record (exit code 1 if it does not exist).
    Get {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Show the record as of this HLC (a u64, as printed by `tail`).
        #[arg(long)]
        as_of: Option<u64>,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Delete a record.
    Del {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// List the records of a collection (optionally a key prefix), in key order.
    Ls {
        /// Collection.
        collection: String,
        /// Key prefix.
        #[arg(default_value = "")]
        prefix: String,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Relate two records: `kv link cards/c1 on boards/b1` (`--remove` to unlink).
    Link {
        /// Source, `collection/key`.
        from: String,
        /// Relation name.
        rel: String,
        /// Target, `collection/key`.
        to: String,
        /// Remove the relation instead.
        #[arg(long)]
        remove: bool,
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Print the state root of the group's view (equal on peers with the same data).
    Root {
        /// Group id (hex); default: the store's default group.
        #[arg(long)]
        group: Option<String>,
    },
}

/// Parses a command-line value (see [`KvCommand`]).
fn parse_value(s: &str) -> Value {
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => {
            if let Ok(i) = s.parse::<i64>() {
                Value::Int(i)
            } else if let Ok(x) = s.parse::<f64>() {
                Value::Float(x)
            } else if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
                Value::Text(s[1..s.len() - 1].to_owned())
            } else {
                Value::Text(s.to_owned())
            }
        }
    }
}

fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, Option<Value>)>> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("{p:?} is not field=value"))?;
            Ok((k.to_owned(), (!v.is_empty()).then(|| parse_value(v))))
        })
        .collect()
}

fn parse_ref(s: &str) -> Result<RecordRef> {
    let (c, k) = s
        .split_once('/')
        .with_context(|| format!("{s:?} is not collection/key"))?;
    Ok(RecordRef::new(c, k))
}

fn print_fields(f: &Fields) -> String {
    let parts: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(" ")
}

/// Runs a `kv` command against the views of the store in the data directory.
pub fn run(ctx: &Ctx, cmd: KvCommand) -> Result<ExitCode> {
    let store = Arc::new(ctx.open()?);
    let views = Views::open(
        store.clone(),
        ViewsConfig::new(Views::default_dir(&ctx.dir)),
    )
    .context("opening the views")?;
    let group = |g: &Option<String>| -> Result<GroupId> {
        match g {
            Some(h) => GroupId::from_hex(h).context("group id"),
            None => Ok(store.default_group()),
        }
    };
    let code = match cmd {
        KvCommand::Put {
            collection,
            key,
            fields,
            group: g,
        } => {
            let mut out = Fields::new();
            for (k, v) in parse_pairs(&fields)? {
                let Some(v) = v else {
                    bail!("put cannot unset {k:?}; use `kv set {collection} {key} {k}=`");
                };
                out.insert(k, v);
            }
            let id = views.put(&group(&g)?, (collection.as_str(), key.as_str()), out)?;
            views.flush()?;
            println!("{id}");
            ExitCode::SUCCESS
        }
        KvCommand::Set {
            collection,
            key,
            fields,
            group: g,
        } => {
            let id = views.patch(
                &group(&g)?,
                (collection.as_str(), key.as_str()),
                parse_pairs(&fields)?.into_iter().collect(),
            )?;
            views.flush()?;
            println!("{id}");
            ExitCode::SUCCESS
        }
        KvCommand::Get {
            collection,
            key,
            as_of,
            group: g,
        } => {
            let r = (collection.as_str(), key.as_str());
            let got = match as_of {
                Some(h) => views.get_as_of(&group(&g)?, r, Hlc::from_u64(h))?,
                None => views.get(&group(&g)?, r)?,
            };
            match got {
                Some(f) => {
                    println!("{}", print_fields(&f));
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("no record {collection}/{key}");
                    ExitCode::from(1)
                }
            }
        }
        KvCommand::Del {
            collection,
            key,
            group: g,
        } => {
            let id = views.delete(&group(&g)?, (collection.as_str(), key.as_str()))?;
            views.flush()?;
            println!("{id}");
            ExitCode::SUCCESS
        }
        KvCommand::Ls {
            collection,
            prefix,
            group: g,
        } => {
            for (k, f) in views.scan(&group(&g)?, &collection, &prefix)? {
                println!("{k}\t{}", print_fields(&f));
            }
            ExitCode::SUCCESS
        }
        KvCommand::Link {
            from,
            rel,
            to,
            remove,
            group: g,
        } => {
            let (from, to) = (parse_ref(&from)?, parse_ref(&to)?);
            let g = group(&g)?;
            let id = if remove {
                views.unlink(&g, &from, &rel, &to)?
            } else {
                views.link(&g, &from, &rel, &to)?
            };
            views.flush()?;
            println!("{id}");
            ExitCode::SUCCESS
        }
        KvCommand::Root { group: g } => {
            let g = group(&g)?;
            views.flush()?;
            let root = views.state_root(&g)?;
            println!(
                "{}",
                root.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            ExitCode::SUCCESS
        }
    };
    views.close();
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_like_their_literals() {
        assert_eq!(parse_value("12"), Value::Int(12));
        assert_eq!(parse_value("1.5"), Value::Float(1.5));
        assert_eq!(parse_value("true"), Value::Bool(true));
        assert_eq!(parse_value("\"12\""), Value::Text("12".into()));
        assert_eq!(parse_value("hello"), Value::Text("hello".into()));
        let p = parse_pairs(&["a=1".into(), "b=".into()]).unwrap();
        assert_eq!(
            p,
            vec![("a".into(), Some(Value::Int(1))), ("b".into(), None)]
        );
        assert!(parse_pairs(&["nope".into()]).is_err());
        assert_eq!(
            parse_ref("cards/c1").unwrap(),
            RecordRef::new("cards", "c1")
        );
    }
}
