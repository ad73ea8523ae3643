//! HNSW (`xaeroflux-vector`) against hnswlib on MNIST, same data, same metric (cosine),
//! M = 16, ef_construction = 200, one thread.
//!
//! First run `crates/xaeroflux-bench/vector/hnswlib_anchor.py` (see its docstring): it
//! writes `base.f32`, `queries.f32`, `truth.u32` and `hnswlib.json` into DIR. Then
//! `cargo run --release -p xaeroflux-bench --bin vector_bench -- DIR`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    Ok(())
}
