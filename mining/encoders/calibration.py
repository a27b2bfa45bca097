"""The mining cuts stored with an encoder: per margin and mode, the threshold and cosine floor
`ccmine calibrate --write` chose on dev sets, which `mine` uses when none is given.

In `ccmine_encoder.json`: `calibration: {MARGIN: {MODE: {threshold, min_cosine, k, dev,
mean_f1}}}`. Configs written before cuts were kept per mode hold one cut per margin
(`mining_threshold: {MARGIN: t}`, `min_cosine: {MARGIN: c}`, and `calibration: {MARGIN: {mode,
k, dev, mean_f1}}`); they are read as that one mode's cut ("max" when none is named).
"""

from __future__ import annotations

from dataclasses import dataclass

# The mode whose cut stands in for an uncalibrated one, when the encoder has it.
FALLBACK_MODE = "max"


@dataclass(frozen=True)
class Cut:
    threshold: float | None
    min_cosine: float | None
    mode: str | None  # the mode it was calibrated for; None when no cut is stored


def stored_cuts(config: dict, margin_kind: str) -> dict[str, dict]:
    """The cuts stored for a margin, by mode (either layout)."""
    calibration = config.get("calibration", {}).get(margin_kind, {})
    threshold = config.get("mining_threshold", {}).get(margin_kind)
    if threshold is None:  # the layout by mode (or nothing stored)
        return {
            mode: cut
            for mode, cut in calibration.items()
            if isinstance(cut, dict) and "threshold" in cut
        }
    legacy = {name: value for name, value in calibration.items() if name != "mode"}
    cut = {"threshold": threshold, "min_cosine": config.get("min_cosine", {}).get(margin_kind)}
    return {calibration.get("mode", FALLBACK_MODE): {**cut, **legacy}}


def cut_for(config: dict, margin_kind: str, mode: str) -> Cut:
    """The stored cut for this margin and mode; for another mode (max first) when this one was
    not calibrated, so that the caller can say so; an empty Cut when the margin has none."""
    cuts = stored_cuts(config, margin_kind)
    if not cuts:
        return Cut(None, None, None)
    chosen = mode if mode in cuts else FALLBACK_MODE if FALLBACK_MODE in cuts else min(cuts)
    cut = cuts[chosen]
    floor = cut.get("min_cosine")
    return Cut(float(cut["threshold"]), None if floor is None else float(floor), chosen)


def with_cut(config: dict, margin_kind: str, mode: str, cut: dict) -> dict:
    """The config with this margin and mode's cut replaced by `cut` (threshold, min_cosine
    and how it was chosen), the other modes' and margins' cuts kept, in the layout by mode."""
    updated = {k: v for k, v in config.items() if k not in ("mining_threshold", "min_cosine")}
    calibration = {
        margin: stored_cuts(config, margin)
        for margin in dict.fromkeys(
            [*config.get("mining_threshold", {}), *config.get("calibration", {})]
        )
    }
    calibration.setdefault(margin_kind, {})[mode] = cut
    updated["calibration"] = calibration
    return updated
