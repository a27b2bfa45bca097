"""Mining cuts stored with an encoder, per margin and mode, in both config layouts."""

from mining.encoders.calibration import Cut, cut_for, stored_cuts, with_cut

DEV = {"de-en.de": {"precision": 0.95, "recall": 0.98, "f1": 0.96}}
# A config as `calibrate --write` wrote it before cuts were kept per mode.
ONE_CUT = {
    "languages": ["de", "en"],
    "mining_threshold": {"ratio": 1.02},
    "min_cosine": {"ratio": 0.5},
    "calibration": {"ratio": {"mode": "max", "k": 4, "dev": DEV, "mean_f1": 0.96}},
}


def test_a_config_with_one_cut_per_margin_reads_as_that_modes_cut():
    assert stored_cuts(ONE_CUT, "ratio") == {
        "max": {"threshold": 1.02, "min_cosine": 0.5, "k": 4, "dev": DEV, "mean_f1": 0.96}
    }
    assert cut_for(ONE_CUT, "ratio", "max") == Cut(1.02, 0.5, "max")
    # another mode gets max's cut, and is told so by the mode
    assert cut_for(ONE_CUT, "ratio", "union") == Cut(1.02, 0.5, "max")
    assert cut_for(ONE_CUT, "distance", "max") == Cut(None, None, None)
    bare = {"mining_threshold": {"ratio": 1.1}}  # no calibration record: max, no floor
    assert cut_for(bare, "ratio", "intersect") == Cut(1.1, None, "max")


def test_writing_a_cut_keeps_the_other_modes_and_margins():
    union = {"threshold": 1.1, "min_cosine": 0.55, "k": 4, "dev": DEV, "mean_f1": 0.95}
    config = with_cut(ONE_CUT, "ratio", "union", union)
    assert "mining_threshold" not in config and config["languages"] == ["de", "en"]
    assert cut_for(config, "ratio", "union") == Cut(1.1, 0.55, "union")
    assert cut_for(config, "ratio", "max") == Cut(1.02, 0.5, "max")
    config = with_cut(config, "distance", "max", {"threshold": 0.05, "min_cosine": None})
    config = with_cut(config, "ratio", "union", {**union, "threshold": 1.2})
    assert set(config["calibration"]) == {"ratio", "distance"}
    assert cut_for(config, "ratio", "union").threshold == 1.2
    assert cut_for(config, "ratio", "max").threshold == 1.02
    assert cut_for(config, "distance", "union") == Cut(0.05, None, "max")


def test_only_another_mode_than_max_calibrated():
    config = with_cut({}, "ratio", "union", {"threshold": 1.1, "min_cosine": 0.5})
    assert cut_for(config, "ratio", "max") == Cut(1.1, 0.5, "union")
