"""`merge()`: one bracket in, linear HDR out, for any model of the zoo.

Validates the bracket, reflect-pads to the network's size multiple and crops back,
optionally splits the image into overlapping tiles blended with a smooth window (memory
bounded by the tile size), runs under ``torch.inference_mode`` and optional autocast.
The CLI ``merge`` command and the demo call this; nothing else re-implements it.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from typing import Any

import numpy as np
import torch

from hdrzoo.bracket import Bracket
from hdrzoo.errors import HDRZooError, InputSizeError
from hdrzoo.models.base import HDRModule, check_frame_count
from hdrzoo.ops.windows import crop, pad_to_multiple

__all__ = ["merge", "as_bracket", "tile_starts", "blend_window", "DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 12_000_000
"""Untiled inputs above this many pixels are refused with a suggestion to tile (a 12 MP
bracket already needs several GB of activations in the larger models)."""

_PRECISIONS = {
    None: None,
    "fp32": None,
    "32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "16": torch.float16,
}


def as_bracket(data: Any, exposures: Any = None, ref: int | None = None) -> Bracket:
    """Turn what a user passes to ``merge`` into a validated :class:`Bracket`.

    Accepts a ``Bracket``, a ``(ldr, exposures)`` tuple, or ``ldr`` ``(N, 3, H, W)`` (tensor
    or array) with ``exposures`` given. Without ``ref``, a bare ``ldr`` uses the middle
    frame of the exposure order as reference.
    """
    if isinstance(data, Bracket):
        if exposures is not None:
            raise HDRZooError("merge: exposures come from the Bracket; do not pass them again")
        if ref is None or ref == data.ref:
            return data
        return Bracket(data.ldr, data.exposures, ref, data.gt, data.name, data.meta)
    if isinstance(data, tuple) and len(data) == 2 and exposures is None:
        data, exposures = data
    if exposures is None:
        raise HDRZooError("merge: pass a Bracket, or frames (N, 3, H, W) together with exposures=")
    if ref is not None:
        return Bracket(data, exposures, ref)
    # Validate with a placeholder reference first, then take the middle exposure.
    bracket = Bracket(data, exposures, 0)
    order = torch.argsort(bracket.exposures, stable=True)
    middle = int(order[len(order) // 2])
    return Bracket(bracket.ldr, bracket.exposures, middle, bracket.gt, bracket.name, bracket.meta)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` shared pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def blend_window(
    height: int, width: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool
) -> torch.Tensor:
    """Smooth tile weight ``(1, height, width)``: 1 inside, a sin^2 ramp over ``overlap`` pixels at
    each edge that borders another tile (flags say which), strictly positive everywhere."""

    def ramp(n: int, rise: bool, fall: bool) -> torch.Tensor:
        w = torch.ones(n, dtype=torch.float64)
        k = min(overlap, n)
        if k > 0:
            # (i + 0.5) keeps the weight above zero, so every pixel is covered by some tile.
            r = torch.sin(0.5 * math.pi * (torch.arange(k, dtype=torch.float64) + 0.5) / k) ** 2
            if rise:
                w[:k] = torch.minimum(w[:k], r)
            if fall:
                w[n - k :] = torch.minimum(w[n - k :], r.flip(0))
        return w

    wy = ramp(height, top, bottom)
    wx = ramp(width, left, right)
    return (wy[:, None] * wx[None, :]).to(torch.float32)[None]


def _autocast(device: torch.device, precision: str | None):
    if precision not in _PRECISIONS:
        raise HDRZooError(f"merge: precision must be one of fp32, bf16, fp16; got {precision!r}")
    dtype = _PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if device.type == "cpu" and dtype == torch.float16:
        raise HDRZooError("merge: fp16 autocast needs a GPU; use precision='bf16' on CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


# Compiled forwards, one per model instance. Kept outside the module so that its state dict
# and checkpoints stay free of the compiled wrapper.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(module):
    if module not in _COMPILED:
        _COMPILED[module] = torch.compile(module, dynamic=True)
    return _COMPILED[module]


def _run_padded(
    runner, module, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor
) -> torch.Tensor:
    """``runner`` (the model or its compiled forward) on ``ldr (1, N, 3, h, w)`` padded to the
    model's size multiple; returns ``(3, h, w)`` float32."""
    h, w = ldr.shape[-2:]
    padded, _ = pad_to_multiple(ldr, module.size_multiple, mode="reflect")
    hdr = runner(padded, exposures, ref).hdr
    return crop(hdr, h, w)[0].float()


