"""`ccmine export`: every format read back with the library its users would use; filters,
repairs and counts; `ccmine nmt` reads the exports; the dataset card's recipes run as written."""

import csv
import gzip
import io
import json
import re
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems
from click.testing import CliRunner
from lxml import etree

from mining import __version__, bitext_export, bitext_formats
from mining.bitext_export import ExportFilters, export
from mining.bitext_readers import UnreadableBitext
from nmt_eval.data import load_pairs
from pipelines.bitext import BITEXT_SCHEMA
from pipelines.cli import cli
from tests.gcs_emulator import download, gcs_bucket

# (src, tgt, score, cosine): best first, as ccmine writes them; text that breaks formats.
PAIRS = [
    ("Hallo Welt!", "Hello world!", 1.30, 0.91),
    ("Zeile eins\nZeile zwei", "line one\u2028line two", 1.25, 0.88),
    ("Spalte\tA <b> & \x01Steuer", "column\tA <b> & control\x0b", 1.20, 0.87),
    ("hallo, welt", "Hi world", 1.15, 0.86),  # the first source, normalised: a duplicate
    ("Hallo Welt!", "Hello world!", 1.10, 0.85),  # the first pair again
    ("Ja.", "The minister resigned after a long debate in parliament.", 1.05, 0.62),
]
# TMX 1.4 structure (LISA's tmx14.dtd, the elements and attributes ccmine writes).
TMX_DTD = """
<!ELEMENT tmx (header, body)>
<!ATTLIST tmx version CDATA #FIXED "1.4">
<!ELEMENT header EMPTY>
<!ATTLIST header creationtool CDATA #REQUIRED creationtoolversion CDATA #REQUIRED
  segtype (block|paragraph|sentence|phrase) #REQUIRED o-tmf CDATA #REQUIRED
  adminlang CDATA #REQUIRED srclang CDATA #REQUIRED datatype CDATA #REQUIRED>
<!ELEMENT body (tu*)>
<!ELEMENT tu ((note|prop)*, tuv+)>
<!ELEMENT prop (#PCDATA)>
<!ATTLIST prop type CDATA #REQUIRED>
<!ELEMENT note (#PCDATA)>
<!ELEMENT tuv ((note|prop)*, seg)>
<!ATTLIST tuv xml:lang CDATA #REQUIRED>
<!ELEMENT seg (#PCDATA)>
"""


def write_parts(directory, pairs, rows_per_part=4, src="de", tgt="en"):
    directory.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "src_lang": src,
            "tgt_lang": tgt,
            "src_text": s,
            "tgt_text": t,
            "score": score,
            "cosine": cos,
            "src_url": f"http://{src}.example/{i}",
            "tgt_url": f"http://{tgt}.example/{i}",
            "src_hash": i,
            "tgt_hash": 1000 + i,
        }
        for i, (s, t, score, cos) in enumerate(pairs)
    ]
    for part, start in enumerate(range(0, len(rows), rows_per_part)):
        table = pa.Table.from_pylist(rows[start : start + rows_per_part], BITEXT_SCHEMA)
        pq.write_table(table, directory / f"part-{part:05d}.parquet")
    return directory


@pytest.fixture
def bitext(tmp_path):
    return write_parts(tmp_path / "run" / "bitext" / "de-en", PAIRS)


def one_line(text):
    return re.sub(r"[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]", " ", text)


def test_moses_files_are_line_aligned_and_round_trip(bitext, tmp_path):
    counts = export(str(bitext), "moses", str(tmp_path / "corpus.gz"))
    de = gzip.open(tmp_path / "corpus.de.gz", "rt", encoding="utf-8").read().split("\n")[:-1]
    en = gzip.open(tmp_path / "corpus.en.gz", "rt", encoding="utf-8").read().split("\n")[:-1]
    assert len(de) == len(en) == len(PAIRS) == counts["kept"] == counts["read"]
    assert list(zip(de, en, strict=True)) == [(one_line(s), one_line(t)) for s, t, *_ in PAIRS]
    assert counts["repaired"] == {"line_breaks_replaced": 3}  # rows 1 (x2: both sides) and 2
    assert counts["written"] == [str(tmp_path / "corpus.de.gz"), str(tmp_path / "corpus.en.gz")]


