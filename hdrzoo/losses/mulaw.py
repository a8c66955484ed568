"""L1 distance between mu-law tone-mapped HDR images, the main loss of every model in the zoo."""

from __future__ import annotations

import torch
from torch import nn

from hdrzoo.ops.tonemap import MU, mu_law

__all__ = ["MuLawL1"]


class MuLawL1(nn.Module):
    """Mean ``|T(prediction) - T(target)|`` with ``T(x) = log(1 + mu x) / log(1 + mu)``.

    Both images are clamped at 0 before the tone map (the log is undefined below -1/mu).

    Args:
        mu: compression strength of the tone map (5000 in all papers of the zoo).

    Shapes:
        ``prediction``, ``target``: linear HDR of the same shape, e.g. ``(B, 3, H, W)``.
        Returns a scalar.

    Examples:
        >>> loss = MuLawL1()
        >>> float(loss(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)))
        1.0
    """

    def __init__(self, mu: float = MU) -> None:
        super().__init__()
        self.mu = float(mu)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tonemapped_prediction = mu_law(prediction.clamp(min=0.0), self.mu)
        tonemapped_target = mu_law(target.clamp(min=0.0), self.mu)
        return (tonemapped_prediction - tonemapped_target).abs().mean()
