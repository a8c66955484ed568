"""Exact tiling of a local computation: each tile computed on a window grown by a halo.

A stack of stride-1 convolutions and pointwise operations computes each output pixel from
the input pixels within its receptive radius ``R``. Computing the output tile by tile, each
tile from its window grown by ``R`` pixels on every side that is not an image border (the
"halo"), then keeping only the tile, gives the whole-image result exactly: at an image
border the window's zero padding is the image's own. Peak memory then follows the tile,
not the image, at the price of recomputing the halos.

This is not ``merge(tile=...)`` (:mod:`hdrzoo.inference`), which runs a whole network on
overlapping tiles and blends them: that is approximate for networks with global context
(flow, normalisation); this is exact, for the local part of a network only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hdrzoo.errors import InputSizeError

__all__ = ["HaloTile", "receptive_radius", "halo_tiles", "tile_shape_for", "map_halo_tiles"]


@dataclass(frozen=True)
class HaloTile:
    """One tile ``rows x cols`` of the output and the ``window`` it is computed from.

    ``rows``, ``cols``: the tile (``slice(start, stop)`` on the image); ``window_rows``,
    ``window_cols``: the tile grown by the halo, clipped to the image.
    """

    rows: slice
    cols: slice
    window_rows: slice
    window_cols: slice

    @property
    def crop(self) -> tuple[slice, slice]:
        """The tile inside the window's output: ``window_output[..., crop[0], crop[1]]``."""
        top = self.rows.start - self.window_rows.start
        left = self.cols.start - self.window_cols.start
        return (
            slice(top, top + self.rows.stop - self.rows.start),
            slice(left, left + self.cols.stop - self.cols.start),
        )


def receptive_radius(*modules: nn.Module) -> int:
    """Receptive radius of a chain of stride-1 convolutions: the sum of their reaches.

    A convolution with kernel ``k`` and dilation ``d`` reads ``d (k - 1) / 2`` pixels to each
    side; through a chain, reaches add up. The sum over every ``nn.Conv2d`` in ``modules`` is
    exact for a plain chain and an upper bound when some of them sit in parallel (dense or
    residual connections), so it is always a safe halo for :func:`map_halo_tiles`.

    Args:
        modules: networks made of stride-1 ``nn.Conv2d`` layers and pointwise operations.

    Returns:
        ``R`` in pixels (the larger of the vertical and horizontal reaches).

    Examples:
        >>> receptive_radius(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 5, padding=4, dilation=2))
        5
    """
    reach_h = reach_w = 0
    for module in modules:
        for conv in module.modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            if conv.stride != (1, 1):
                raise InputSizeError(
                    f"receptive_radius: {conv} has stride {conv.stride}; halo tiling needs "
                    "stride-1 convolutions"
                )
            kernel_h, kernel_w = conv.kernel_size
            reach_h += conv.dilation[0] * (kernel_h - 1) // 2
            reach_w += conv.dilation[1] * (kernel_w - 1) // 2
    return max(reach_h, reach_w)


def _starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile))


def halo_tiles(height: int, width: int, tile: tuple[int, int], halo: int) -> list[HaloTile]:
    """Non-overlapping tiles covering ``height x width`` (row-major), each with its window.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        tile: ``(tile_h, tile_w)`` in pixels; the last row and column of tiles may be smaller.
        halo: pixels added on each side of a tile (clipped at the image borders).

    Returns:
        The tiles, row by row.

    Examples:
        >>> [(t.rows, t.window_rows) for t in halo_tiles(10, 4, (6, 4), halo=2)]
        [(slice(0, 6, None), slice(0, 8, None)), (slice(6, 10, None), slice(4, 10, None))]
    """
    tile_h, tile_w = tile
    if min(height, width, tile_h, tile_w) < 1 or halo < 0:
        raise InputSizeError(
            f"halo_tiles: need a non-empty image and tile and halo >= 0, got image "
            f"{height}x{width}, tile {tile_h}x{tile_w}, halo {halo}"
        )
    tiles = []
    for top in _starts(height, tile_h):
        bottom = min(top + tile_h, height)
        for left in _starts(width, tile_w):
            right = min(left + tile_w, width)
            tiles.append(
                HaloTile(
                    rows=slice(top, bottom),
                    cols=slice(left, right),
                    window_rows=slice(max(top - halo, 0), min(bottom + halo, height)),
                    window_cols=slice(max(left - halo, 0), min(right + halo, width)),
                )
            )
    return tiles


