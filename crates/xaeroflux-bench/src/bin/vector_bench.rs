//! HNSW (`xaeroflux-vector`) against hnswlib on MNIST, same data, same metric (cosine),
//! M = 16, ef_construction = 200, one thread.
//!
//! First run `crates/xaeroflux-bench/vector/hnswlib_anchor.py` (see its docstring): it
//! writes `base.f32`, `queries.f32`, `truth.u32` and `hnswlib.json` into DIR. Then
//! `cargo run --release -p xaeroflux-bench --bin vector_bench -- DIR [--store-only]`.
//!
//! The second part puts the same vectors into a store as events (784 little-endian
//! f32 each) and measures the search API users call (`XaeroFlux::search_vector`,
//! `search_vector_events`, `search_vectors`) against the bare index it is built on: the
//! store's own index file loaded as a plain `HnswIndex`, so both search the same graph.
//! Bare and store passes alternate in each round; the table gives the median ratio,
//! the worst round's ratio and the median QPS. `--store-only` skips the hnswlib part.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xaeroflux::{VectorExtractor, VectorSearchConfig, XaeroFlux};
use xaeroflux_vector::{HnswIndex, HnswParams, Metric, simd_level};

const DIM: usize = 784;
const K: usize = 10;
const EFS: [usize; 4] = [16, 32, 64, 128];

fn read_f32(path: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path)?;
    anyhow::ensure!(
        bytes.len() % (4 * DIM) == 0,
        "{} is not n x {DIM} f32",
        path.display()
    );
    Ok(bytes
        .chunks_exact(4 * DIM)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

fn read_truth(path: &Path) -> anyhow::Result<Vec<Vec<u64>>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .chunks_exact(4 * K)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect()
        })
        .collect())
}

/// CPU time of the calling thread (Linux `/proc/thread-self/schedstat`, first field,
/// nanoseconds on CPU). On a shared machine this is robust where wall time is not; the
/// Python side uses `time.thread_time()` for the same figure. `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

fn cpu_since(start: Option<Duration>) -> f64 {
    match (start, thread_cpu()) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => f64::NAN,
    }
}

