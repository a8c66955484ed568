"""Max-pool fusion of per-stream features (MODELS.md 2.5).

A "stream" is one frame of a bracket processed by shared weights. The streams of a sample
are batched as ``(B * n, C, H, W)`` with the ``n`` streams of each sample consecutive. They
exchange information only through element-wise maxima over the streams, which do not
depend on the streams' order: networks built from these ops are permutation-invariant.
"""

from __future__ import annotations

import torch
from torch import nn

from hdrzoo.errors import InputSizeError

__all__ = ["stream_max", "broadcast_stream_max", "StreamFusion"]


def _split_streams(x: torch.Tensor, streams: int) -> torch.Tensor:
    if x.ndim != 4:
        raise InputSizeError(f"expected stream features (B * n, C, H, W), got {tuple(x.shape)}")
    if streams < 1 or x.shape[0] % streams:
        raise InputSizeError(
            f"{x.shape[0]} stream features cannot be split into groups of {streams} streams; "
            "batch the n streams of each sample consecutively as (B * n, C, H, W)"
        )
    return x.view(x.shape[0] // streams, streams, *x.shape[1:])


def stream_max(x: torch.Tensor, streams: int) -> torch.Tensor:
    """Element-wise maximum over the ``streams`` consecutive streams of each sample.

    Args:
        x: per-stream features ``(B * n, C, H, W)``, the ``n = streams`` streams of each
            sample consecutive.
        streams: ``n``, the number of streams per sample.

    Returns:
        ``(B, C, H, W)``: ``out[b] = max_j x[b * n + j]``.

    Examples:
        >>> x = torch.tensor([1.0, 5.0, 2.0, 4.0, 3.0, 0.0]).view(6, 1, 1, 1)
        >>> stream_max(x, 3).flatten().tolist()
        [5.0, 4.0]
    """
    return _split_streams(x, streams).amax(dim=1)


def broadcast_stream_max(x: torch.Tensor, streams: int) -> torch.Tensor:
    """:func:`stream_max` repeated for every stream: ``(B * n, C, H, W)``, same layout as ``x``.

    Examples:
        >>> x = torch.tensor([1.0, 5.0, 2.0, 4.0]).view(4, 1, 1, 1)
        >>> broadcast_stream_max(x, 2).flatten().tolist()
        [5.0, 5.0, 4.0, 4.0]
    """
    grouped = _split_streams(x, streams)
    return grouped.amax(dim=1, keepdim=True).expand_as(grouped).reshape(x.shape)


class StreamFusion(nn.Module):
    """``Fuse(F)_i = conv([F_i, max_j F_j])``: each stream sees the maximum over all streams.

    The convolution maps ``2C -> C`` and is shared by all streams; no activation (callers
    add one where their network has it).

    Args:
        channels: ``C``.
        kernel_size: odd kernel size of the fusion convolution (padding ``k // 2``).

    Shapes:
        ``x (B * n, C, H, W)`` and ``streams = n`` -> ``(B * n, C, H, W)``.

    Examples:
        >>> fuse = StreamFusion(8)
        >>> fuse(torch.rand(6, 8, 4, 4), streams=3).shape
        torch.Size([6, 8, 4, 4])
    """

    def __init__(self, channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, streams: int) -> torch.Tensor:
        return self.conv(torch.cat([x, broadcast_stream_max(x, streams)], dim=1))
