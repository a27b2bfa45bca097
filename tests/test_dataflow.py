"""Every stage's pipeline builds for Dataflow (dry run, nothing submitted) and what it ships to
workers pickles."""

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions

from mining.extraction import ExtractConfig
from pipelines import embed, extract, index, mine
from tests.conftest import REPO

pytestmark = pytest.mark.slow
DATAFLOW = [
    "--runner=DataflowRunner",
    "--dry_run=True",
    "--sdk_location=container",
    "--project=ccmine-test",
    "--region=europe-west4",
    "--temp_location=gs://ccmine-test/tmp",
    f"--setup_file={REPO / 'setup.py'}",
]


def dataflow_pipeline(*extra):
    return beam.Pipeline(options=PipelineOptions(DATAFLOW + list(extra)))


def test_extract_builds_for_dataflow():
    pipeline = dataflow_pipeline()
    extract.build_pipeline(
        pipeline,
        ["gs://commoncrawl/crawl-data/x.warc.wet.gz"],
        "gs://ccmine-test/run/sentences",
        ExtractConfig(),
    )
    assert pipeline.run().state == "DONE"


def test_embed_builds_for_dataflow_with_gpu_options(tmp_path):
    sentences = tmp_path / "sentences" / "lang=de"
    sentences.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(extract.SENTENCE_SCHEMA.empty_table(), sentences / "part-0.parquet")
    handler = embed.SentenceEncoderHandler("bundled", "cuda", 64, 1024, 0)
    pipeline = dataflow_pipeline(
        "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver",
        "--machine_type=g2-standard-4",
    )
    embed.build_pipeline(
        pipeline,
        str(tmp_path / "sentences"),
        "gs://ccmine-test/run/embeddings",
        ["de"],
        handler,
        "float16",
        100_000,
    )
    assert pipeline.run().state == "DONE"


def test_index_and_mine_build_for_dataflow(tmp_path):
    import numpy as np
    import pyarrow as pa

    from mining.embedding_store import ID_SCHEMA, write_shard

    for lang in ("de", "en"):
        write_shard(
            str(tmp_path / f"lang={lang}"),
            0,
            np.zeros((0, 8), np.float16),
            pa.Table.from_pylist([], ID_SCHEMA),
        )
    pipeline = dataflow_pipeline()
    index.build_add_pipeline(
        pipeline,
        "de",
        [(0, "gs://b/run/embeddings/lang=de/shard-00000.npy", 0)],
        "gs://b/empty.faiss",
        "gs://b/parts",
    )
    assert pipeline.run().state == "DONE"
    pipeline = dataflow_pipeline()
    mine.build_search_pipeline(
        pipeline,
        str(tmp_path),
        "gs://b/run/indexes",
        "de",
        "en",
        4,
        32,
        "ratio",
        "gs://b/run/bitext/de-en",
    )
    assert pipeline.run().state == "DONE"


def test_worker_code_pickles():
    for fn in (
        extract.ReadDocuments(1000, False),
        extract.ExtractSentences(ExtractConfig(), None, False),
        embed.SentenceEncoderHandler("bundled", "cpu", 64, 1024, 2),
        embed.WriteShard("gs://b/out", "float16"),
        index.AddShard("gs://b/empty.faiss", "gs://b/parts"),
        mine.SearchShard("gs://b/en.faiss", "gs://b/emb", "en", [0, 100], 4, 32),
        mine.ScoreCandidates("ratio"),
        mine.BestPerQuery("gs://b/out"),
    ):
        restored = pickler.loads(pickler.dumps(fn))
        assert type(restored) is type(fn) and vars(restored) == vars(fn)
