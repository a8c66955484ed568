"""Stride-1 "same" convolutions computed in row blocks, for full-resolution CPU inference.

Why this exists: on the CPU a full-resolution activation (32 channels of a 1000 x 1500 image
is 192 MB in float32) is larger than glibc's largest mmap threshold (32 MiB), so every fresh
one is mapped from the kernel and page-faulted in, zero-filled, which costs about as much as
the PReLU that fills it. Computing a convolution block of rows by block of rows into a buffer
the caller reuses between layers keeps every temporary below :data:`BLOCK_BYTES` (recycled
heap memory), lowers the peak memory to a few full-size buffers for a whole stack, and makes
the same network markedly faster than its layer-by-layer form.

Each block reads ``padding`` extra rows above and below (zeros at the image border) and is
convolved without vertical padding, so no output row is computed twice and the result equals
``F.conv2d`` to float rounding. There is no autograd here (outputs are written in place):
use it under ``torch.no_grad()``; :func:`use_row_blocks` says when a model should.

oneDNN (CPU) and cuDNN run 3x3 convolutions faster on channels-last (NHWC) tensors, hence the
small channels-last helpers next to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError

__all__ = [
    "BLOCK_BYTES",
    "band_rows",
    "cat_channels_last",
    "channels_last",
    "conv2d_rows",
    "conv_module_rows",
    "conv_prelu_stack_rows",
    "empty_channels_last",
    "map_row_bands",
    "use_row_blocks",
]

BLOCK_BYTES = 24 * 2**20
"""Largest block of rows (bytes of the wider of input and output) :func:`conv2d_rows` makes."""


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory order (a no-op when it already is).

    Args:
        x: ``(B, C, H, W)``.

    Returns:
        The same values ``(B, C, H, W)``, stored NHWC.

    Examples:
        >>> channels_last(torch.zeros(1, 3, 4, 5)).is_contiguous(memory_format=torch.channels_last)
        True
    """
    return x.contiguous(memory_format=torch.channels_last)


