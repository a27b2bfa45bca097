"""Index choice by corpus size and hardware."""

import pytest

from indexes.faiss_index import choose_spec


def test_exact_below_the_threshold_ivfpq_above():
    assert choose_spec(99_999, 768).factory() == "Flat"
    spec = choose_spec(1_000_000, 768)
    assert (
        spec.factory() == "IVF4096,PQ384x4fsr" and spec.nprobe == 128 and spec.gpu_capable is False
    )


def test_gpu_gets_8_bit_codes_it_can_search():
    spec = choose_spec(1_000_000, 768, gpu=True)
    assert spec.factory() == "IVF4096,PQ96np" and spec.gpu_capable


def test_forced_parameters_and_nprobe_within_nlist():
    spec = choose_spec(500, 24, "ivfpq", nlist=8, pq_m=8, opq=True)
    assert spec.factory() == "OPQ8,IVF8,PQ8x4fsr" and spec.nprobe == 8
    with pytest.raises(ValueError, match="4 or 8 bits"):
        choose_spec(500, 24, "ivfpq", pq_bits=6)
    with pytest.raises(ValueError, match="unknown index type"):
        choose_spec(500, 24, "hnsw")
    with pytest.raises(ValueError, match="--pq-m 7 does not divide .* 768 .* 96, 192, 384, 768$"):
        choose_spec(500, 768, "ivfpq", pq_m=7)  # faiss would fail in a worker, in C++


def test_a_loaded_shard_must_hold_what_its_record_says():
    import numpy as np

    from indexes.faiss_index import IndexSpec, build_index
    from indexes.shards import IndexShardError, check_loaded, plan_shards

    index = build_index(np.eye(3, 8, dtype=np.float32), IndexSpec("flat", 8))
    check_loaded(index, "en/shard-00000.faiss", 3, 8)
    with pytest.raises(IndexShardError, match="shard-00000.faiss: holds 3 vectors of 8 dim"):
        check_loaded(index, "en/shard-00000.faiss", 4, 8)
    assert plan_shards(5, 2) == [(0, 0, 2), (1, 2, 4), (2, 4, 5)]
    assert plan_shards(0, 2) == [(0, 0, 0)]


def test_errors_raised_in_workers_reach_the_user_in_one_line(capsys):
    from pipelines.cli import _run_guarded

    def wrapped_by_a_runner():
        raise RuntimeError(
            "Error in stage\nTraceback ...\nindexes.shards.IndexShardError: en/shard-1.faiss: "
            "holds 3 vectors of 8 dimensions, expected 4 of 8\n more runner text"
        )

    with pytest.raises(SystemExit) as exit_info:
        _run_guarded(wrapped_by_a_runner)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "ccmine: bad index: en/shard-1.faiss: holds 3 vectors of 8 dimensions, expected 4 of 8\n"
    )
