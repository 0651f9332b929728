#!/usr/bin/env python3
"""Reference timings for `npm run bench:search`: Faiss (IndexFlatIP, IndexHNSWFlat) and numpy on the same
vectors the Node side uses, read from raw little-endian float32 files. Prints one JSON line (rerank-serve: one per call).

  search_ref.py search <data.f32> <rows> <dim> <queries.f32> <k> <runs> <hnsw M> <efConstruction> <efSearch> <ids_out.i64> [--no-hnsw]
  search_ref.py rerank-serve <candidates.f32> <dim> <segment_rows> <queries.f32>   (then one call per stdin line)
"""
import json
import resource
import sys
import time

import numpy as np


def median_ms(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), [round(t, 2) for t in times]


def peak_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def search(args):
    data_path, rows, dim, query_path, k, runs, m, ef_c, ef_s, ids_out = args[:10]
    rows, dim, k, runs, m, ef_c, ef_s = map(int, (rows, dim, k, runs, m, ef_c, ef_s))
    with_hnsw = '--no-hnsw' not in args
    import faiss

    # Memory-mapped: numpy reads through the page cache, and only Faiss holds a private copy.
    x = np.memmap(data_path, dtype='<f4', mode='r', shape=(rows, dim))
    q = np.fromfile(query_path, dtype='<f4').reshape(-1, dim)
    out = {'threads': faiss.omp_get_max_threads()}

    def numpy_exact():
        s = q @ x.T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        return np.take_along_axis(part, order, axis=1)

    out['numpy_exact_ms'], out['numpy_exact_runs'] = median_ms(numpy_exact, runs)

    flat = faiss.IndexFlatIP(dim)
    flat.add(np.ascontiguousarray(x))
    out['faiss_flat_ms'], out['faiss_flat_runs'] = median_ms(lambda: flat.search(q, k), runs)
    _, exact_ids = flat.search(q, k)
    exact_ids.astype('<i8').tofile(ids_out)
    del flat

    if with_hnsw:
        hnsw = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = ef_c
        t0 = time.perf_counter()
        hnsw.add(np.ascontiguousarray(x))
        out['faiss_hnsw_build_s'] = time.perf_counter() - t0
        hnsw.hnsw.efSearch = ef_s
        out['faiss_hnsw_ms'], out['faiss_hnsw_runs'] = median_ms(lambda: hnsw.search(q, k), runs)
        _, approx_ids = hnsw.search(q, k)
        hits = sum(len(set(a) & set(e)) for a, e in zip(approx_ids.tolist(), exact_ids.tolist()))
        out['faiss_hnsw_recall'] = hits / exact_ids.size
        del hnsw
    out['peak_rss_kb'] = peak_rss_kb()
    print(json.dumps(out))


def rerank_serve(args):
    """Answers one timed call per stdin line, so the Node side can pair each of its calls with numpy's in
    the same moment: 'per_candidate' and 'concatenated' take the candidates as separate arrays, as mir3d
    gets them (numpy must take one product per candidate or concatenate them first); 'contiguous' is one
    product over a matrix already in one piece, the lower bound. Each answer is one JSON line: the second
    of two calls, timed."""
    cand_path, dim, segment_rows, query_path = args[:4]
    dim, segment_rows = int(dim), int(segment_rows)
    v = np.fromfile(cand_path, dtype='<f4').reshape(-1, dim)
    q = np.fromfile(query_path, dtype='<f4').reshape(-1, dim)
    starts = np.arange(0, v.shape[0], segment_rows)
    separate = [v[s:s + segment_rows].copy() for s in starts]

    def max_argmax(s):
        best = np.maximum.reduceat(s, starts, axis=1)
        arg = s.reshape(q.shape[0], -1, segment_rows).argmax(axis=2)
        return best, arg

    def per_candidate():
        out = []
        for x in separate:
            s = q @ x.T
            out.append((s.max(axis=1), s.argmax(axis=1)))
        return out

    calls = {
        'contiguous': lambda: max_argmax(q @ v.T),
        'concatenated': lambda: max_argmax(q @ np.concatenate(separate).T),
        'per_candidate': per_candidate,
    }
    for line in sys.stdin:
        fn = calls[line.strip()]
        fn()  # the timed call finds the data in cache as the call before it left it, as mir3d's does
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ms = (time.perf_counter() - t0) * 1000
        cpu_ms = (time.process_time() - cpu0) * 1000
        print(json.dumps({'ms': ms, 'cpu_ms': cpu_ms, 'peak_rss_kb': peak_rss_kb()}), flush=True)


if __name__ == '__main__':
    {'search': search, 'rerank-serve': rerank_serve}[sys.argv[1]](sys.argv[2:])
