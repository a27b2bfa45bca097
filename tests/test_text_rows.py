"""Rows joined with one take from a pool, and numbers written through digit tables."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mining import text_rows
from mining.text_rows import Number, lines, number_pieces


def joined(buffers) -> str:
    return b"".join(bytes(b) for b in buffers).decode()


def arrow_text(values, null=""):
    """What Arrow's cast writes for values rounded to 6 decimals (the format number_pieces
    keeps)."""
    column = pa.array(values, pa.float64())
    text = pc.cast(pc.round(column, 6), pa.string()).to_pylist()
    return [null if t is None else t for t in text]


def test_rows_join_constants_columns_and_nulls():
    src = pa.array(["Größe", "", None, "a\tb"])
    tgt = pa.array(["size", "empty", "null", "x"])
    text = joined(lines("<", src, "|", tgt, ">"))
    assert text == "<Größe|size>\n<|empty>\n<|null>\n<a\tb|x>\n"


def test_a_column_holding_one_text_becomes_a_constant():
    lang = pa.array(["de"] * 5)
    words = pa.array(["a", "bb", "ccc", "dd", "e"])
    assert text_rows._constant_text(lang) == "de"
    assert text_rows._constant_text(pa.array(["ab", "ab", "ba"])) is None  # same byte count
    assert joined(lines(lang, ":", words)) == "".join(f"de:{w}\n" for w in words.to_pylist())
    assert joined(lines(lang, "!")) == "de!\n" * 5


def test_dictionary_columns_are_picked_from_their_dictionary():
    urls = pa.array(["http://a/1", None, "http://b/2", "http://a/1", "http://b/2"])
    words = pa.array(["a", "bb", "ccc", "dd", "e"])
    lang = pa.array(["de"] * 5)
    dense = joined(lines(lang, ":", words, " ", urls))
    assert dense.splitlines()[:2] == ["de:a http://a/1", "de:bb "]
    encoded = pc.dictionary_encode(urls)  # the null in the indices
    assert joined(lines(pc.dictionary_encode(lang), ":", words, " ", encoded)) == dense
    constant, with_null = text_rows._merged([pc.dictionary_encode(lang), encoded])
    assert constant == "de" and with_null.to_pylist()[:2] == ["http://a/1", ""]
    unused = pa.DictionaryArray.from_arrays(pa.array([2, 0, 2], pa.int32()), ["x", "y", "z"])
    (picks,) = text_rows._merged([unused])
    assert isinstance(picks, text_rows.Picks) and picks.rows.tolist() == [2, 0, 2]
    assert joined(lines(unused)) == "z\nx\nz\n"
    one_used = pa.DictionaryArray.from_arrays(pa.array([1, 1], pa.int32()), ["x", "y"])
    assert text_rows._merged([one_used, "!"]) == ["y!"]


def test_rows_taken_in_several_pieces_and_as_large_strings(monkeypatch):
    rng = np.random.default_rng(1)
    words = [
        " ".join(rng.choice(["ein", "Wort", "über", "x"], rng.integers(0, 6))) for _ in range(1000)
    ]
    column = pa.array(words)
    expected = "".join(f"[{w}]\n" for w in words)
    assert joined(lines("[", column, "]")) == expected
    monkeypatch.setattr(text_rows, "TAKE_ROWS", 7)
    assert joined(lines("[", column, "]")) == expected
    monkeypatch.setattr(text_rows, "_STRING_LIMIT", 100)
    pool, _index = text_rows._pool_and_index(text_rows._merged(["[", column, "]\n"]), 1000)
    assert pool.type == pa.large_string()
    assert joined(lines("[", column, "]")) == expected


def test_numbers_are_written_as_arrow_writes_them_rounded():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.uniform(-3, 3, 20_000),
            rng.uniform(-9.9999, 9.9999, 5_000),
            rng.integers(-2_000_000, 2_000_000, 5_000) / 1e6,  # exactly six decimals
            (rng.integers(-2_000_000, 2_000_000, 5_000) + 0.5) / 1e6,  # ties
            [0.0, -0.0, 2.0, -2.0, 1e-7, -1e-7, 5e-7, 0.1, 0.3, 1.3, 9.999999, -9.999999],
        ]
    )
    for dtype in (pa.float32(), pa.float64()):
        column = pa.array(values, dtype)
        pieces = number_pieces(column, before="s=")
        assert len(pieces) == 2  # digit tables, not the cast
        expected = [f"s={t}\n" for t in arrow_text(column.cast(pa.float64()).to_pylist())]
        assert joined(lines(*pieces)).splitlines(keepends=True) == expected


def test_numbers_beyond_the_tables_nan_and_nulls_go_through_the_cast():
    column = pa.array([1.5, 1000.0, float("nan"), None, -1e20, 10.0], pa.float64())
    pieces = number_pieces(column, before="v=", null="null")
    assert not any(isinstance(p, text_rows.Picks) for p in pieces)
    expected = "".join(f"v={t}\n" for t in arrow_text(column.to_pylist(), null="null"))
    assert joined(lines(*pieces)) == expected
    assert expected.splitlines()[:4] == ["v=1.5", "v=1000", "v=nan", "v=null"]


def test_numbers_take_the_text_around_them_into_their_tables():
    """The text on both sides of a Number goes into its digit tables (two pieces a row for
    `{a,b}`), also when another Number or the cast's path is beside it."""
    a = pa.array([0.5, -1.25, None], pa.float32())
    b = pa.array([2.0, 0.125, 3.0])
    assert joined(lines("{", Number(a, null="null"), ",", Number(b), "}")) == (
        "{0.5,2}\n{-1.25,0.125}\n{null,3}\n"
    )
    assert len(text_rows._numbers_placed(["{", Number(b), ",", Number(b), "}\n"])) == 4
    c = pa.array([float("nan"), 1e12, 7.0])
    assert joined(lines("[", Number(b), "|", Number(c), "]")) == "[2|nan]\n[0.125|1e+12]\n[3|7]\n"


@pytest.mark.parametrize("limit", [1, 100])
def test_table_limit_decides_the_path(monkeypatch, limit):
    monkeypatch.setattr(text_rows, "INTEGER_LIMIT", limit)
    text_rows._number_heads.cache_clear()
    try:
        column = pa.array([0.25, -12.5, 99.000001])
        pieces = number_pieces(column)
        assert any(isinstance(p, text_rows.Picks) for p in pieces) == (limit == 100)
        assert joined(lines(*pieces)) == "0.25\n-12.5\n99.000001\n"
    finally:
        text_rows._number_heads.cache_clear()
