"""Run directories with synthetic embeddings in the documented drop-in format.

Row i of a language has the text "LANG sentence i", so a mined pair names its own rows.
"""

import numpy as np
import pyarrow as pa

from mining.embedding_store import write_shard
from mining.json_files import write_json
from pipelines.stage_dir import StageWriter


def unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def ids_table(lang, n, offset=0):
    return pa.table(
        {
            "hash": pa.array(
                np.arange(offset, offset + n) + (1000 if lang == "de" else 0), pa.int64()
            ),
            "text": [f"{lang} sentence {i}" for i in range(offset, offset + n)],
            "url": [f"http://{lang}.example/{i}" for i in range(offset, offset + n)],
            "record_id": [f"<urn:{i}>" for i in range(offset, offset + n)],
            "position": pa.array([0] * n, pa.int32()),
        }
    )


def planted(rng, n_src, n_tgt, translated, dim, noise=0.35):
    """(src, tgt) unit vectors: src's first `translated` rows are noisy copies of tgt's."""
    tgt = unit(rng.normal(size=(n_tgt, dim)))
    copies = tgt[:translated] + noise * rng.normal(size=(translated, dim)) / np.sqrt(dim)
    src = unit(np.vstack([copies, rng.normal(size=(n_src - translated, dim))]))
    return src, tgt


def write_embeddings(
    run_dir, vectors: dict, shard_rows: dict, encoder="synthetic", encoder_dir=None
):
    """RUN/embeddings with each language's vectors in shards of shard_rows[lang] rows, marked
    as encoded by `encoder` (whose directory `mine` reads its default cut from)."""
    writer = StageWriter(str(run_dir), "embeddings")
    for lang, rows in vectors.items():
        size = shard_rows[lang]
        for shard, start in enumerate(range(0, len(rows), size)):
            chunk = rows[start : start + size].astype(np.float16)
            write_shard(
                writer.path(f"lang={lang}"), shard, chunk, ids_table(lang, len(chunk), start)
            )
    writer.commit({}, {"encoder": encoder, "encoder_dir": encoder_dir})
    return run_dir


def row_pairs(rows):
    """(src row, tgt row) of mined bitext rows."""
    return [(int(r["src_text"].split()[-1]), int(r["tgt_text"].split()[-1])) for r in rows]


def write_index_shards(index_dir, lang, count, record, rows=10, size=100):
    """`count` stand-in index shards of `rows` rows and `size` bytes, each with its record, and
    the language's metadata: what the index check before mining reads, without FAISS. Returns
    the metadata."""
    from apache_beam.io.filesystems import FileSystems

    from indexes import shards

    listed = []
    for number in range(count):
        path = shards.shard_path(index_dir, lang, number)
        with FileSystems.create(path) as out:
            out.write(bytes(size))
        span = {"start": number * rows, "stop": number * rows + rows}
        write_json(shards.shard_record_path(path), {**record, **span, "bytes": size})
        listed.append({**span, "path": f"{lang}/shard-{number:05d}.faiss", "bytes": size})
    meta = {**record, "lang": lang, "count": count * rows, "shards": listed}
    write_json(shards.meta_path(index_dir, lang), meta)
    return meta
