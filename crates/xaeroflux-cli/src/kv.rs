//! `xaeroflux kv`: records of the state views (put, set, get, del, ls, link, root).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use xaeroflux::{GroupId, Hlc, XaeroFlux};
use xaeroflux_api::Client;
use xaeroflux_api::model::{
    FieldsRequest, LinkRequest, RecordJson, RecordRefJson, StateRootJson, StateWriteResponse,
    value_from_json, value_to_json,
};
use xaeroflux_views::{Fields, RecordRef, Value, Views, ViewsConfig};

use crate::backend::Node;
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

/// What a write printed: the operation's event id.
fn print_id(id: &str, json: bool) -> Result<()> {
    if json {
        crate::data::print_json(&StateWriteResponse {
            id: Some(id.to_owned()),
        })
    } else {
        println!("{id}");
        Ok(())
    }
}

/// One record: `field=value ...`, or its JSON document.
fn print_record(collection: &str, key: &str, f: &Fields, json: bool, with_key: bool) -> Result<()> {
    if json {
        crate::data::print_json(&RecordJson {
            collection: collection.to_owned(),
            key: key.to_owned(),
            fields: f
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        })
    } else {
        if with_key {
            println!("{key}\t{}", print_fields(f));
        } else {
            println!("{}", print_fields(f));
        }
        Ok(())
    }
}

fn print_root(group: &str, root: &str, json: bool) -> Result<()> {
    if json {
        crate::data::print_json(&StateRootJson {
            group: group.to_owned(),
            root: root.to_owned(),
        })
    } else {
        println!("{root}");
        Ok(())
    }
}

/// Runs a `kv` command: on the views of the store in the data directory, or through
/// the API of the daemon that holds it.
pub fn run(ctx: &Ctx, cmd: KvCommand, json: bool) -> Result<ExitCode> {
    match Node::open(ctx)? {
        Node::Remote(c) => remote(&c, cmd, json),
        Node::Local(store) => local(ctx, Arc::new(*store), cmd, json),
    }
}

fn local(ctx: &Ctx, store: Arc<XaeroFlux>, cmd: KvCommand, json: bool) -> Result<ExitCode> {
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
            let out = put_fields(&collection, &key, &fields)?;
            let id = views.put(&group(&g)?, (collection.as_str(), key.as_str()), out)?;
            views.flush()?;
            print_id(&id.to_string(), json)?;
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
            print_id(&id.to_string(), json)?;
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
                    print_record(&collection, &key, &f, json, false)?;
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
            print_id(&id.to_string(), json)?;
            ExitCode::SUCCESS
        }
        KvCommand::Ls {
            collection,
            prefix,
            group: g,
        } => {
            for (k, f) in views.scan(&group(&g)?, &collection, &prefix)? {
                print_record(&collection, &k, &f, json, true)?;
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
            print_id(&id.to_string(), json)?;
            ExitCode::SUCCESS
        }
        KvCommand::Root { group: g } => {
            let g = group(&g)?;
            views.flush()?;
            let root = views.state_root(&g)?;
            let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
            print_root(&g.to_string(), &hex, json)?;
            ExitCode::SUCCESS
        }
    };
    views.close();
    Ok(code)
}

/// The fields of `kv put`, none unset.
fn put_fields(collection: &str, key: &str, fields: &[String]) -> Result<Fields> {
    let mut out = Fields::new();
    for (k, v) in parse_pairs(fields)? {
        let Some(v) = v else {
            bail!("put cannot unset {k:?}; use `kv set {collection} {key} {k}=`");
        };
        out.insert(k, v);
    }
    Ok(out)
}

/// Fields of a JSON record, back to values (the API maps them one to one).
fn fields_of(r: &RecordJson) -> Result<Fields> {
    r.fields
        .iter()
        .map(|(k, j)| Ok((k.clone(), value_from_json(j)?)))
        .collect()
}

fn to_json(pairs: Vec<(String, Option<Value>)>) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, v.as_ref().map_or(serde_json::Value::Null, value_to_json)))
        .collect()
}

/// The same commands through the daemon's API (`/v1/records`, `/v1/links`,
/// `/v1/state-root`); the output is the same.
fn remote(c: &Client, cmd: KvCommand, json: bool) -> Result<ExitCode> {
    let written = |r: StateWriteResponse| -> Result<ExitCode> {
        print_id(r.id.as_deref().unwrap_or_default(), json)?;
        Ok(ExitCode::SUCCESS)
    };
    match cmd {
        KvCommand::Put {
            collection,
            key,
            fields,
            group,
        } => {
            let f = put_fields(&collection, &key, &fields)?;
            let req = FieldsRequest {
                fields: f
                    .iter()
                    .map(|(k, v)| (k.clone(), value_to_json(v)))
                    .collect(),
                group,
            };
            written(c.put_record(&collection, &key, &req)?)
        }
        KvCommand::Set {
            collection,
            key,
            fields,
            group,
        } => {
            let req = FieldsRequest {
                fields: to_json(parse_pairs(&fields)?),
                group,
            };
            written(c.patch_record(&collection, &key, &req)?)
        }
        KvCommand::Get {
            collection,
            key,
            as_of,
            group,
        } => match c.record(&collection, &key, group.as_deref(), as_of)? {
            Some(r) => {
                print_record(&collection, &key, &fields_of(&r)?, json, false)?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("no record {collection}/{key}");
                Ok(ExitCode::from(1))
            }
        },
        KvCommand::Del {
            collection,
            key,
            group,
        } => written(c.delete_record(&collection, &key, group.as_deref())?),
        KvCommand::Ls {
            collection,
            prefix,
            group,
        } => {
            let mut after: Option<String> = None;
            loop {
                let page = c.scan(&collection, &prefix, group.as_deref(), after.as_deref())?;
                for r in &page.records {
                    print_record(&collection, &r.key, &fields_of(r)?, json, true)?;
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => return Ok(ExitCode::SUCCESS),
                }
            }
        }
        KvCommand::Link {
            from,
            rel,
            to,
            remove,
            group,
        } => {
            let (from, to) = (parse_ref(&from)?, parse_ref(&to)?);
            let req = LinkRequest {
                from: RecordRefJson {
                    collection: from.collection,
                    key: from.key,
                },
                rel,
                to: RecordRefJson {
                    collection: to.collection,
                    key: to.key,
                },
                remove,
                group,
            };
            written(c.link(&req)?)
        }
        KvCommand::Root { group } => {
            let r = c.state_root(group.as_deref())?;
            print_root(&r.group, &r.root, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