def merge(
    module: HDRModule,
    bracket: Any,
    exposures: Any = None,
    ref: int | None = None,
    tile: int | None = None,
    overlap: int = 64,
    device: str | torch.device | None = None,
    precision: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    compile: bool = False,
) -> torch.Tensor:
    """Merge one bracket into a linear HDR image with ``module`` (any model of the zoo).

    Args:
        module: an :class:`~hdrzoo.models.base.HDRModule` (e.g. from ``hdrzoo.load``).
        bracket: a :class:`~hdrzoo.Bracket`, ``(ldr, exposures)``, or ``ldr (N, 3, H, W)``
            in [0, 1] with ``exposures`` given.
        exposures: exposure times ``(N,)`` when ``bracket`` is bare frames.
        ref: reference frame index (overrides the bracket's).
        tile: tile size in pixels; ``None`` runs the whole image at once. Tiles overlap by
            ``overlap`` pixels and are blended with a sin^2 window, so no seams appear.
        overlap: shared pixels between neighbouring tiles (must be < ``tile``).
        device: where to run (moves the model there); default: the model's device.
        precision: ``None``/``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 on GPU only).
        max_pixels: untiled inputs larger than this raise an error suggesting ``tile``;
            ``None`` disables the check.
        compile: run the network through ``torch.compile`` (compiled once per model and
            reused; the first call pays the compilation, worthwhile on GPUs and for many
            scenes of one size).

    Returns:
        Linear HDR ``(3, H, W)`` float32 on the CPU, in units where the shortest exposure is 1.
    """
    bracket = as_bracket(bracket, exposures, ref)
    name = bracket.name or "input"
    check_frame_count(module.net, bracket.num_frames, what=name)
    height, width = bracket.size
    if not _is_int(overlap):
        raise InputSizeError(f"overlap must be a whole number of pixels, got {overlap!r}")
    if max_pixels is not None and not _is_int(max_pixels):
        raise InputSizeError(f"max_pixels must be a whole number or None, got {max_pixels!r}")
    if tile is not None:
        if not _is_int(tile) or tile < 1:
            raise InputSizeError(f"tile must be a positive number of pixels, got {tile!r}")
        if not 0 <= overlap < tile:
            raise InputSizeError(f"overlap ({overlap}) must be in [0, tile) with tile = {tile}")
    elif max_pixels is not None and height * width > max_pixels:
        raise InputSizeError(
            f"{name}: {height}x{width} = {height * width / 1e6:.1f} MP is too large to merge in one piece "
            f"(limit {max_pixels / 1e6:.0f} MP); pass tile=1024 (CLI: --tile 1024) to bound memory, "
            "or max_pixels=None if you know it fits"
        )

    target = _resolve_device(module, device)
    was_training = module.training
    module.eval()
    ldr = bracket.ldr.to(target)[None]
    times = bracket.exposures.to(target)[None]
    ref_t = torch.tensor([bracket.ref], device=target)
    try:
        with torch.inference_mode(), _autocast(target, precision):
            runner = _compiled(module) if compile else module
            if tile is None or (height <= tile and width <= tile):
                hdr = _run_padded(runner, module, ldr, times, ref_t)
            else:
                hdr = _merge_tiled(runner, module, ldr, times, ref_t, tile, overlap)
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in str(err):
            raise
        raise InputSizeError(
            f"{name}: out of memory at {height}x{width}{'' if tile is None else f' with tile={tile}'}; "
            "pass a smaller tile (e.g. tile=512)"
        ) from err
    finally:
        module.train(was_training)
    return hdr.cpu()


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _resolve_device(module, device: str | torch.device | None) -> torch.device:
    """The device to merge on (moving the model there); the model's own device by default."""
    if device is None:
        return next((p.device for p in module.parameters()), torch.device("cpu"))
    try:
        target = torch.device(device)
        module.to(target)
    except (RuntimeError, TypeError, AssertionError) as err:
        raise HDRZooError(
            f"device {device!r} is not usable here ({err}); use 'cpu' or an available 'cuda:N'"
        ) from err
    return target


def _merge_tiled(runner, module, ldr, times, ref_t, tile: int, overlap: int) -> torch.Tensor:
    height, width = ldr.shape[-2:]
    out = torch.zeros(3, height, width, device=ldr.device)
    total = torch.zeros(1, height, width, device=ldr.device)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    for y in ys:
        for x in xs:
            th, tw = min(tile, height), min(tile, width)
            piece = ldr[..., y : y + th, x : x + tw]
            hdr = _run_padded(runner, module, piece, times, ref_t)
            window = blend_window(
                th, tw, overlap, top=y > 0, bottom=y + th < height, left=x > 0, right=x + tw < width
            ).to(ldr.device)
            out[:, y : y + th, x : x + tw] += hdr * window
            total[:, y : y + th, x : x + tw] += window
    return out / total
