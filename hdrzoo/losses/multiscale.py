"""Multi-scale mu-law L1: one :class:`~hdrzoo.losses.MuLawL1` term per output scale."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.tonemap import MU, mu_law

__all__ = ["MultiScaleMuLawL1"]


class MultiScaleMuLawL1(nn.Module):
    """``sum_s weight_s * mean |T(prediction_s) - T(avg_pool(target, f_s))|`` over the scales.

    Each prediction is compared with the target average-pooled by its integer factor
    ``f_s = target H / prediction H`` (1 for full resolution, 2 for half, ...); ``T`` is the
    mu-law tone map of :func:`hdrzoo.ops.tonemap.mu_law` applied to images clamped at 0.

    Args:
        weights: one weight per prediction (STHDR: 1 for every scale).
        mu: compression strength of the tone map.

    Shapes:
        ``predictions``: a sequence of ``(B, C, H / f_s, W / f_s)`` tensors, in the order of
        ``weights``; ``target (B, C, H, W)``. Returns ``(loss, terms)``: the weighted sum (a
        scalar) and the unweighted per-scale terms, in the same order.

    Examples:
        >>> loss, terms = MultiScaleMuLawL1((1.0, 1.0))(
        ...     [torch.ones(1, 3, 4, 4), torch.ones(1, 3, 2, 2)], torch.zeros(1, 3, 4, 4)
        ... )
        >>> float(loss), [float(t) for t in terms]
        (2.0, [1.0, 1.0])
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0), mu: float = MU) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        if not self.weights or any(not w >= 0 for w in self.weights):
            raise InputSizeError(
                f"MultiScaleMuLawL1: weights must be non-negative numbers, got {weights}"
            )
        self.mu = float(mu)

    def _pooled_target(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        height, width = target.shape[-2:]
        factor = height // max(prediction.shape[-2], 1)
        if (
            factor < 1
            or prediction.shape[-2:] != (height // factor, width // factor)
            or (height % factor or width % factor)
        ):
            raise InputSizeError(
                f"MultiScaleMuLawL1: prediction of size {tuple(prediction.shape[-2:])} is not the "
                f"target's {height}x{width} divided by an integer factor; use training crops "
                "divisible by every scale factor"
            )
        return target if factor == 1 else F.avg_pool2d(target, factor)

    def forward(
        self, predictions: Sequence[torch.Tensor], target: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if len(predictions) != len(self.weights):
            raise InputSizeError(
                f"MultiScaleMuLawL1: {len(predictions)} predictions for {len(self.weights)} weights"
            )
        terms = []
        for prediction in predictions:
            pooled = self._pooled_target(prediction, target)
            difference = mu_law(prediction.clamp(min=0.0), self.mu) - mu_law(
                pooled.clamp(min=0.0), self.mu
            )
            terms.append(difference.abs().mean())
        loss = sum(w * t for w, t in zip(self.weights, terms, strict=True))
        return loss, terms
