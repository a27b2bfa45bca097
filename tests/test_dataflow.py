"""Every stage's pipeline builds for Dataflow (dry run, nothing submitted) and what it ships to
workers pickles."""

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions

from mining.extraction import ExtractConfig
from pipelines import embed, extract, index
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


def transform_count(build) -> int:
    pipeline = beam.Pipeline()
    build(pipeline)
    return len(pipeline.to_runner_api().components.transforms)


def test_extract_embed_and_index_have_as_many_steps_for_176_languages_as_for_two(tmp_path):
    """Steps per language made --langs all a graph of thousands of transforms (3,046 for
    extract) that Dataflow has to take and show."""
    from mining.langid import LanguageIdentifier

    every = LanguageIdentifier().languages()
    assert len(every) == 176

    def extract_for(langs):
        return lambda p: extract.build_pipeline(
            p, ["gs://cc/x.warc.gz"], "gs://b/run/sentences", ExtractConfig(langs=tuple(langs))
        )

    assert transform_count(extract_for(every)) == transform_count(extract_for(["de", "en"]))

    import pyarrow.parquet as pq

    for lang in every:
        (tmp_path / f"lang={lang}").mkdir()
        pq.write_table(
            extract.SENTENCE_SCHEMA.empty_table(), tmp_path / f"lang={lang}" / "p.parquet"
        )
    handler = embed.SentenceEncoderHandler("bundled", "cpu", 64, 0)

    def embed_for(langs):
        shards = {lang: 1 for lang in langs}
        return lambda p: embed.build_pipeline(
            p, str(tmp_path), "gs://b/run/embeddings", langs, handler, "float16", shards
        )

    assert transform_count(embed_for(every)) == transform_count(embed_for(["de", "en"]))

    from indexes import faiss_index

    layout = _layouts(tmp_path / "embeddings")["de"]
    spec = faiss_index.choose_spec(6, 8, "ivfpq", nlist=2, pq_m=4)

    def index_for(langs):
        plans = {lang: (layout, spec, {}) for lang in langs}
        samples = index.training_samples(plans, frozenset(langs))
        return lambda p: index.build_pipeline(p, plans, samples, "gs://b/run/indexes", 4)

    assert transform_count(index_for(every)) == transform_count(index_for(["de", "en"]))


def test_embed_builds_for_dataflow_with_gpu_options(tmp_path):
    sentences = tmp_path / "sentences" / "lang=de"
    sentences.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(extract.SENTENCE_SCHEMA.empty_table(), sentences / "part-0.parquet")
    handler = embed.SentenceEncoderHandler("bundled", "cuda", 64, 0)
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
        {"de": 1},
    )
    assert pipeline.run().state == "DONE"


def _layouts(tmp_path):
    """Two languages of two tiny embedding shards each."""
    import numpy as np

    from mining.embedding_store import shard_layout, write_shard

    for lang in ("de", "en"):
        for shard in range(2):
            write_shard(
                str(tmp_path / f"lang={lang}"),
                shard,
                np.zeros((3, 8), np.float16),
                ids(3),
            )
    return {lang: shard_layout(str(tmp_path), lang) for lang in ("de", "en")}


def ids(n):
    import pyarrow as pa

    from mining.embedding_store import ID_SCHEMA

    row = {"hash": 0, "text": "t", "url": "u", "record_id": "r", "position": 0}
    return pa.Table.from_pylist([row] * n, ID_SCHEMA)


def test_index_and_mine_build_for_dataflow(tmp_path):
    from indexes import faiss_index
    from pipelines import bitext, mine, select
    from pipelines.pair_context import PairContext, write_job

    layouts = _layouts(tmp_path)
    spec = faiss_index.choose_spec(6, 8, "ivfpq", nlist=2, pq_m=4)
    pipeline = dataflow_pipeline()
    flat = faiss_index.choose_spec(6, 8, "flat")
    plans = {"de": (layouts["de"], spec, {"encoder": "e"}), "en": (layouts["en"], flat, {})}
    samples = index.training_samples(plans, frozenset())
    index.build_pipeline(pipeline, plans, samples, "gs://b/run/indexes", 4)
    assert pipeline.run().state == "DONE"

    shard = {"number": 0, "start": 0, "stop": 6, "path": "x/shard-00000.faiss", "bytes": 1}
    metas = {lang: {"spec": spec.as_dict(), "shards": [shard]} for lang in ("de", "en")}

    pairs = [  # two pairs' steps in one job, as `mine` builds them
        PairContext(f"{s}-{t}", s, t, layouts, f"gs://b/{s}-{t}", f"mine.{s}-{t}", (1.0, None, 0.5))
        for s, t in (("de", "en"), ("en", "de"))
    ]
    job = write_job(str(tmp_path), "job", pairs, index_dir="gs://b/idx", metas=metas)
    config = {"k": 4, "candidates": 32, "margin": "ratio"}
    for mode in ("max", "intersect", "union", "forward"):
        pipeline = dataflow_pipeline()
        mine.build_search_and_selection(pipeline, job, {**config, "mode": mode}, 3)
        assert pipeline.run().state == "DONE"
    pipeline = dataflow_pipeline()
    select.build_continuation(pipeline, job, 4, 2)
    assert pipeline.run().state == "DONE"
    pipeline = dataflow_pipeline()
    bitext.build_assembly(pipeline, job)
    assert pipeline.run().state == "DONE"


