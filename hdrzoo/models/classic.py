"""`classic`: the Kalantari-17 triangle-weight merge without alignment.

The baseline every learned model is compared with: no parameters, any N >= 2 frames, any
reference, any size. Frames are sorted by exposure, linearised with gamma 2.2 and averaged
with the N-frame triangle weights of :func:`hdrzoo.ops.tonemap.classic_weights`. Moving
objects are not aligned, so they leave ghosts: that is what the learned models fix.
"""

from __future__ import annotations

import torch
from torch import nn

from hdrzoo.models.base import HDRModule
from hdrzoo.models.registry import register_model
from hdrzoo.ops.tonemap import GAMMA, classic_weights, linearize, sort_by_exposure

__all__ = ["ClassicMerge", "ClassicModule"]


class ClassicMerge(nn.Module):
    """Triangle-weight merge (MODELS.md section 3).

    Args:
        gamma: the gamma used to linearise the frames.

    Shapes:
        ``ldr (B, N, 3, H, W)``, ``exposures (B, N)``, ``ref (B,)`` -> HDR ``(B, 3, H, W)``
        in units where the shortest exposure is 1. The output is not clamped.
    """

    frames = None
    size_multiple = 1

    def __init__(self, gamma: float = GAMMA) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(
        self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor
    ) -> torch.Tensor:
        ldr, exposures, ref = sort_by_exposure(ldr, exposures, ref)
        linear = linearize(ldr, exposures, self.gamma)
        out = torch.empty_like(linear[:, 0])
        # The weight cascade depends on the reference's position, so group samples by it.
        for r in ref.unique().tolist():
            rows = (ref == r).nonzero().flatten()
            weights = classic_weights(ldr[rows], r)
            out[rows] = (weights * linear[rows]).sum(1) / (weights.sum(1) + 1e-9)
        return out


@register_model(
    "classic",
    paper="Kalantari & Ramamoorthi, Deep High Dynamic Range Imaging of Dynamic Scenes, SIGGRAPH 2017 (merge weights)",
)
class ClassicModule(HDRModule):
    """Kalantari-17 triangle-weight merge without alignment (no parameters, any N)."""

    def __init__(self, gamma: float = GAMMA) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = ClassicMerge(gamma)