fn recall(found: &[Vec<u64>], truth: &[Vec<u64>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|k| t.contains(k)).count())
        .sum();
    hits as f64 / (truth.len() * K) as f64
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "crates/xaeroflux-bench/vector/data".into()),
    );
    let base = read_f32(&dir.join("base.f32"))?;
    let queries = read_f32(&dir.join("queries.f32"))?;
    let truth = read_truth(&dir.join("truth.u32"))?;
    if std::env::args().any(|a| a == "--store-only") {
        return store_api(&base, &queries, &truth);
    }
    let anchor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("hnswlib.json"))?)?;
    println!(
        "MNIST {} x {DIM}, {} queries, cosine, M=16, ef_construction=200, one thread, kernels: {}",
        base.len(),
        queries.len(),
        simd_level()
    );

    let mut params = HnswParams::new(DIM);
    params.metric = Metric::Cosine;
    params.max_connections = 16;
    params.ef_construction = 200;
    params.max_elements = base.len();
    // VECTOR_BENCH_CACHE=path: reuse a saved index (search tuning only; build time is
    // then the load time and not comparable).
    let cache = std::env::var_os("VECTOR_BENCH_CACHE").map(PathBuf::from);
    let (t, c) = (Instant::now(), thread_cpu());
    let index = match cache.as_deref().filter(|p| p.exists()) {
        Some(p) => HnswIndex::load(p)?.0,
        None => {
            let index = HnswIndex::new(params)?;
            for (i, v) in base.iter().enumerate() {
                index.insert(i as u64, v)?;
            }
            if let Some(p) = &cache {
                index.save(p, 0)?;
            }
            index
        }
    };
    let (build, build_cpu) = (t.elapsed().as_secs_f64(), cpu_since(c));
    let hb = anchor["build_s"].as_f64().unwrap_or(f64::NAN);
    let hbc = anchor["build_cpu_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "build: ours {build:.1} s ({build_cpu:.1} CPU s), hnswlib {hb:.1} s ({hbc:.1} CPU s); ratio {:.2}x wall, {:.2}x CPU",
        build / hb,
        build_cpu / hbc
    );
    let mem = index.memory_bytes() as f64 / 1e6;
    let raw = (base.len() * DIM * 4) as f64 / 1e6;
    // hnswlib: per element data + level-0 list (4 + 2M*4) + label 8, plus upper lists.
    let hnswlib_mem = base.len() as f64 * (DIM * 4 + 4 + 32 * 4 + 8) as f64 / 1e6;
    println!(
        "memory: ours {mem:.0} MB, hnswlib level-0 block ~{hnswlib_mem:.0} MB, raw vectors {raw:.0} MB"
    );

    println!("\nQPS per wall second, and [per CPU second of the searching thread]:");
    println!("| ef | recall@10 ours | QPS ours | recall@10 hnswlib | QPS hnswlib | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let results = anchor["results"].as_array().cloned().unwrap_or_default();
    for ef in EFS {
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        let mut found = Vec::new();
        for _ in 0..3 {
            let (t, c) = (Instant::now(), thread_cpu());
            found = queries
                .iter()
                .map(|q| {
                    index
                        .search(q, K, ef)
                        .map(|h| h.iter().map(|h| h.key).collect::<Vec<_>>())
                })
                .collect::<Result<Vec<_>, _>>()?;
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_since(c));
        }
        let qps = queries.len() as f64 / best;
        let qps_cpu = queries.len() as f64 / best_cpu;
        let r = recall(&found, &truth);
        let a = results.iter().find(|x| x["ef"].as_u64() == Some(ef as u64));
        let field = |name: &str| a.and_then(|a| a[name].as_f64()).unwrap_or(f64::NAN);
        let (ar, aq, aqc) = (field("recall"), field("qps"), field("qps_cpu"));
        println!(
            "| {ef} | {r:.4} | {qps:.0} [{qps_cpu:.0}] | {ar:.4} | {aq:.0} [{aqc:.0}] | {:.2}x [{:.2}x] |",
            qps / aq,
            qps_cpu / aqc
        );
    }

    if std::env::var_os("VECTOR_BENCH_QUICK").is_some() {
        return Ok(());
    }
    let t = Instant::now();
    let batch = index.search_batch(&queries, K, 64)?;
    let bq = queries.len() as f64 / t.elapsed().as_secs_f64();
    let br = recall(
        &batch
            .iter()
            .map(|h| h.iter().map(|h| h.key).collect())
            .collect::<Vec<_>>(),
        &truth,
    );
    println!("\nsearch_batch (all cores) ef=64: recall {br:.4}, {bq:.0} QPS");

    let n_exact = 1000;
    let t = Instant::now();
    let exact: Vec<Vec<u64>> = queries[..n_exact]
        .iter()
        .map(|q| {
            index
                .search_exact(q, K)
                .map(|h| h.iter().map(|h| h.key).collect())
        })
        .collect::<Result<_, _>>()?;
    let eq = n_exact as f64 / t.elapsed().as_secs_f64();
    println!(
        "exact brute force (one thread): recall {:.4}, {eq:.0} QPS",
        recall(&exact, &truth[..n_exact])
    );

    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("mnist.xfv");
    let t = Instant::now();
    index.save(&path, 60_000)?;
    let save = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
    let t = Instant::now();
    let (loaded, pos) = HnswIndex::load(&path)?;
    let load = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        pos == 60_000 && loaded.len() == base.len(),
        "reload mismatch"
    );
    let same = queries[..100]
        .iter()
        .all(|q| loaded.search(q, K, 64).ok() == index.search(q, K, 64).ok());
    anyhow::ensure!(same, "reloaded index answers differently");
    println!(
        "save {save:.2} s, load {load:.2} s, file {size:.0} MB (hnswlib save {:.2} s, load {:.2} s)",
        anchor["save_s"].as_f64().unwrap_or(f64::NAN),
        anchor["load_s"].as_f64().unwrap_or(f64::NAN)
    );
    drop((index, loaded));
    println!();
    store_api(&base, &queries, &truth)
}

/// Event type of the bench's vectors.
const VEC_TYPE: u32 = 1000;
/// Alternating rounds per row.
const ROUNDS: usize = 5;
/// Queries per single-thread pass (the batch passes use all of them).
const PASS: usize = 4000;

/// A payload of little-endian f32 is the vector.
struct F32Le;

impl VectorExtractor for F32Le {
    fn extract_vector(&self, data: &[u8]) -> Option<Vec<f32>> {
        (data.len() == 4 * DIM).then(|| {
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
    }
}

/// The median and the smallest of `xs`.
fn median_min(xs: &mut [f64]) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0])
}

/// QPS of `pass` over `n` queries, per wall second and per CPU second of the calling
/// thread (the latter is robust on a loaded machine, for one-thread passes only).
fn qps(n: usize, pass: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    let (t, c) = (Instant::now(), thread_cpu());
    pass()?;
    Ok((
        n as f64 / t.elapsed().as_secs_f64(),
        n as f64 / cpu_since(c),
    ))
}

