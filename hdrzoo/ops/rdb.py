"""Residual dense blocks (RDN, Zhang et al. 2018) and their grouped form (MODELS.md 2.6)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RDB", "GRDB"]


class RDB(nn.Module):
    """Residual dense block: densely connected 3x3 convs, a 1x1 local fusion, a residual.

    ``f_0 = x``; for ``l = 1..L``: ``f_l = ReLU(conv3x3([f_0, ..., f_{l-1}]))`` with
    ``c + (l - 1) g`` input and ``g`` output channels; ``out = x + conv1x1([f_0, ..., f_L])``
    mapping ``c + L g -> c``. ``RDB(64, 32, 6)`` has 265,472 parameters.

    Args:
        channels: ``c``, channels of the input and output.
        growth: ``g``, channels each dense layer adds.
        layers: ``L``, number of dense layers.

    Shapes:
        ``(B, c, H, W) -> (B, c, H, W)``.

    Examples:
        >>> block = RDB(8, 4, 3)
        >>> block(torch.rand(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, channels: int, growth: int, layers: int) -> None:
        super().__init__()
        self.dense = nn.ModuleList(
            nn.Conv2d(channels + i * growth, growth, 3, padding=1) for i in range(layers)
        )
        self.fusion = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.dense:
            features.append(F.relu(conv(torch.cat(features, dim=1))))
        return x + self.fusion(torch.cat(features, dim=1))


class GRDB(nn.Module):
    """Grouped residual dense block: ``k`` RDBs in sequence, their outputs fused, a residual.

    ``m_0 = x``; ``m_k = after_block(k - 1, RDB_k(m_{k-1}))`` (identity without a callback);
    ``out = x + conv1x1([m_1, ..., m_k])`` mapping ``k c -> c``. The callback lets a caller
    insert its own step after every block (FlexHDR's cross-stream max-pool fusion).

    Args:
        channels: ``c``.
        growth: growth of each RDB.
        layers: dense layers of each RDB.
        blocks: ``k``, the number of RDBs.

    Shapes:
        ``(B, c, H, W) -> (B, c, H, W)``; ``after_block(index, features)`` must keep the shape.

    Examples:
        >>> group = GRDB(8, 4, 2, blocks=2)
        >>> group(torch.rand(1, 8, 6, 6), after_block=lambda k, y: 0.5 * y).shape
        torch.Size([1, 8, 6, 6])
    """

    def __init__(self, channels: int, growth: int, layers: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(RDB(channels, growth, layers) for _ in range(blocks))
        self.fusion = nn.Conv2d(blocks * channels, channels, 1)

    def forward(
        self,
        x: torch.Tensor,
        after_block: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        outputs = []
        features = x
        for index, block in enumerate(self.blocks):
            features = block(features)
            if after_block is not None:
                features = after_block(index, features)
            outputs.append(features)
        return x + self.fusion(torch.cat(outputs, dim=1))
