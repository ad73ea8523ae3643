//! Raw LMDB access to a closed store's tables, for tests that damage, downgrade or
//! inspect a store below the engine.

use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions, RwTxn};

/// A store table, keys and values as bytes.
pub type Db = Database<'static, Bytes, Bytes>;

/// Opens the closed store in `dir` with plain LMDB, opens (or creates) the tables
/// `names`, and runs `f` in one write transaction that commits after it.
pub fn with_tables<const N: usize, R>(
    dir: &Path,
    names: [&str; N],
    f: impl FnOnce([Db; N], &mut RwTxn<'_>) -> R,
) -> R {
    let mut opts = EnvOpenOptions::new();
    opts.max_dbs(16).map_size(1 << 30);
    // SAFETY: the store is closed; nothing else in this process has it open.
    let env = unsafe { opts.open(dir) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let dbs = match env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            let mut dbs = Vec::with_capacity(N);
            for name in names {
                dbs.push(opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?);
            }
            let dbs: [Database<'_, Bytes, Bytes>; N] =
                dbs.try_into().unwrap_or_else(|_| unreachable!());
            Ok::<_, heed::Error>(CommitOrAbort::Commit(dbs))
        })
        .unwrap()
    {
        CommitOrAbort::Commit(dbs) => dbs,
        CommitOrAbort::Abort(()) => unreachable!(),
    };
    let mut wtxn = env.write_txn().unwrap();
    let out = f(dbs, &mut wtxn);
    wtxn.commit().unwrap();
    env.prepare_for_closing().wait();
    out
}
