"""Padding to a size multiple and back, and non-overlapping window partition / reverse.

The one padding helper of the zoo: networks declare ``size_multiple`` and ``merge()`` pads
the bottom and right edges with :func:`pad_to_multiple`, then :func:`crop` restores the
original size. :func:`window_partition` cuts a batch into square windows stacked along
the batch dimension (SAFNet's window-partition cropping); :func:`window_reverse` undoes it.
All four are differentiable (gradients flow back through the padding, the crop and the
windows; ``tests/ops/test_windows.py`` gradchecks them in float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hdrzoo.errors import InputSizeError

__all__ = ["pad_to_multiple", "crop", "window_partition", "window_reverse"]

_PAD_MODES = ("reflect", "replicate", "constant", "circular")


def _pad_bottom_right(x: torch.Tensor, pad_h: int, pad_w: int, mode: str) -> torch.Tensor:
    if mode == "circular":
        # Indexing wraps any number of times; F.pad's circular mode refuses pads larger than
        # the image.
        rows = torch.arange(x.shape[-2] + pad_h, device=x.device) % x.shape[-2]
        cols = torch.arange(x.shape[-1] + pad_w, device=x.device) % x.shape[-1]
        return x[..., rows[:, None], cols]
    if mode != "reflect":
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    # Reflect padding must be smaller than the axis; pad in steps so that a small image can
    # be padded to a large multiple (each step mirrors what is already there). A 1-pixel
    # axis has nothing to mirror and is replicated instead.
    while pad_h > 0 or pad_w > 0:
        step_h = min(pad_h, x.shape[-2] - 1)
        step_w = min(pad_w, x.shape[-1] - 1)
        if (pad_h > 0 and step_h == 0) or (pad_w > 0 and step_w == 0):
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h -= step_h
        pad_w -= step_w
    return x


def pad_to_multiple(
    x: torch.Tensor, m: int, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right edges so that H and W become multiples of ``m``.

    Args:
        x: tensor ``(..., H, W)`` with at least two dimensions (e.g. ``(B, C, H, W)`` or
            ``(B, N, C, H, W)``).
        m: the size multiple (``1`` returns ``x`` unchanged).
        mode: ``'reflect'`` (default; mirrors without repeating the edge pixel, in several
            steps when the pad exceeds the image), ``'replicate'``, ``'constant'`` (zeros) or
            ``'circular'``.

    Returns:
        ``(padded, (pad_h, pad_w))`` with ``padded`` of shape
        ``(..., H + pad_h, W + pad_w)``; :func:`crop` with the original ``H, W`` undoes it.

    Examples:
        >>> padded, pads = pad_to_multiple(torch.rand(1, 3, 30, 17), 16)
        >>> padded.shape, pads
        (torch.Size([1, 3, 32, 32]), (2, 15))
    """
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
        raise InputSizeError(f"pad_to_multiple: the multiple m must be an int >= 1, got {m!r}")
    if mode not in _PAD_MODES:
        raise InputSizeError(f"pad_to_multiple: unknown mode {mode!r}; use one of {_PAD_MODES}")
    if x.ndim < 2:
        raise InputSizeError(
            f"pad_to_multiple needs a tensor (..., H, W); got shape {tuple(x.shape)}"
        )
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % m, (-width) % m
    if pad_h == 0 and pad_w == 0:
        return x, (0, 0)
    if height == 0 or width == 0:
        raise InputSizeError(f"pad_to_multiple: cannot pad an empty image of size {height}x{width}")
    lead = x.shape[:-2]
    # F.pad's non-constant modes want (N, C, H, W); fold any leading dims into N.
    flat = x.reshape(-1, 1, height, width)
    padded = _pad_bottom_right(flat, pad_h, pad_w, mode)
    return padded.reshape(*lead, height + pad_h, width + pad_w), (pad_h, pad_w)


def crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Keep the top-left ``height x width`` pixels (undoes :func:`pad_to_multiple`).

    Args:
        x: tensor ``(..., H', W')`` with ``H' >= height`` and ``W' >= width``.
        height: rows to keep.
        width: columns to keep.

    Returns:
        View ``(..., height, width)``.

    Examples:
        >>> crop(torch.rand(1, 3, 32, 32), 30, 17).shape
        torch.Size([1, 3, 30, 17])
    """
    if x.shape[-2] < height or x.shape[-1] < width:
        raise InputSizeError(
            f"crop: cannot take {height}x{width} from a tensor of spatial size "
            f"{x.shape[-2]}x{x.shape[-1]}"
        )
    return x[..., :height, :width]


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """Cut every image of a batch into non-overlapping ``ws x ws`` windows.

    Args:
        x: ``(B, C, H, W)`` with H and W multiples of ``ws``.
        ws: window size in pixels.

    Returns:
        ``(B * nH * nW, C, ws, ws)`` with ``nH = H / ws``, ``nW = W / ws``; the window in
        row ``i``, column ``j`` of sample ``b`` is at index ``b * nH * nW + i * nW + j``.

    Examples:
        >>> window_partition(torch.rand(2, 6, 64, 96), 32).shape
        torch.Size([12, 6, 32, 32])
    """
    if x.ndim != 4:
        raise InputSizeError(f"window_partition expects (B, C, H, W); got {tuple(x.shape)}")
    batch, channels, height, width = x.shape
    if ws < 1 or height % ws or width % ws:
        raise InputSizeError(
            f"window_partition: the spatial size {height}x{width} is not a multiple of the "
            f"window size {ws}; crop or pad it (pad_to_multiple) first"
        )
    n_h, n_w = height // ws, width // ws
    windows = x.reshape(batch, channels, n_h, ws, n_w, ws).permute(0, 2, 4, 1, 3, 5)
    return windows.reshape(batch * n_h * n_w, channels, ws, ws)


def window_reverse(windows: torch.Tensor, ws: int, height: int, width: int) -> torch.Tensor:
    """Reassemble windows cut by :func:`window_partition` into full images (exact inverse).

    Args:
        windows: ``(B * nH * nW, C, ws, ws)``.
        ws: window size in pixels.
        height: H of the reassembled images, a multiple of ``ws``.
        width: W of the reassembled images, a multiple of ``ws``.

    Returns:
        ``(B, C, H, W)``.

    Examples:
        >>> x = torch.rand(2, 6, 64, 96)
        >>> torch.equal(window_reverse(window_partition(x, 32), 32, 64, 96), x)
        True
    """
    if windows.ndim != 4 or windows.shape[-2:] != (ws, ws):
        raise InputSizeError(
            f"window_reverse expects (B * nH * nW, C, {ws}, {ws}); got {tuple(windows.shape)}"
        )
    if height % ws or width % ws:
        raise InputSizeError(
            f"window_reverse: {height}x{width} is not a multiple of the window size {ws}"
        )
    n_h, n_w = height // ws, width // ws
    if windows.shape[0] % (n_h * n_w):
        raise InputSizeError(
            f"window_reverse: {windows.shape[0]} windows do not make whole {height}x{width} "
            f"images of {n_h * n_w} windows each"
        )
    batch = windows.shape[0] // (n_h * n_w)
    channels = windows.shape[1]
    images = windows.reshape(batch, n_h, n_w, channels, ws, ws).permute(0, 3, 1, 4, 2, 5)
    return images.reshape(batch, channels, height, width)