def test_tsv_reads_back_with_csv(bitext, tmp_path):
    columns = ["score", "cosine", "src_url", "tgt_url"]
    counts = export(str(bitext), "tsv", str(tmp_path / "pairs.tsv"), columns=columns)
    with open(tmp_path / "pairs.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [len(r) for r in rows] == [6] * len(PAIRS)
    expected = [one_line(s).replace("\t", " ") for s, *_ in PAIRS]
    assert [r[0] for r in rows] == expected
    assert [float(r[2]) for r in rows] == pytest.approx([p[2] for p in PAIRS], abs=1e-6)
    assert rows[0][4] == "http://de.example/0"
    assert counts["repaired"]["tabs_replaced"] == 2


def test_jsonl_keeps_every_column(bitext, tmp_path):
    export(str(bitext), "jsonl", str(tmp_path / "pairs.jsonl"))
    rows = [json.loads(line) for line in open(tmp_path / "pairs.jsonl", encoding="utf-8")]
    assert [(r["src_text"], r["tgt_text"]) for r in rows] == [(s, t) for s, t, *_ in PAIRS]
    assert set(rows[0]) == set(BITEXT_SCHEMA.names) and rows[0]["tgt_hash"] == 1000
    assert rows[2]["score"] == pytest.approx(1.2, abs=1e-6)


def test_jsonl_writes_missing_numbers_as_null(tmp_path):
    """Bitext written by another tool may hold nulls; each pair still gets its line."""
    table = pa.table(
        {
            "src_lang": ["de", "de"],
            "tgt_lang": ["en", "en"],
            "src_text": ["Ja.", "Nein."],
            "tgt_text": ["Yes.", "No."],
            "score": pa.array([1.25, None], pa.float32()),
            "src_hash": pa.array([None, 7], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "pairs.parquet")
    export(str(tmp_path / "pairs.parquet"), "jsonl", str(tmp_path / "pairs.jsonl"))
    rows = [json.loads(line) for line in open(tmp_path / "pairs.jsonl", encoding="utf-8")]
    assert [(r["src_text"], r["score"], r["src_hash"]) for r in rows] == [
        ("Ja.", 1.25, None),
        ("Nein.", None, 7),
    ]


def test_jsonl_reads_repeated_urls_as_dictionaries_and_writes_the_same_lines(tmp_path, monkeypatch):
    """Mined pairs come from few documents, so Parquet stores their URLs (and languages) as
    dictionaries; jsonl reads those columns as dictionaries and escapes each URL once. A URL
    column that no longer fits a dictionary page (stored plain) is read as plain strings."""
    urls = ['http://de.example/"q"', "http://de.example/back\\slash", "http://de.example/\x01"]
    rows = [
        {
            "src_lang": "de",
            "tgt_lang": "en",
            "src_text": f"Satz {i}",
            "tgt_text": f"Sentence {i}",
            "score": 1.0,
            "cosine": 0.9,
            "src_url": None if i == 7 else urls[i % len(urls)],
            "tgt_url": f"http://en.example/{i % 40}",
            "src_hash": i,
            "tgt_hash": i,
        }
        for i in range(3000)
    ]
    table = pa.Table.from_pylist(rows, BITEXT_SCHEMA)
    pq.write_table(table, tmp_path / "a.parquet")
    pq.write_table(table, tmp_path / "b.parquet", dictionary_pagesize_limit=100)
    encoded = {
        name: bitext_export._dictionary_encoded(pq.read_metadata(tmp_path / f"{name}.parquet"))
        for name in ("a", "b")
    }
    assert encoded["a"] == ["src_lang", "tgt_lang", "src_url", "tgt_url"]
    # With a 100-byte dictionary page, the 40 target URLs overflow it and are stored plain.
    assert encoded["b"] == ["src_lang", "tgt_lang", "src_url"]
    written = {}
    for name in ("a", "b"):
        export(str(tmp_path / f"{name}.parquet"), "jsonl", str(tmp_path / f"{name}.jsonl"))
        written[name] = (tmp_path / f"{name}.jsonl").read_bytes()
    monkeypatch.setattr(bitext_export, "_dictionary_encoded", lambda metadata: [])
    export(str(tmp_path / "a.parquet"), "jsonl", str(tmp_path / "dense.jsonl"))
    assert written["a"] == written["b"] == (tmp_path / "dense.jsonl").read_bytes()
    read = [json.loads(line) for line in written["a"].decode().splitlines()]
    assert [r["src_url"] for r in read] == [r["src_url"] or "" for r in rows]
    assert [r["tgt_url"] for r in read] == [r["tgt_url"] for r in rows]


def test_tmx_is_valid_tmx_1_4(bitext, tmp_path):
    counts = export(str(bitext), "tmx", str(tmp_path / "pairs.tmx"), version=__version__)
    document = etree.parse(str(tmp_path / "pairs.tmx"))
    dtd = etree.DTD(io.StringIO(TMX_DTD))
    assert dtd.validate(document), dtd.error_log.filter_from_errors()
    header = document.find("header")
    assert header.get("srclang") == "de" and header.get("creationtoolversion") == __version__
    units = document.findall("body/tu")
    assert len(units) == len(PAIRS)
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    first = {tuv.get(lang): tuv.findtext("seg") for tuv in units[0].findall("tuv")}
    assert first == {"de": "Hallo Welt!", "en": "Hello world!"}
    assert units[0].findtext("prop[@type='score']") == "1.3"
    third = {tuv.get(lang): tuv.findtext("seg") for tuv in units[2].findall("tuv")}
    assert third["de"] == "Spalte\tA <b> & Steuer"  # escaped on the way out, control removed
    assert counts["repaired"]["xml_invalid_removed"] == 2


def test_hf_parquet_and_jsonl_load_as_translation_datasets(bitext, tmp_path):
    from datasets import Translation, load_dataset

    export(str(bitext), "hf", str(tmp_path / "hf.parquet"))
    data = load_dataset("parquet", data_files=str(tmp_path / "hf.parquet"), split="train")
    assert data.features["translation"] == Translation(languages=["de", "en"])
    assert data[0]["translation"] == {"de": "Hallo Welt!", "en": "Hello world!"}
    assert len(data) == len(PAIRS) and data[0]["score"] == pytest.approx(1.3)
    group = pq.read_metadata(tmp_path / "hf.parquet").row_group(0)
    statistics = {group.column(i).path_in_schema: group.column(i).statistics for i in range(4)}
    assert statistics["score"].max == pytest.approx(1.3)  # for readers that filter on it
    assert statistics["translation.de"] is None

    export(str(bitext), "hf", str(tmp_path / "hf.jsonl.gz"))
    data = load_dataset("json", data_files=str(tmp_path / "hf.jsonl.gz"), split="train")
    assert [r["translation"]["en"] for r in data] == [t for _, t, *_ in PAIRS]


def test_filters_drop_and_count_by_reason(bitext, tmp_path):
    out = str(tmp_path / "f.jsonl")
    counts = export(str(bitext), "jsonl", out, ExportFilters(min_score=1.12, min_cosine=0.87))
    assert counts["dropped"] == {
        "below_min_score": 2,
        "below_min_cosine": 1,
        "length_ratio": 0,
        "duplicate": 0,
    }
    counts = export(str(bitext), "jsonl", out, ExportFilters(max_length_ratio=3.0))
    assert counts["dropped"]["length_ratio"] == 1  # "Ja." against a long sentence
    counts = export(str(bitext), "jsonl", out, ExportFilters(dedup="src"))
    kept = [json.loads(line)["src_text"] for line in open(out, encoding="utf-8")]
    assert counts["dropped"]["duplicate"] == 2 and kept.count("Hallo Welt!") == 1
    assert "hallo, welt" not in kept  # same source up to case and punctuation: the best stays
    counts = export(str(bitext), "jsonl", out, ExportFilters(dedup="pair"))
    assert counts["dropped"]["duplicate"] == 1 and counts["kept"] == len(PAIRS) - 1


def test_length_ratio_counts_chinese_characters_as_three(tmp_path):
    pairs = [("我喜欢猫。", "I like cats.", 1.2, 0.9), ("是。", "Yes, it is what it is.", 1.1, 0.9)]
    bitext = write_parts(tmp_path / "zh-en", pairs, src="zh")
    counts = export(str(bitext), "moses", str(tmp_path / "c"), ExportFilters(max_length_ratio=2.0))
    assert counts["kept"] == 1  # 4 Han x 3 + 1 against 12 passes; 2 x 3 + 1 against 22 does not
    assert (tmp_path / "c.zh").read_text(encoding="utf-8") == "我喜欢猫。\n"


def test_dedup_needs_score_order(tmp_path):
    bitext = write_parts(tmp_path / "de-en", [PAIRS[3], PAIRS[0]])
    with pytest.raises(ValueError, match="needs bitext in score order"):
        export(str(bitext), "tsv", str(tmp_path / "x.tsv"), ExportFilters(dedup="src"))


def test_export_cli_reports_counts(bitext, tmp_path):
    args = ["export", "--bitext", str(bitext), "--format", "tsv", "--out", str(tmp_path / "x.tsv")]
    result = CliRunner().invoke(cli, [*args, "--dedup", "pair", "--columns", "score"])
    assert result.exit_code == 0, result.output
    assert "duplicate" in result.output and f"written: {tmp_path / 'x.tsv'}" in result.output
    tmx = ["export", "--bitext", str(bitext), "--format", "tmx", "--out", "x", "--columns", "score"]
    result = CliRunner().invoke(cli, tmx)
    assert result.exit_code == 2 and "--columns is for --format tsv" in result.output
    nothing = ["export", "--bitext", str(tmp_path), "--format", "tsv", "--out", "x"]
    result = CliRunner().invoke(cli, nothing)
    assert result.exit_code == 2 and "no bitext parts" in result.stderr
    unknown = ["export", "--bitext", str(bitext), "--format", "tsv", "--out", "x"]
    result = CliRunner().invoke(cli, [*unknown, "--columns", "score,scroe"])
    assert result.exit_code == 2
    assert "no column scroe in the bitext; it has src_lang, tgt_lang, src_text" in result.stderr
    into_dir = ["export", "--bitext", str(bitext), "--format", "tsv", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, into_dir)
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"ccmine: error: {tmp_path} is a directory; --out names a file (moses: a prefix)\n"
    )
    assert not (tmp_path.parent / f"{tmp_path.name}.incomplete").exists()


def test_export_to_standard_output_writes_what_a_file_would_hold(bitext, tmp_path, monkeypatch):
    """--out -: the pairs alone on stdout (the counts go to stderr), for piping into other
    tools; the formats of several files or of Parquet are refused (before: a file named "-")."""
    monkeypatch.chdir(tmp_path)
    for fmt in ("tsv", "jsonl", "tmx"):
        export(str(bitext), fmt, str(tmp_path / f"pairs.{fmt}"), version=__version__)
        args = ["export", "--bitext", str(bitext), "--format", fmt]
        result = CliRunner().invoke(cli, [*args, "--out", "-"])
        assert result.exit_code == 0, result.output
        assert result.stdout_bytes == (tmp_path / f"pairs.{fmt}").read_bytes()
        assert f"export {fmt}" in result.stderr and "written:" not in result.output
    for fmt in ("moses", "hf"):
        result = CliRunner().invoke(cli, [*args[:-1], fmt, "--out", "-"])
        assert result.exit_code == 2
        assert f"ccmine: error: {fmt} is not written to standard output (--out -); tsv, " in (
            result.stderr
        )
    assert not (tmp_path / "-").exists() and not (tmp_path / "-.incomplete").exists()


def test_export_reads_and_writes_gs_paths_through_beam(bitext, tmp_path, monkeypatch):
    """Bitext on Google Cloud Storage (an emulator on loopback) exports to Cloud Storage: every
    format writes the same bytes as from and to local files, and the CLI takes gs:// paths."""
    with gcs_bucket(monkeypatch) as root:
        remote = f"{root}/run/bitext/de-en"
        for part in sorted(bitext.glob("part-*.parquet")):
            with FileSystems.create(f"{remote}/{part.name}") as out:
                out.write(part.read_bytes())
        names = {"moses": "c.gz", "tsv": "c.tsv", "jsonl": "c.jsonl.gz", "tmx": "c", "hf": "c.pq"}
        for fmt, name in names.items():
            here = export(str(bitext), fmt, str(tmp_path / fmt / name), ExportFilters(dedup="src"))
            there = export(remote, fmt, f"{root}/out/{fmt}/{name}", ExportFilters(dedup="src"))
            assert there["dropped"] == here["dropped"] and there["kept"] == here["kept"] == 4
            assert there["written"] == [
                p.replace(str(tmp_path), f"{root}/out") for p in here["written"]
            ]
            for local, stored in zip(here["written"], there["written"], strict=True):
                assert download(stored) == open(local, "rb").read(), stored
        args = ["export", "--bitext", remote, "--format", "jsonl", "--out", f"{root}/cli.jsonl"]
        result = CliRunner().invoke(cli, [*args, "--min-score", "1.12"])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in download(f"{root}/cli.jsonl").splitlines()]
        assert [r["score"] for r in rows] == pytest.approx([1.30, 1.25, 1.20, 1.15], abs=1e-6)


def test_nmt_trains_from_every_export_that_names_its_languages(bitext, tmp_path):
    expected = [(t.strip(), s.strip()) for s, t, *_ in PAIRS]
    exports = {
        "moses": tmp_path / "c",
        "jsonl": tmp_path / "c.jsonl.gz",
        "tmx": tmp_path / "c.tmx",
        "hf": tmp_path / "c.parquet",
    }
    for fmt, out in exports.items():
        export(str(bitext), fmt, str(out))
        en, de, counts = load_pairs(str(out), "en", "de", min_score=1.12)
        kept = [(a, b) for (a, b), p in zip(expected, PAIRS, strict=True) if p[2] >= 1.12]
        if fmt == "moses":  # no scores: nothing to filter on
            assert counts["read"] == counts["kept"] == len(PAIRS)
            continue
        assert len(en) == len(kept) and counts["below_min_score"] == 2, fmt
        assert (en[0], de[0]) == ("Hello world!", "Hallo Welt!"), fmt
    export(str(bitext), "tsv", str(tmp_path / "c.tsv"))
    with pytest.raises(UnreadableBitext, match="TSV does not say which column"):
        load_pairs(str(tmp_path / "c.tsv"), "en", "de")


def damage_second_row_group(part):
    """Rewrite a part in row groups of 4 rows and garble the first page header of the second
    group's src_text (a deterministic error; garbled Snappy data can decode to wrong text)."""
    pq.write_table(pq.read_table(part), part, row_group_size=4)
    metadata = pq.read_metadata(part)
    chunk = metadata.row_group(1).column(BITEXT_SCHEMA.get_field_index("src_text"))
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(part.read_bytes())
    data[start : start + 8] = b"\xff" * 8
    part.write_bytes(bytes(data))


def test_a_damaged_part_stops_the_export_naming_it_and_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setattr(bitext_export, "BATCH_ROWS", 4)
    bitext = write_parts(tmp_path / "de-en", PAIRS, rows_per_part=6)
    damage_second_row_group(bitext / "part-00000.parquet")
    out = tmp_path / "out.jsonl"
    with pytest.raises(UnreadableBitext, match=r"part-00000.parquet: unreadable from row 4 on: "):
        export(str(bitext), "jsonl", str(out))
    assert list(tmp_path.iterdir()) == [bitext]  # the 4 rows written were deleted

    bitext = write_parts(tmp_path / "cut" / "de-en", PAIRS, rows_per_part=4)
    second = bitext / "part-00001.parquet"
    second.write_bytes(second.read_bytes()[:-100])
    args = ["export", "--bitext", str(bitext), "--format", "moses", "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{second}: unreadable from row 0 on: " in result.stderr
    assert not list(tmp_path.glob("m.*"))


def test_a_local_export_appears_only_when_complete(bitext, tmp_path, monkeypatch):
    monkeypatch.setattr(bitext_export, "BATCH_ROWS", 2)
    out = tmp_path / "out" / "corpus.gz"
    staging = tmp_path / "out" / "corpus.gz.incomplete"
    staging.mkdir(parents=True)
    (staging / "corpus.de.gz").write_bytes(b"left by a killed export")
    seen = []

    def progress(rows):  # called after each batch is read
        seen.append({str(p.relative_to(out.parent)) for p in out.parent.rglob("*")})

    counts = export(str(bitext), "moses", str(out), progress=progress)
    assert len(seen) == 3  # three batches of two pairs
    for names in seen:
        assert "corpus.gz.incomplete/corpus.de.gz" in names and "corpus.de.gz" not in names
    assert sorted(p.name for p in out.parent.iterdir()) == ["corpus.de.gz", "corpus.en.gz"]
    assert counts["written"] == [str(out.parent / "corpus.de.gz"), str(out.parent / "corpus.en.gz")]
    with gzip.open(out.parent / "corpus.de.gz", "rt") as lines:
        assert len(lines.readlines()) == len(PAIRS)


def test_nmt_names_the_file_and_line_of_damaged_bitext(bitext, tmp_path):
    def damaged(name, content: bytes):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UnreadableBitext) as error:
            load_pairs(str(path).removesuffix(".de"), "de", "en")
        return str(error.value)

    good = b'{"translation": {"de": "Hallo", "en": "Hello"}}\n'
    assert damaged("a.jsonl", good + b'{"translation": {"de": "x"\n').startswith(
        f"{tmp_path / 'a.jsonl'}:2: not JSON"
    )
    assert damaged("b.jsonl", good + good.replace(b'"en"', b'"fr"')).startswith(
        f"{tmp_path / 'b.jsonl'}:2: not a pair"
    )
    assert damaged("c.jsonl", good + b"\n" + good + b"[1, 2]\n").startswith(
        f"{tmp_path / 'c.jsonl'}:4: not a pair"  # blank line 2 skipped, still numbered
    )
    cut = gzip.compress(good * 1000)[:-40]
    assert "d.jsonl.gz: unreadable after line" in damaged("d.jsonl.gz", cut)
    (tmp_path / "m.en").write_bytes(b"One\nTwo\nThree\n")
    assert damaged("m.de", b"Eins\nZwei\n") == (
        f"{tmp_path / 'm.de'} ends after line 2 but {tmp_path / 'm.en'} goes on: not line-aligned"
    )
    assert (
        damaged("m.de", b"Eins\nZw\xffei\nDrei\n")
        == f"{tmp_path / 'm.de'}:2: not UTF-8 (invalid start byte)"
    )
    export(str(bitext), "tmx", str(tmp_path / "whole.tmx"))
    tmx = (tmp_path / "whole.tmx").read_bytes()
    message = damaged("cut.tmx", tmx[:-30])
    assert re.fullmatch(r".*cut\.tmx: not well-formed XML: .*: line \d+, column \d+", message)
    bad_score = tmx.replace(b'<prop type="score">1.25<', b'<prop type="score">high<')
    assert (
        damaged("score.tmx", bad_score)
        == f"{tmp_path / 'score.tmx'}: tu 2: score 'high' is not a number"
    )
    # A prop other than score and cosine, as other tools write, is not read as a number.
    other = tmx.replace(b"<tu>\n", b'<tu>\n      <prop type="x-origin">OPUS</prop>\n')
    (tmp_path / "other.tmx").write_bytes(other)
    assert load_pairs(str(tmp_path / "other.tmx"), "de", "en")[2]["read"] == len(PAIRS)

    hf = tmp_path / "hf.parquet"
    export(str(bitext), "hf", str(hf))
    with pytest.raises(UnreadableBitext, match="translations in de, en, not de and fr"):
        load_pairs(str(hf), "de", "fr")
    (tmp_path / "t.de").write_text("Eins.\n")
    (tmp_path / "t.en").write_text("One.\n")
    args = ["--pair", "de-en", "--test-src", str(tmp_path / "t.de"), "--out", str(tmp_path / "o")]
    args += ["--test-ref", str(tmp_path / "t.en")]
    damaged_part = write_parts(tmp_path / "damaged" / "de-en", PAIRS, rows_per_part=6)
    damage_second_row_group(damaged_part / "part-00000.parquet")
    result = CliRunner().invoke(cli, ["nmt", *args, "--bitext", str(damaged_part)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"ccmine: bad bitext: {damaged_part / 'part-00000.parquet'}: not readable as Parquet: "
    ), result.stderr
    assert result.stderr.count("\n") == 1


def test_version_everywhere(tmp_path):
    result = CliRunner().invoke(cli, ["--version"])
    assert result.output.strip() == f"ccmine, version {__version__}"
    from pipelines.stage_dir import StageWriter, read_marker

    StageWriter(str(tmp_path), "x").commit({}, {})
    assert read_marker(str(tmp_path), "x")["ccmine_version"] == __version__


@pytest.mark.slow
def test_mine_writes_a_dataset_card_whose_recipes_run(tmp_path):
    import duckdb
    from datasets import load_dataset

    from pipelines import index, mine
    from tests.synthetic_run import planted, write_embeddings

    de, en = planted(np.random.default_rng(0), 300, 500, 200, 24)
    write_embeddings(tmp_path, {"de": de, "en": en}, {"de": 120, "en": 200})
    index.run(str(tmp_path), ["de", "en"], {})
    stats = mine.run(str(tmp_path), "de", "en", threshold=1.05, min_cosine=0.2)
    bitext_dir = tmp_path / "bitext" / "de-en"
    card = (bitext_dir / "README.md").read_text()
    assert "- Threshold 1.05 (given); score ceiling none; cosine floor 0.2 (given)" in card
    assert f"{stats['kept']:,} sentence pairs" in card and f"ccmine {__version__}" in card
    assert "Margin `ratio`, mode `max`" in card and "dropped: below_threshold" in card
    assert "keep the licence and terms of those pages" in card
    query = card.split("```sql\n")[1].split("```")[0]
    rows = duckdb.sql(query).fetchall()
    assert len(rows) == 5 and rows[0][2] == pytest.approx(max(r[2] for r in rows))
    recipe = card.split("```python\n")[1].split("```")[0]
    scope = {}
    exec(recipe, scope)  # the pyarrow recipe, as written
    scores = scope["table"]["score"].to_pylist()
    assert len(scores) == stats["kept"] and scores == sorted(scores, reverse=True)
    data = load_dataset(str(bitext_dir), split="train")  # the card's YAML names the parts
    assert len(data) == stats["kept"] and data[0]["score"] == pytest.approx(rows[0][2])
    assert read_marker_version(tmp_path) == __version__


def read_marker_version(run_dir):
    from pipelines.stage_dir import read_marker

    return read_marker(str(run_dir / "bitext"), "de-en")["ccmine_version"]


def test_batches_render_on_threads_but_are_written_in_order_with_few_in_flight():
    import time

    from mining.bitext_export import _rendered_in_order

    pulled, in_flight, threads_seen = [0], [], set()

    def batches():
        for i in range(60):
            pulled[0] += 1
            yield i

    def render(i):
        threads_seen.add(threading.get_ident())
        time.sleep(0.002 * ((i * 7) % 5))  # later batches often finish first
        return i

    out = []
    for value in _rendered_in_order(render, batches(), threads=2):
        in_flight.append(pulled[0] - len(out))
        out.append(value)
    assert out == list(range(60))
    assert len(threads_seen) == 2 and max(in_flight) <= 2 * 2 + 1


def test_emits_run_in_order_on_one_writer_thread_with_a_bounded_queue():
    import time

    from mining.bitext_export import _emit_in_order

    pulled, queued, threads_seen, written = [0], [], set(), []

    def items():
        for i in range(40):
            pulled[0] += 1
            queued.append(pulled[0] - len(written))
            yield i

    def emit(i):
        threads_seen.add(threading.get_ident())
        time.sleep(0.001 * (i % 3))
        written.append(i)

    _emit_in_order(emit, items(), waiting=2)
    assert written == list(range(40))
    assert threads_seen and threading.get_ident() not in threads_seen and len(threads_seen) == 1
    assert max(queued) <= 2 + 2  # the one being written, two waiting, the one just pulled

    def failing(i):
        if i == 5:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _emit_in_order(failing, iter(range(40)))


@pytest.fixture
def many_parts(tmp_path):
    """(bitext of 300 pairs in 43 parts, its pairs)."""
    pairs = [(f"Satz {i}.", f"Sentence {i}.", 2.0 - i / 1000, 0.9) for i in range(300)]
    return write_parts(tmp_path / "bitext" / "de-en", pairs, rows_per_part=7), pairs


def test_many_batches_export_in_order(many_parts, tmp_path):
    bitext, pairs = many_parts
    export(str(bitext), "tsv", str(tmp_path / "out.tsv"))
    rows = list(csv.reader(open(tmp_path / "out.tsv", encoding="utf-8"), delimiter="\t"))
    assert rows == [[s, t] for s, t, *_ in pairs]


def test_hf_parquet_renders_on_the_reading_thread_and_jsonl_on_a_pool(
    many_parts, tmp_path, monkeypatch
):
    bitext, pairs = many_parts
    seen: dict = {}
    for cls in (bitext_formats.HfParquetWriter, bitext_formats.JsonlWriter):

        def render(self, batch, original=cls.render, name=cls.__name__):
            seen.setdefault(name, set()).add(threading.get_ident())
            return original(self, batch)

        monkeypatch.setattr(cls, "render", render)
    export(str(bitext), "hf", str(tmp_path / "out.parquet"))
    export(str(bitext), "jsonl", str(tmp_path / "out.jsonl"))
    assert seen["HfParquetWriter"] == {threading.get_ident()}
    assert threading.get_ident() not in seen["JsonlWriter"]
    translations = pq.read_table(tmp_path / "out.parquet").column("translation").to_pylist()
    assert translations == [{"de": s, "en": t} for s, t, *_ in pairs]


def test_non_ascii_line_breaks_are_found_without_ascii_controls_beside_them(tmp_path):
    pairs = [
        ("Größe\u2028zwei", "size\x85two", 1.2, 0.9),
        ("Straße „drei“", "street\u2029three", 1.1, 0.9),
        ("vier\ufffe", "four \u00e9", 1.0, 0.9),
    ]
    bitext = write_parts(tmp_path / "bitext" / "de-en", pairs)
    counts = export(str(bitext), "moses", str(tmp_path / "c"))
    assert (tmp_path / "c.de").read_text(encoding="utf-8").splitlines() == [
        "Größe zwei",
        "Straße „drei“",
        "vier\ufffe",
    ]
    assert (tmp_path / "c.en").read_text(encoding="utf-8").splitlines() == [
        "size two",
        "street three",
        "four é",
    ]
    assert counts["repaired"] == {"line_breaks_replaced": 3}
    counts = export(str(bitext), "tmx", str(tmp_path / "c.tmx"))
    assert counts["repaired"] == {"xml_invalid_removed": 1}
    segs = etree.parse(str(tmp_path / "c.tmx")).findall(".//seg")
    assert segs[4].text == "vier"


def test_a_bitext_without_pairs_exports_empty_files_in_its_languages(tmp_path):
    """A pair that mined nothing still exports: languages from the directory's name."""
    empty = tmp_path / "bitext" / "zh-en"
    empty.mkdir(parents=True)
    pq.write_table(BITEXT_SCHEMA.empty_table(), empty / "part-00000.parquet")
    counts = export(str(empty), "moses", str(tmp_path / "corpus"))
    assert counts["read"] == counts["kept"] == 0
    assert [open(p, encoding="utf-8").read() for p in counts["written"]] == ["", ""]
    assert counts["written"] == [str(tmp_path / "corpus.zh"), str(tmp_path / "corpus.en")]
    export(str(empty), "tmx", str(tmp_path / "empty.tmx"))
    document = etree.parse(str(tmp_path / "empty.tmx"))
    assert etree.DTD(io.StringIO(TMX_DTD)).validate(document)
    assert document.find("header").get("srclang") == "zh" and not document.findall("body/tu")
    export(str(empty), "hf", str(tmp_path / "empty.parquet"))
    table = pq.read_table(tmp_path / "empty.parquet")
    assert table.num_rows == 0
    assert table.schema.field("translation").type.names == ["zh", "en"]

    misnamed = tmp_path / "pairs"
    misnamed.mkdir()
    pq.write_table(BITEXT_SCHEMA.empty_table(), misnamed / "part-00000.parquet")
    with pytest.raises(ValueError, match="no pairs, and no SRC-TGT directory name"):
        export(str(misnamed), "moses", str(tmp_path / "x"))
