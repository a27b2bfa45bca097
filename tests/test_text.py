import pytest

from mining.scripts import length_units, script_fraction
from mining.sentence_split import split_sentences
from mining.text_normalize import normalize_text, text_hash


def test_normalize_collapses_space_and_removes_controls():
    assert normalize_text("  Hallo\u00a0 Welt\t\x07!\n") == "Hallo Welt !"
    # NFC: a decomposed umlaut becomes one code point.
    assert normalize_text("Mu\u0308ller") == "M\u00fcller"
    assert normalize_text("a\u200bb") == "a b"  # zero-width space is a format character


def test_hash_is_stable_and_64_bit():
    assert text_hash("Hallo Welt.") == text_hash("Hallo Welt.")
    assert text_hash("Hallo Welt.") != text_hash("Hallo Welt!")
    # A fixed value: the hash must not change between machines or releases.
    assert text_hash("Hallo Welt.") == -7663145056785242898
    assert -(2**63) <= text_hash("x" * 1000) < 2**63


def test_script_check_flags_wrong_script():
    assert script_fraction("Das ist ein Satz.", "de") == 1.0
    assert script_fraction("Это предложение.", "de") == 0.0
    assert script_fraction("这是一个句子。", "zh") == 1.0
    assert script_fraction("This is English", "zh") == 0.0
    assert script_fraction("iPhone 手机", "zh") == 0.25  # 2 Han of 8 letters
    assert script_fraction("anything", "xx-unknown") is None
    assert script_fraction("1234 !!", "en") == 0.0


def test_length_units_count_words_or_characters_per_word():
    assert length_units("Das ist ein Satz.", "de") == 4
    assert length_units("这是一个句子。", "zh") == 4  # 6 Han characters / 1.4, the 。 not counted
    assert length_units("那个真好。", "zh") == 3  # "That's really good." is 3 words too


@pytest.mark.parametrize("lang, code", [("zh", "cmn"), ("ja", "jpn"), ("th", "tha")])
def test_length_units_match_the_english_translation(shared_data, lang, code):
    """Over Tatoeba's sentence pairs a translation counts about as many units as its English
    side, and a minimum length drops about as many sentences on each side."""
    folder = shared_data / "tatoeba" / "v1"
    english = (folder / f"tatoeba.{code}-eng.eng").read_text(encoding="utf-8").splitlines()
    other = (folder / f"tatoeba.{code}-eng.{code}").read_text(encoding="utf-8").splitlines()
    en_units = [length_units(t, "en") for t in english]
    xx_units = [length_units(t, lang) for t in other]
    assert sum(xx_units) / sum(en_units) == pytest.approx(1.0, abs=0.1)
    en_short, xx_short = sum(u < 4 for u in en_units), sum(u < 4 for u in xx_units)
    assert abs(xx_short - en_short) <= 0.1 * len(english)


def test_split_german_keeps_abbreviations():
    text = "Dies ist z.B. ein Test! Wie geht es Dr. Müller? Gut."
    assert split_sentences(text, "de") == [
        "Dies ist z.B. ein Test!",
        "Wie geht es Dr. Müller?",
        "Gut.",
    ]


def test_split_chinese_fullwidth_punctuation():
    text = "我们今天去公园。你呢？他说：“好的！”然后走了。"
    assert split_sentences(text, "zh") == [
        "我们今天去公园。",
        "你呢？",
        "他说：“好的！”",
        "然后走了。",
    ]


def test_split_japanese():
    assert split_sentences("今日は晴れです。明日は雨でしょう！", "ja") == [
        "今日は晴れです。",
        "明日は雨でしょう！",
    ]