def test_mine_jobs_are_as_large_for_sixteen_pairs_of_10000_shards_as_for_two_of_10(tmp_path):
    """Steps per pair made 167 transforms per pair in the search and selection job (max mode)
    and 97 in the assembly job, and shard layouts carried in the steps put 3.1 MB into the
    first for one pair of 10,000 embedding shards per language."""
    from mining.embedding_store import ShardLayout
    from pipelines import bitext, mine, select
    from pipelines.pair_context import PairContext, write_job

    def layout(lang, shards):
        root = f"gs://bucket/run/embeddings/lang={lang}"
        npys = tuple(f"{root}/shard-{i:05d}.npy" for i in range(shards))
        parquets = tuple(f"{root}/shard-{i:05d}.parquet" for i in range(shards))
        return ShardLayout(lang, npys, parquets, tuple(range(0, 1000 * (shards + 1), 1000)), 768)

    shard = {"number": 0, "start": 0, "stop": 6, "path": "x/shard-00000.faiss", "bytes": 1}
    srcs = ["de", "fr", "es", "it", "nl", "pt", "pl", "cs", "sv", "da", "fi", "ru", "uk", "zh"]
    srcs += ["ja", "ko"]
    metas = {lang: {"spec": {}, "shards": [shard]} for lang in [*srcs, "en"]}
    config = {"k": 4, "candidates": 32, "margin": "ratio", "mode": "max"}

    def job(n, shards):
        en = layout("en", shards)
        pairs = [
            PairContext(f"{s}-en", s, "en", {s: layout(s, shards), "en": en}, f"gs://b/{s}", "m")
            for s in srcs[:n]
        ]
        return write_job(str(tmp_path), f"j{n:02d}{shards:05d}", pairs, metas=metas)

    def graph(build):
        pipeline = beam.Pipeline()
        build(pipeline)
        proto = pipeline.to_runner_api()
        return len(proto.components.transforms), len(proto.SerializeToString())

    builds = [
        lambda p, job: mine.build_search_and_selection(p, job, config, 8),
        lambda p, job: select.build_continuation(p, job, 9, 8),
        bitext.build_assembly,
    ]
    small_job, large_job = job(2, 10), job(16, 10_000)
    for build in builds:
        steps, size = graph(lambda p, build=build: build(p, small_job))
        more_steps, larger = graph(lambda p, build=build: build(p, large_job))
        assert more_steps == steps and larger < size + 1_000, (size, larger)


def test_worker_code_pickles(tmp_path):
    from indexes import faiss_index
    from pipelines import bitext, knn, select

    layouts = _layouts(tmp_path)
    spec = faiss_index.choose_spec(6, 8, "flat")
    job = "gs://b/de-en/_work/job-0.pkl"
    for fn in (
        extract.ReadDocuments(1000, False),
        extract.ExtractSentences(ExtractConfig(), None, False),
        embed.SentenceEncoderHandler("bundled", "cpu", 64, 2),
        embed.WriteShards("gs://b/out", "float16"),
        index.SampleRows(),
        index.BuildIndexShard({"de": (layouts["de"], spec, {"encoder": "e"})}, "gs://b/idx"),
        knn.SearchIndexShard(job, 4, 32),
        knn.MergeTopK(job),
        knn.ScoreCandidates("ratio", job),
        knn.BestPerQuery(job),
        select.SplitByGroup(job, "src", "pooled"),
        select.SourceSide(job, 1),
        select.TargetSide(job, 1),
        select.SaveUndecided(job, 8),
        select.SplitByGroup(job, "tgt", "by-target"),
        bitext.ScoreCuts(job),
        bitext.AttachSource(job),
        bitext.AttachTarget(job),
        bitext.WritePart(job),
    ):
        restored = pickler.loads(pickler.dumps(fn))
        assert type(restored) is type(fn) and vars(restored) == vars(fn)