/// One row: `bare` and `api` alternate for [`ROUNDS`] rounds.
fn row(
    label: &str,
    n: usize,
    mut bare: impl FnMut() -> anyhow::Result<()>,
    mut api: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (mut b, mut a, mut r, mut rc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (qb, qa) = if round % 2 == 0 {
            let qb = qps(n, &mut bare)?;
            (qb, qps(n, &mut api)?)
        } else {
            let qa = qps(n, &mut api)?;
            (qps(n, &mut bare)?, qa)
        };
        b.push(qb.0);
        a.push(qa.0);
        r.push(qa.0 / qb.0);
        rc.push(qa.1 / qb.1);
    }
    let (bm, _) = median_min(&mut b);
    let (am, _) = median_min(&mut a);
    let (rm, rw) = median_min(&mut r);
    let cpu = if label.contains("all cores") {
        "-".to_string()
    } else {
        let (cm, cw) = median_min(&mut rc);
        format!("{cm:.2}x / {cw:.2}x")
    };
    println!("| {label} | {bm:.0} | {am:.0} | {rm:.2}x | {rw:.2}x | {cpu} |");
    Ok(())
}

/// The store API against the bare index, same graph, same run.
fn store_api(base: &[Vec<f32>], queries: &[Vec<f32>], truth: &[Vec<u64>]) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let store = XaeroFlux::builder(tmp.path()).open()?;
    let first = store.committed_count();
    let t = Instant::now();
    let mut payload = Vec::with_capacity(4 * DIM);
    for v in base {
        payload.clear();
        payload.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        store.write_event(&payload, VEC_TYPE)?;
    }
    store.flush()?;
    let write = t.elapsed().as_secs_f64();
    let extractors = || {
        let e: Arc<dyn VectorExtractor> = Arc::new(F32Le);
        HashMap::from([(VEC_TYPE, e)])
    };
    let config = |ef: usize| {
        let mut c = VectorSearchConfig::new(DIM);
        c.metric = Metric::Cosine;
        c.max_connections = 16;
        c.ef_construction = 200;
        c.max_elements = base.len();
        c.persist_every = u64::MAX;
        c.ef_search = ef;
        c
    };
    let t = Instant::now();
    store.start_vector_search(extractors(), config(EFS[0]))?;
    while store.vector_search_stats()?.pending > 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let build = t.elapsed().as_secs_f64();
    // Saving on stop makes the index file the bare anchor: the very same graph.
    store.stop_vector_search()?;
    let (bare, _) = HnswIndex::load(&tmp.path().join(xaeroflux::VECTOR_INDEX_FILE))?;
    println!(
        "store API: {} events of {} B written in {write:.1} s, indexed in {build:.1} s; load average {}",
        base.len(),
        4 * DIM,
        load_average()
    );
    let key = |local_seq: u64| local_seq - first;
    let single = &queries[..PASS.min(queries.len())];
    println!(
        "\nQPS, median of {ROUNDS} alternating rounds; ratio = store API / bare index (median, worst round):"
    );
    println!(
        "| call | bare index QPS | store API QPS | ratio median | ratio worst | per CPU second: median / worst |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for ef in EFS {
        store.start_vector_search(extractors(), config(ef))?;
        let found: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| {
                store
                    .search_vector(q, K, -1.0)
                    .map(|m| m.iter().map(|m| key(m.local_seq)).collect())
            })
            .collect::<Result<_, _>>()?;
        let r = recall(&found, truth);
        row(
            &format!("ef {ef} search_vector (recall {r:.4})"),
            single.len(),
            || {
                for q in single {
                    std::hint::black_box(bare.search(q, K, ef)?);
                }
                Ok(())
            },
            || {
                for q in single {
                    std::hint::black_box(store.search_vector(q, K, -1.0)?);
                }
                Ok(())
            },
        )?;
        row(
            &format!("ef {ef} search_vector_events (copies)"),
            single.len(),
            || {
                for q in single {
                    std::hint::black_box(bare.search(q, K, ef)?);
                }
                Ok(())
            },
            || {
                for q in single {
                    std::hint::black_box(store.search_vector_events(q, K, -1.0)?);
                }
                Ok(())
            },
        )?;
        row(
            &format!("ef {ef} search_vectors (all cores)"),
            queries.len(),
            || {
                std::hint::black_box(bare.search_batch(queries, K, ef)?);
                Ok(())
            },
            || {
                std::hint::black_box(store.search_vectors(queries, K, -1.0)?);
                Ok(())
            },
        )?;
        store.stop_vector_search()?;
    }
    println!("load average after: {}", load_average());
    store.close()?;
    Ok(())
}

/// The 1, 5 and 15 minute load averages, as the kernel reports them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
