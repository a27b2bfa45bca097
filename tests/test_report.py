"""The run report's pairs table."""

from pipelines.report import _pairs_table


def _mined(seconds: float) -> dict:
    return {
        "src_sentences": 4918,
        "tgt_sentences": 4206,
        "candidates": 3868,
        "kept": 3611,
        "threshold": 1.0167,
        "seconds": seconds,
    }


def test_pairs_table_rounds_seconds_alike_and_names_pairs_not_mined():
    kept = {"de": 4918, "zh": 6200, "fr": 4206, "ja": 10}
    mined = {"de-fr": _mined(5.7), "zh-fr": _mined(5.708), "ja-fr": {}, "th-fr": {}}
    pairs = [("de", "fr"), ("zh", "fr"), ("ja", "fr"), ("th", "fr")]
    rows = [line for line in _pairs_table(pairs, kept, mined) if line.startswith("| ")]
    assert rows[1:] == [
        "| de-fr | 4,918 | 4,206 | 3,868 | 3,611 | 1.0167 | 5.7 |",
        "| zh-fr | 4,918 | 4,206 | 3,868 | 3,611 | 1.0167 | 5.7 |",
        "| ja-fr | 10 | | | no bitext yet | | |",
        "| th-fr | 0 | | | not mined | | |",
    ]


def test_pairs_table_shows_a_mined_pair_of_a_run_without_sentence_counts():
    """Embeddings dropped in by hand: no extract stage, so no sentences were counted."""
    rows = _pairs_table([("de", "fr")], {}, {"de-fr": _mined(1.0)})
    assert "| de-fr | 4,918 | 4,206 | 3,868 | 3,611 | 1.0167 | 1.0 |" in rows
