"""AHDRNet-style alignment by spatial attention (Yan et al., CVPR 2019).

A non-reference frame's features are weighted, per pixel and channel, by an attention map
computed from them and the reference frame's features: regions that moved or are badly
exposed are suppressed before the merge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError

__all__ = ["SpatialAttention"]


class SpatialAttention(nn.Module):
    """Attention map ``sigmoid(conv3x3 2C->C(LReLU_0.2(conv3x3 2C->2C([f, f_ref]))))``.

    The caller multiplies ``f * a``. Parameters (C = 60): 194,580.

    Args:
        channels: C of each input.

    Shapes:
        f ``(B, C, H, W)``, f_ref ``(B, C, H, W)`` -> a ``(B, C, H, W)`` in (0, 1).

    Examples:
        >>> att = SpatialAttention(8)
        >>> f, f_ref = torch.randn(1, 8, 5, 5), torch.randn(1, 8, 5, 5)
        >>> a = att(f, f_ref)
        >>> a.shape, bool(((a > 0) & (a < 1)).all())
        (torch.Size([1, 8, 5, 5]), True)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, f: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        if f.shape != f_ref.shape:
            raise InputSizeError(
                f"SpatialAttention: f {tuple(f.shape)} and f_ref {tuple(f_ref.shape)} must have "
                "the same shape"
            )
        hidden = F.leaky_relu(self.conv1(torch.cat([f, f_ref], dim=1)), 0.2)
        return torch.sigmoid(self.conv2(hidden))
