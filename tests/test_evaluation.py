import numpy as np

from mining.evaluation.bucc import at_threshold, best_threshold, evaluate
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
