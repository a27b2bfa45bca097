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
