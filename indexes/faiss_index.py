"""FAISS inner-product indexes: exact when small, IVF-PQ when large; build, store, search.

A language is indexed in shards (indexes/shards.py); ids inside a shard are its local row
positions 0..n-1, and the searcher adds the shard's first row id.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import faiss
import numpy as np

from mining.whole_files import read_bytes, write_bytes

log = logging.getLogger("ccmine")
# Below this many vectors an exact (flat) index is both fast enough and exact, as in stopes.
FLAT_MAX = 100_000
# k-means training points per IVF list: FAISS warns below 39; more costs time, not recall
# (benchmarks/sweep_ivf.py).
TRAIN_POINTS_PER_LIST = 64
# Approximate neighbours re-scored with the exact vectors per query (the miner's --candidates).
CANDIDATES = 32


@dataclass
class IndexSpec:
    index_type: str  # "flat" or "ivfpq"
    dim: int
    nlist: int = 0
    pq_m: int = 0
    opq: bool = False
    nprobe: int = 0
    pq_bits: int = 8

    def factory(self) -> str:
        """PQ codes only find candidates: the mine stage re-scores them with the embeddings.

        4-bit codes use FAISS's SIMD fast-scan layout (`x4fsr`, on residuals); 8-bit codes are
        for GPUs, whose IVF-PQ has no fast scan ("np": no polysemous training, which costs
        minutes and only helps Hamming filtering).
        """
        if self.index_type == "flat":
            return "Flat"
        prefix = f"OPQ{self.pq_m}," if self.opq else ""
        codes = f"PQ{self.pq_m}x4fsr" if self.pq_bits == 4 else f"PQ{self.pq_m}np"
        return f"{prefix}IVF{self.nlist},{codes}"

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def gpu_capable(self) -> bool:
        return self.index_type == "flat" or self.pq_bits == 8


def choose_spec(
    count: int,
    dim: int,
    index_type: str = "auto",
    nlist: int | None = None,
    pq_m: int | None = None,
    opq: bool = False,
    nprobe: int | None = None,
    pq_bits: int | None = None,
    shard_size: int | None = None,
    gpu: bool = False,
) -> IndexSpec:
    """The index for a corpus size: flat below FLAT_MAX vectors, IVF-PQ above (or as forced).

    IVF-PQ defaults (benchmarks/sweep_ivf.py): about 4*sqrt(n) lists, n the rows of one index
    shard (every shard is searched on its own, and the training sample stays bounded); on CPU
    4-bit fast-scan codes with dim/2 sub-quantizers (2 dimensions each: fine enough that the
    true neighbours are among 32 candidates), on GPU 8-bit codes with dim/8.
    """
    if index_type == "auto":
        index_type = "flat" if count < FLAT_MAX else "ivfpq"
    if index_type == "flat":
        return IndexSpec("flat", dim)
    if index_type != "ivfpq":
        raise ValueError(f"unknown index type {index_type!r} (auto, flat, ivfpq)")
    pq_bits = pq_bits or (8 if gpu else 4)
    if pq_bits not in (4, 8):
        raise ValueError(f"PQ codes have 4 or 8 bits, not {pq_bits}")
    per_shard = min(count, shard_size) if shard_size else count
    nlist = nlist or max(16, 2 ** round(math.log2(4 * math.sqrt(max(per_shard, 1)))))
    preferred = (dim // 2, dim // 4, dim // 8, dim) if pq_bits == 4 else (dim // 8, dim // 4, dim)
    pq_m = pq_m or next(m for m in preferred if m and dim % m == 0)
    if dim % pq_m:
        fitting = [m for m in (dim // 8, dim // 4, dim // 2, dim) if m and dim % m == 0]
        raise ValueError(
            f"--pq-m {pq_m} does not divide the embeddings' dimension {dim} (PQ cuts each vector "
            f"into pq_m equal parts); for example {', '.join(map(str, fitting))}"
        )
    nprobe = min(nlist, nprobe or max(16, nlist // 32))  # fast scan misbehaves past nlist
    return IndexSpec("ivfpq", dim, nlist, pq_m, opq, nprobe, pq_bits)


def new_index(spec: IndexSpec) -> faiss.Index:
    return faiss.index_factory(spec.dim, spec.factory(), faiss.METRIC_INNER_PRODUCT)


def sample_size(spec: IndexSpec, rows: int) -> int:
    """TRAIN_POINTS_PER_LIST points per IVF list, at least 10,000 (or every row, if fewer)."""
    return min(rows, max(TRAIN_POINTS_PER_LIST * spec.nlist, 10_000))


def training_sample(vectors: np.ndarray, spec: IndexSpec, seed: int = 0) -> np.ndarray:
    """sample_size rows, drawn without replacement."""
    size = sample_size(spec, len(vectors))
    rows = np.random.default_rng(seed).choice(len(vectors), size=size, replace=False)
    return np.ascontiguousarray(vectors[np.sort(rows)], dtype=np.float32)


def set_search_params(index: faiss.Index, spec: IndexSpec) -> None:
    if spec.index_type == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = spec.nprobe


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def to_device(index: faiss.Index, use_gpu: bool | None = None) -> faiss.Index:
    """Move an index to all GPUs when the GPU build of FAISS and a GPU are present."""
    if use_gpu is None:
        use_gpu = gpu_available()
    if not use_gpu:
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16 = True
    return faiss.index_cpu_to_all_gpus(index, co=options)


def write_index(index: faiss.Index, path: str) -> int:
    """Write a (CPU) index to any Beam file system; returns the bytes written."""
    data = faiss.serialize_index(index).tobytes()
    write_bytes(path, data)
    return len(data)


def load_index(path: str) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(read_bytes(path), dtype=np.uint8))


def ready_to_search(index: faiss.Index, spec: IndexSpec, use_gpu: bool | None = None):
    """The index with its search parameters set, on the GPU when the spec allows and one is
    present."""
    set_search_params(index, spec)
    if spec.gpu_capable and (use_gpu if use_gpu is not None else gpu_available()):
        index = to_device(index, True)
        if spec.index_type == "ivfpq":
            faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", spec.nprobe)
    return index


def train_index(vectors: np.ndarray, spec: IndexSpec, use_gpu: bool | None = None) -> faiss.Index:
    """An empty index, trained on a sample when it needs training (IVF-PQ); on GPU if present."""
    index = new_index(spec)
    if index.is_trained:
        return index
    sample = training_sample(vectors, spec)
    log.info("training %s on %d vectors", spec.factory(), len(sample))
    if spec.gpu_capable and (use_gpu if use_gpu is not None else gpu_available()):
        gpu_index = to_device(index, True)
        gpu_index.train(sample)
        return faiss.index_gpu_to_cpu(gpu_index)
    index.train(sample)
    return index


def add_vectors(index: faiss.Index, vectors: np.ndarray) -> None:
    """Add rows; their ids are their positions in the index (0, 1, ...)."""
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def build_index(vectors: np.ndarray, spec: IndexSpec, use_gpu: bool | None = None) -> faiss.Index:
    """Train and add all vectors in one process (ids are row positions)."""
    index = train_index(vectors, spec, use_gpu)
    for start in range(0, len(vectors), 100_000):
        add_vectors(index, vectors[start : start + 100_000])
    set_search_params(index, spec)
    return index


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    rerank: np.ndarray | None = None,
    candidates: int = CANDIDATES,
    batch: int = 8192,
):
    """Batched kNN: (similarities, ids), each (n, k), best first.

    With `rerank` (the indexed vectors, row = id), `candidates` approximate neighbours are
    re-scored with exact inner products and the best k kept: IVF-PQ finds, the vectors decide.
    """
    k = min(k, index.ntotal)
    fetch = min(max(k, candidates), index.ntotal) if rerank is not None else k
    if rerank is not None:
        batch = min(batch, 1024)  # the gathered candidate vectors: batch x fetch x dim floats
    sims = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch):
        chunk = np.ascontiguousarray(queries[start : start + batch], dtype=np.float32)
        found_sims, found_ids = index.search(chunk, fetch)
        if rerank is not None:
            safe = np.where(found_ids < 0, 0, found_ids)
            # batched matrix-vector products: (n, fetch, dim) @ (n, dim, 1)
            exact = np.matmul(rerank[safe].astype(np.float32), chunk[:, :, None])[..., 0]
            found_sims = np.where(found_ids < 0, -np.inf, exact)
            top = np.argsort(-found_sims, axis=1, kind="stable")[:, :k]
            found_sims = np.take_along_axis(found_sims, top, axis=1)
            found_ids = np.take_along_axis(found_ids, top, axis=1)
        sims[start : start + batch], ids[start : start + batch] = found_sims, found_ids
    return sims, ids