def cat_channels_last(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``(B, C_i, H, W)`` tensors along channels into one channels-last tensor.

    Examples:
        >>> cat_channels_last([torch.zeros(1, 2, 3, 3), torch.ones(1, 1, 3, 3)]).shape
        torch.Size([1, 3, 3, 3])
    """
    return channels_last(torch.cat(list(parts), 1))


def empty_channels_last(like: torch.Tensor, channels: int) -> torch.Tensor:
    """An uninitialised channels-last buffer with the batch, size, dtype and device of ``like``.

    Args:
        like: ``(B, C, H, W)``.
        channels: channel count of the buffer.

    Returns:
        ``(B, channels, H, W)``, stored NHWC.

    Examples:
        >>> empty_channels_last(torch.zeros(2, 3, 5, 7), 8).shape
        torch.Size([2, 8, 5, 7])
    """
    batch, _, height, width = like.shape
    return torch.empty(
        (batch, channels, height, width),
        dtype=like.dtype,
        device=like.device,
        memory_format=torch.channels_last,
    )


def use_row_blocks(x: torch.Tensor) -> bool:
    """Whether a model should take its row-block path for ``x``: CPU inference only.

    Row blocks write in place (no autograd) and only pay off where memory is mapped lazily
    (the CPU allocator), so training and GPU inference keep the plain layer-by-layer path.

    Examples:
        >>> with torch.no_grad():
        ...     use_row_blocks(torch.zeros(1))
        True
        >>> use_row_blocks(torch.zeros(1))
        False
    """
    return x.device.type == "cpu" and not torch.is_grad_enabled()


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv2d_rows(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    *,
    out: torch.Tensor | None = None,
    prelu_weight: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    block_bytes: int | None = None,
) -> torch.Tensor:
    """``prelu(conv2d(x) + residual)`` for a stride-1 convolution, computed in row blocks.

    The convolution must keep the height ("same" vertical padding:
    ``2 * padding_h == dilation_h * (k_h - 1)``); the horizontal padding is free.

    Args:
        x: input ``(B, C_in, H, W)``.
        weight: ``(C_out, C_in / groups, k_h, k_w)``.
        bias: optional ``(C_out,)``.
        padding: zero padding ``p`` or ``(p_h, p_w)`` in pixels, as ``F.conv2d``'s.
        dilation: ``d`` or ``(d_h, d_w)``.
        groups: as ``F.conv2d``'s.
        out: where to write, ``(B, C_out, H, W_out)``, not overlapping ``x`` or ``residual``
            (allocated channels-last when ``None``). A caller running a stack of layers
            passes the same two buffers to every layer.
        prelu_weight: optional PReLU slopes ``(C_out,)`` or ``(1,)``, applied last.
        residual: optional ``(B, C_out, H, W_out)`` added before the PReLU.
        block_bytes: largest block (default :data:`BLOCK_BYTES`); each block holds at least
            one row.

    Returns:
        ``out``, ``(B, C_out, H, W_out)`` with ``W_out = W + 2 p_w - d_w (k_w - 1)``.

    Examples:
        >>> x, w = torch.randn(1, 4, 9, 7), torch.randn(6, 2, 3, 3)
        >>> y = conv2d_rows(x, w, padding=2, dilation=2, groups=2, block_bytes=1)
        >>> torch.allclose(y, F.conv2d(x, w, padding=2, dilation=2, groups=2), atol=1e-5)
        True
    """
    pad_h, pad_w = _pair(padding)
    dilation_h, dilation_w = _pair(dilation)
    kernel_h, kernel_w = weight.shape[-2:]
    if 2 * pad_h != dilation_h * (kernel_h - 1):
        raise InputSizeError(
            f"conv2d_rows: a {kernel_h}-row kernel with dilation {dilation_h} needs vertical "
            f"padding {dilation_h * (kernel_h - 1) / 2:g} to keep the height, got {pad_h}; "
            "row blocks only compute height-preserving stride-1 convolutions (use F.conv2d)"
        )
    batch, channels_in, height, width = x.shape
    channels_out = weight.shape[0]
    width_out = width + 2 * pad_w - dilation_w * (kernel_w - 1)
    if out is None:
        out = torch.empty(
            (batch, channels_out, height, width_out),
            dtype=x.dtype,
            device=x.device,
            memory_format=torch.channels_last,
        )
    limit = BLOCK_BYTES if block_bytes is None else block_bytes
    row_bytes = batch * max(width, width_out) * max(channels_in, channels_out) * x.element_size()
    rows = max(1, limit // row_bytes)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        first, last = top - pad_h, bottom + pad_h
        block = x[:, :, max(first, 0) : min(last, height)]
        if first < 0 or last > height:
            block = F.pad(block, (0, 0, max(-first, 0), max(last - height, 0)))
        y = F.conv2d(block, weight, bias, 1, (0, pad_w), (dilation_h, dilation_w), groups)
        if residual is not None:
            y += residual[:, :, top:bottom]
        out[:, :, top:bottom] = y if prelu_weight is None else F.prelu(y, prelu_weight)
    return out


def conv_module_rows(
    x: torch.Tensor,
    conv: nn.Conv2d,
    out: torch.Tensor | None = None,
    prelu: nn.PReLU | None = None,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`conv2d_rows` with the weights of an ``nn.Conv2d`` (stride 1) and an ``nn.PReLU``.

    Examples:
        >>> conv, prelu = nn.Conv2d(3, 5, 3, padding=1), nn.PReLU(5)
        >>> x = torch.randn(2, 3, 7, 9)
        >>> with torch.no_grad():
        ...     torch.allclose(conv_module_rows(x, conv, prelu=prelu), prelu(conv(x)), atol=1e-6)
        True
    """
    if conv.stride != (1, 1) or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise InputSizeError(
            f"conv_module_rows: {conv} is not a stride-1, zero-padded convolution with numeric "
            "padding; run it as a module instead"
        )
    return conv2d_rows(
        x,
        conv.weight,
        conv.bias,
        conv.padding,
        conv.dilation,
        conv.groups,
        out=out,
        prelu_weight=None if prelu is None else prelu.weight,
        residual=residual,
    )


def conv_prelu_stack_rows(
    parts: Sequence[torch.Tensor], layers: Sequence[tuple[nn.Conv2d, nn.PReLU | None]]
) -> torch.Tensor:
    """Concatenate ``parts`` and run them through conv (+ PReLU) layers in row blocks.

    Two full-size buffers serve the whole stack, each layer writing into the one it did not
    read; both are as wide (in channels) as the widest layer output, and the concatenated
    input is assembled in the second one when it fits. For a stack of ``L`` layers this
    holds 2 full-size activations instead of ``L + 1``.

    Args:
        parts: ``(B, C_i, H, W)`` tensors, concatenated along channels to form the input.
        layers: ``(conv, prelu or None)`` pairs; every conv stride 1 and size-preserving
            ("same" padding), the channels of consecutive layers chaining.

    Returns:
        ``(B, C_last, H, W)``, a channel slice of one of the two buffers.

    Examples:
        >>> layers = [(nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8)), (nn.Conv2d(8, 4, 1), None)]
        >>> a, b = torch.randn(1, 1, 6, 5), torch.randn(1, 2, 6, 5)
        >>> with torch.no_grad():
        ...     plain = layers[1][0](layers[0][1](layers[0][0](torch.cat([a, b], 1))))
        ...     torch.allclose(conv_prelu_stack_rows([a, b], layers), plain, atol=1e-6)
        True
    """
    width = max(conv.out_channels for conv, _ in layers)
    buffer_a = empty_channels_last(parts[0], width)
    buffer_b = torch.empty_like(buffer_a)
    channels_in = sum(part.shape[1] for part in parts)
    if channels_in <= width:
        x = buffer_b[:, :channels_in]
        torch.cat(list(parts), 1, out=x)
    else:
        x = cat_channels_last(parts)
    for conv, prelu in layers:
        out = buffer_a if conv.out_channels == width else buffer_a[:, : conv.out_channels]
        x = conv_module_rows(x, conv, out, prelu=prelu)
        buffer_a, buffer_b = buffer_b, buffer_a
    return x


def band_rows(x: torch.Tensor, widest_channels: int, block_bytes: int | None = None) -> int:
    """Rows per band for :func:`map_row_bands` so that one band of the widest tensor a
    function makes (``widest_channels`` channels of ``x``'s batch and width) stays within
    ``block_bytes`` (default :data:`BLOCK_BYTES`); at least one row.

    Examples:
        >>> band_rows(torch.zeros(1, 3, 100, 1024), widest_channels=64)
        96
    """
    batch, _, _, width = x.shape
    limit = BLOCK_BYTES if block_bytes is None else block_bytes
    return max(1, limit // (batch * width * widest_channels * x.element_size()))


def map_row_bands(
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    inputs: Sequence[torch.Tensor],
    halo: int,
    rows: int,
) -> tuple[torch.Tensor, ...]:
    """``fn(*inputs)`` computed band of rows by band of rows, for full-resolution inference.

    ``fn`` must be local in the rows: every output row depends only on the input rows at
    most ``halo`` rows away, through height-preserving stride-1 layers zero-padded at the
    top and bottom like ``F.conv2d`` (e.g. ``halo`` 2 for two 3x3 convolutions), and on
    nothing computed over the whole image (no means over pixels, no attention across
    pixels). Each band of ``rows`` output rows is computed from its input rows plus
    ``halo`` rows above and below (none beyond the image border), and only its own rows
    are kept, so the result equals ``fn(*inputs)`` to float rounding while only one band's
    intermediate tensors exist at a time: a deep local stack then holds its inputs and
    outputs at full size, not every intermediate activation.

    Args:
        fn: maps ``(B, C_i, h, W)`` tensors (one per input, the same ``h``) to one tensor
            or a tuple of tensors ``(B, C_j, h, W_j)``.
        inputs: ``(B, C_i, H, W)`` tensors with the same ``B`` and ``H``.
        halo: receptive-field radius of ``fn`` in rows (>= 0).
        rows: output rows per band (>= 1); :func:`band_rows` picks one from a byte budget.

    Returns:
        The outputs of ``fn`` as a tuple, each ``(B, C_j, H, W_j)``.

    Examples:
        >>> conv = nn.Conv2d(2, 3, 3, padding=1)
        >>> x = torch.randn(1, 2, 9, 5)
        >>> with torch.no_grad():
        ...     (y,) = map_row_bands(lambda t: conv(conv(t[:, :2])[:, :2]), [x], halo=2, rows=2)
        ...     torch.allclose(y, conv(conv(x)[:, :2]), atol=1e-6)
        True
    """
    if halo < 0 or rows < 1:
        raise InputSizeError(f"map_row_bands: need halo >= 0 and rows >= 1, got {halo}, {rows}")
    height = inputs[0].shape[-2]
    if any(t.shape[-2] != height for t in inputs):
        raise InputSizeError(
            f"map_row_bands: inputs must share their height, got {[tuple(t.shape) for t in inputs]}"
        )
    outputs: tuple[torch.Tensor, ...] = ()
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        first, last = max(top - halo, 0), min(bottom + halo, height)
        band = fn(*(t[:, :, first:last] for t in inputs))
        band = band if isinstance(band, tuple) else (band,)
        if not outputs:
            if rows >= height:  # one band: fn's own outputs, no copy
                return band
            outputs = tuple(
                torch.empty((*y.shape[:-2], height, y.shape[-1]), dtype=y.dtype, device=y.device)
                for y in band
            )
        for out, y in zip(outputs, band, strict=True):
            out[:, :, top:bottom] = y[:, :, top - first : bottom - first]
    return outputs
