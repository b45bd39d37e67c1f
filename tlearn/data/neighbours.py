"""Nearest neighbours by cosine similarity (the dot product of unit vectors) without comparing every pair.

Up to EXACT_UP_TO pool rows every query is compared with every row, a block of queries at a time (numpy
matmul: exact, quadratic in time, memory bounded by the block). Beyond it, an inverted file (as in FAISS's IVF):
the rows are projected on their PROJECTED_DIMS principal directions and clustered by k-means into cells of about
CELL_SIZE rows; each query is compared, with the full vectors, with the rows of the PROBES cells whose centres
lie closest to its projection. The work per query stays about PROBES x CELL_SIZE rows whatever the size of the
pool (the cells' centres are a small matrix), so the search grows about linearly. Near copies, close in every
direction, fall in the same or a neighbouring cell; tests/test_scale.py compares both ways on real photos.
"""
from __future__ import annotations

import numpy as np

EXACT_UP_TO = 5000  # pool rows up to which every pair is compared
PROJECTED_DIMS = 32  # principal directions the cells are found in beyond that
CELL_SIZE = 100  # pool rows per cell, on average
PROBES = 16  # cells searched per query
SAMPLE = 20000  # rows the principal directions and the cells are estimated from
CHUNK = 256  # queries per block of the exact comparison


def _projection(pool: np.ndarray, dims: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, (d, dims) orthonormal basis) of the principal directions of pool[rows]."""
    sample = pool[rows]
    mean = sample.mean(0, dtype=np.float64).astype(np.float32)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    return mean, np.ascontiguousarray(vt[:dims].T, dtype=np.float32)


def _closest_cells(points: np.ndarray, centres: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each point's k closest centres (Euclidean), in blocks."""
    out = np.empty((len(points), k), dtype=np.int64)
    c2 = (centres ** 2).sum(1)
    for start in range(0, len(points), 4096):
        d = c2[None, :] - 2.0 * points[start:start + 4096] @ centres.T
        out[start:start + 4096] = np.argpartition(d, k - 1, axis=1)[:, :k] if k < len(centres) else \
            np.argsort(d, axis=1)[:, :k]
    return out


def _inverted_file(queries: np.ndarray, pool: np.ndarray, k: int, exclude: np.ndarray | None, cell_size: int,
                   probes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(index, similarity), (nq, k), best first, over the rows of each query's `probes` closest cells."""
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(pool), min(SAMPLE, len(pool)), replace=False))
    mean, basis = _projection(pool, min(PROJECTED_DIMS, pool.shape[1], len(rows)), rows)
    projected = (pool - mean) @ basis
    cells = max(1, len(pool) // cell_size)
    kmeans = MiniBatchKMeans(cells, random_state=seed, n_init=1, batch_size=4096, max_iter=20,
                             compute_labels=False).fit(projected[rows])
    centres = kmeans.cluster_centers_.astype(np.float32)
    cell_of = _closest_cells(projected, centres, 1)[:, 0]
    probes = min(probes, cells)
    probed = _closest_cells((queries - mean) @ basis, centres, probes)  # (nq, probes)
    members = np.argsort(cell_of, kind="stable")
    bounds = np.searchsorted(cell_of[members], np.arange(cells + 1))
    # every (query, probe) pair, grouped by cell: the queries each cell is compared with
    pairs = np.argsort(probed.ravel(), kind="stable")
    pair_bounds = np.searchsorted(probed.ravel()[pairs], np.arange(cells + 1))
    found = np.full((len(queries), probes * k), -1, dtype=np.int64)
    sims = np.full((len(queries), probes * k), -np.inf, dtype=np.float32)
    for c in range(cells):
        rows_c = members[bounds[c]:bounds[c + 1]]
        who = pairs[pair_bounds[c]:pair_bounds[c + 1]]
        if not len(rows_c) or not len(who):
            continue
        q, slot = who // probes, who % probes
        for start in range(0, len(q), 2048):
            qb, sb = q[start:start + 2048], slot[start:start + 2048]
            s = queries[qb] @ pool[rows_c].T
            if exclude is not None:
                s[rows_c[None, :] == exclude[qb, None]] = -np.inf
            take = min(k, len(rows_c))
            top = np.argpartition(-s, take - 1, axis=1)[:, :take] if take < len(rows_c) else \
                np.tile(np.arange(len(rows_c)), (len(qb), 1))
            cols = sb[:, None] * k + np.arange(take)[None, :]
            found[qb[:, None], cols] = rows_c[top]
            sims[qb[:, None], cols] = np.take_along_axis(s, top, 1)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, 1), np.take_along_axis(sims, order, 1)


def nearest(queries: np.ndarray, pool: np.ndarray, k: int, exclude: np.ndarray | None = None,
            exact_up_to: int = EXACT_UP_TO, cell_size: int = CELL_SIZE, probes: int = PROBES
            ) -> tuple[np.ndarray, np.ndarray]:
    """(index, similarity), each (nq, k'), k' = min(k, pool rows that may be matched): each query's most similar
    pool rows, most similar first. Rows are unit vectors (float32); exclude: per query, a pool row never matched
    (the query itself when the pool is the queries). Beyond exact_up_to pool rows a row the probed cells miss is
    absent (index -1, similarity -inf, last)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    k = max(0, min(k, len(pool) - (exclude is not None)))
    if k == 0 or not len(queries):
        return np.zeros((len(queries), k), np.int64), np.zeros((len(queries), k), np.float32)
    if len(pool) <= exact_up_to:
        return _exact(queries, pool, k, exclude)
    return _inverted_file(queries, pool, k, exclude, cell_size, probes)


def _exact(queries: np.ndarray, pool: np.ndarray, k: int, exclude: np.ndarray | None
           ) -> tuple[np.ndarray, np.ndarray]:
    index = np.empty((len(queries), k), dtype=np.int64)
    sims = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), CHUNK):
        s = queries[start:start + CHUNK] @ pool.T
        rows = np.arange(len(s))
        if exclude is not None:
            s[rows, exclude[start:start + CHUNK]] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else \
            np.tile(np.arange(s.shape[1]), (len(s), 1))
        top_sims = np.take_along_axis(s, top, 1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        index[start:start + CHUNK] = np.take_along_axis(top, order, 1)
        sims[start:start + CHUNK] = np.take_along_axis(top_sims, order, 1)
    return index, sims
