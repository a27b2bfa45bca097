import numpy as np
import pytest
from click.testing import CliRunner

from mining.bitext_readers import UnreadableBitext
from mining.evaluation.bucc import at_threshold, best_threshold, evaluate, read_gold, read_sentences
from mining.evaluation.tatoeba import available_languages, tatoeba_score
from tests.toy_encoder import ToyEncoder

DE = ["Das rot Haus.", "Der klein Hund.", "Die alt Katze.", "Ein gross Baum."]
EN = ["The red house.", "The small dog.", "The old cat.", "A big tree."]


def test_tatoeba_accuracy_both_directions(tmp_path):
    (tmp_path / "tatoeba.deu-eng.deu").write_text("\n".join(DE) + "\n")
    # The last English line is not the translation of the last German one.
    (tmp_path / "tatoeba.deu-eng.eng").write_text("\n".join(EN[:3] + ["A blue car."]) + "\n")
    assert available_languages(tmp_path) == ["deu"]
    score = tatoeba_score(ToyEncoder(), tmp_path, "deu")
    assert score.pairs == 4 and score.xx_to_en == 0.75 and score.en_to_xx == 0.75
    assert score.as_dict()["mean"] == 0.75


def brute_f1(scores, correct, gold, threshold):
    kept = [c for s, c in zip(scores, correct, strict=True) if s >= threshold]
    tp = sum(kept)
    if not tp:
        return 0.0
    p, r = tp / len(kept), tp / gold
    return 2 * p * r / (p + r)


def test_best_threshold_is_f1_optimal():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.9, 1.3, size=200)
    correct = rng.uniform(size=200) < (scores - 0.9) / 0.4
    result = best_threshold(scores, correct, gold=150)
    best_brute = max(brute_f1(scores, correct, 150, t) for t in scores)
    assert abs(result.f1 - best_brute) < 1e-9
    assert abs(at_threshold(scores, correct, 150, result.threshold).f1 - result.f1) < 1e-9


def test_bucc_evaluation_finds_hidden_pairs(tmp_path):
    src = DE + ["Ein neu Buch.", "Das blau Auto."]
    tgt = ["A cat sleeps here today.", *EN, "Totally unrelated words appear."]
    (tmp_path / "s").write_text("".join(f"de-{i}\t{t}\n" for i, t in enumerate(src)))
    (tmp_path / "t").write_text("".join(f"en-{i}\t{t}\n" for i, t in enumerate(tgt)))
    (tmp_path / "g").write_text("".join(f"de-{i}\ten-{i + 1}\n" for i in range(4)))
    result = evaluate(ToyEncoder(), tmp_path / "s", tmp_path / "t", tmp_path / "g", k=2)
    assert result["best"]["f1"] == 1.0 and result["best"]["gold"] == 4


def test_eval_tatoeba_says_when_a_directory_holds_no_test_sets(tmp_path):
    from pipelines.cli import cli

    args = ["eval", "tatoeba", "--data", str(tmp_path), "--langs", "all"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert f"no Tatoeba test sets (tatoeba.xxx-eng.xxx) in {tmp_path}" in result.output


def test_damaged_evaluation_files_are_named_with_their_line(tmp_path):
    (tmp_path / "s").write_bytes(b"de-0\tDas rot Haus.\nde-1 Der klein Hund.\n")
    with pytest.raises(UnreadableBitext, match=r"/s:2: expected 'id<TAB>sentence'$"):
        read_sentences(tmp_path / "s")
    (tmp_path / "g").write_bytes(b"de-0\ten-0\nde-1 en-1\n")
    with pytest.raises(UnreadableBitext, match=r"/g:2: expected 'src_id<TAB>tgt_id'$"):
        read_gold(tmp_path / "g")
    (tmp_path / "tatoeba.deu-eng.deu").write_bytes(b"Das rot Haus.\nDer kl\xe9in Hund.\n")
    (tmp_path / "tatoeba.deu-eng.eng").write_text("The red house.\nThe small dog.\n")
    with pytest.raises(UnreadableBitext, match=r"deu-eng.deu:2: not UTF-8 \(invalid continuation"):
        tatoeba_score(ToyEncoder(), tmp_path, "deu")
    (tmp_path / "tatoeba.deu-eng.deu").write_text("Das rot Haus.\n")
    with pytest.raises(UnreadableBitext, match=r"deu sides differ in length \(1, 2\)"):
        tatoeba_score(ToyEncoder(), tmp_path, "deu")


@pytest.mark.slow  # loads the bundled encoder: 6 s
def test_calibrate_reports_a_damaged_dev_set_as_one_line(tmp_path):
    from pipelines.cli import cli

    (tmp_path / "de-en.de").write_text("de-0\tDas rot Haus.\n")
    (tmp_path / "de-en.en").write_text("en-0\tThe red house.\n")
    (tmp_path / "de-en.gold").write_text("de-0 en-0\n")
    args = ["calibrate", "--encoder", "bundled", "--dev", str(tmp_path / "de-en")]
    result = CliRunner().invoke(cli, [*args, "--device", "cpu"])
    assert result.exit_code == 2
    gold = tmp_path / "de-en.gold"
    assert result.stderr == f"ccmine: bad bitext: {gold}:1: expected 'src_id<TAB>tgt_id'\n"
