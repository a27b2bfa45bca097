"""The LaBSE ranking loss: bidirectional in-batch softmax with an additive margin."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def additive_margin_ranking_loss(
    src: torch.Tensor, tgt: torch.Tensor, margin: float = 0.3, scale: float = 20.0
) -> torch.Tensor:
    """Rows of src and tgt are unit vectors of translation pairs; other rows are negatives.

    The positive's cosine is lowered by `margin` before the softmax (Yang et al. 2019), and the
    loss is the mean of the source-to-target and target-to-source cross entropies.
    """
    sim = src @ tgt.T
    sim = sim - margin * torch.eye(len(src), device=sim.device, dtype=sim.dtype)
    logits = scale * sim
    labels = torch.arange(len(src), device=src.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
