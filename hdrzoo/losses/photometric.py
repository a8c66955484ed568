"""FlexHDR's HDR-aware self-supervised flow loss (MODELS.md 5.7)."""

from __future__ import annotations

import torch
from torch import nn

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.tonemap import MU, mu_law
from hdrzoo.ops.warp import warp

__all__ = ["MaskedPhotometric"]


class MaskedPhotometric(nn.Module):
    """Masked photometric loss of a backward flow, on mu-law tone-mapped linear images.

    For every (reference, frame) pair ``i``: ``M = stopgrad(E_r * warp(E_i, O_i))`` and
    ``L_i = sum_{p,c} M(p) |T(H_r)(p, c) - T(warp(H_i, O_i))(p, c)| / (C sum_p M(p) + eps)``;
    the loss is the mean of ``L_i`` over the pairs. Pixels that are poorly exposed in the
    reference or in the frame (low confidence ``E``) demand no match, and the mask is
    detached, so the flow cannot lower the loss by moving into unreliable regions. Images
    are clamped at 0 before the tone map.

    Args:
        mu: compression of the tone map ``T``.
        eps: keeps an all-zero mask from dividing by zero (the pair then contributes 0).

    Shapes:
        ``reference`` ``(P, C, H, W)`` linear reference image ``H_r``; ``frame`` ``(P, C, H, W)``
        linear frame ``H_i`` (unwarped); ``flow`` ``(P, 2, H, W)`` backward flow in pixels on
        the reference grid (reference pixel ``p`` matches ``p + flow(p)`` in the frame);
        ``reference_confidence``, ``frame_confidence`` ``(P, 1, H, W)`` in [0, 1] (the
        frame's unwarped). Returns a scalar; gradients reach ``flow`` and ``frame``.

    Examples:
        >>> loss = MaskedPhotometric()
        >>> h, ones = torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8)
        >>> round(float(loss(h, h, torch.zeros(2, 2, 8, 8), ones, ones)), 6)
        0.0
    """

    def __init__(self, mu: float = MU, eps: float = 1e-6) -> None:
        super().__init__()
        self.mu = float(mu)
        self.eps = float(eps)

    def forward(
        self,
        reference: torch.Tensor,
        frame: torch.Tensor,
        flow: torch.Tensor,
        reference_confidence: torch.Tensor,
        frame_confidence: torch.Tensor,
    ) -> torch.Tensor:
        pairs, channels, height, width = reference.shape
        expected = {
            "frame": (pairs, channels, height, width),
            "flow": (pairs, 2, height, width),
            "reference_confidence": (pairs, 1, height, width),
            "frame_confidence": (pairs, 1, height, width),
        }
        given = {
            "frame": frame,
            "flow": flow,
            "reference_confidence": reference_confidence,
            "frame_confidence": frame_confidence,
        }
        for name, shape in expected.items():
            if tuple(given[name].shape) != shape:
                raise InputSizeError(
                    f"MaskedPhotometric: {name} must be {shape} to match the reference "
                    f"{tuple(reference.shape)}, got {tuple(given[name].shape)}"
                )
        with torch.no_grad():
            mask = reference_confidence * warp(frame_confidence, flow)
        target = mu_law(reference.clamp(min=0.0), self.mu)
        warped = mu_law(warp(frame, flow).clamp(min=0.0), self.mu)
        weighted = (mask * (target - warped).abs()).sum(dim=(1, 2, 3))
        per_pair = weighted / (channels * mask.sum(dim=(1, 2, 3)) + self.eps)
        return per_pair.mean()