def tile_shape_for(height: int, width: int, pixels: int, halo: int) -> tuple[int, int]:
    """The tile splitting ``height x width`` into the fewest windows of at most ``pixels``.

    A window is a tile grown by ``halo`` on both sides (clipped to the image). Tiles split
    each axis evenly (``ceil(H / rows)``, ``ceil(W / cols)``), so no thin leftover tile
    carries a full halo; among splits into equally many tiles, the squarest wins. The
    whole image when it fits.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        pixels: most pixels one window may hold (at least ``(1 + 2 halo)^2``, or the image).
        halo: pixels added on each side of a tile.

    Returns:
        ``(tile_h, tile_w)``.

    Examples:
        >>> tile_shape_for(100, 100, 10_000, halo=5)
        (100, 100)
        >>> tile_shape_for(1000, 1504, 174_762, halo=26)
        (334, 376)
    """
    if height * width <= pixels:
        return height, width
    best: tuple[int, float, int, int] | None = None
    for rows in range(1, height + 1):
        tile_h = math.ceil(height / rows)
        window_w = pixels // min(height, tile_h + 2 * halo)
        if window_w >= width:
            cols = 1
        elif window_w - 2 * halo >= 1:
            cols = math.ceil(width / (window_w - 2 * halo))
        else:
            continue
        tile_w = math.ceil(width / cols)
        candidate = (rows * cols, abs(math.log(tile_h / tile_w)), tile_h, tile_w)
        best = candidate if best is None else min(best, candidate)
    if best is None:
        raise InputSizeError(
            f"tile_shape_for: windows of {pixels} pixels cannot hold a tile with a halo of "
            f"{halo}; allow at least {(1 + 2 * halo) ** 2} pixels"
        )
    return best[2], best[3]


def map_halo_tiles(
    fn: Callable[[slice, slice], Sequence[torch.Tensor]],
    height: int,
    width: int,
    tile: tuple[int, int],
    halo: int,
) -> list[torch.Tensor]:
    """Compute a local function tile by tile and assemble its full-size outputs.

    ``fn(window_rows, window_cols)`` computes its outputs on one window of the image (it
    slices its own inputs, so it may also read outside the window: a backward warp gathers
    from anywhere). Each output ``(..., h_window, w_window)`` is cropped to its tile and
    written into a full-size ``(..., height, width)`` result. Equal to
    ``fn(slice(0, height), slice(0, width))`` when ``halo`` is at least ``fn``'s receptive
    radius (:func:`receptive_radius`).

    Args:
        fn: ``(rows, cols) -> outputs``, each ``(..., rows, cols)`` on the window.
        height: image height in pixels.
        width: image width in pixels.
        tile: ``(tile_h, tile_w)``, e.g. from :func:`tile_shape_for`.
        halo: pixels of context on each side of a tile.

    Returns:
        ``fn``'s outputs, each ``(..., height, width)``.

    Examples:
        >>> x, conv = torch.rand(1, 2, 9, 7), nn.Conv2d(2, 3, 3, padding=1)
        >>> tiled = map_halo_tiles(lambda r, c: [conv(x[..., r, c])], 9, 7, (4, 3), halo=1)[0]
        >>> bool(torch.allclose(tiled, conv(x), atol=1e-6))
        True
    """
    results: list[torch.Tensor] = []
    for piece in halo_tiles(height, width, tile, halo):
        outputs = fn(piece.window_rows, piece.window_cols)
        if not results:
            results = [out.new_empty(*out.shape[:-2], height, width) for out in outputs]
        crop_rows, crop_cols = piece.crop
        for result, out in zip(results, outputs, strict=True):
            result[..., piece.rows, piece.cols] = out[..., crop_rows, crop_cols]
    return results
