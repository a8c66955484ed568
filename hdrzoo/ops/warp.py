"""Backward warping of images or feature maps by a dense optical flow.

One warp for the whole zoo. Its arithmetic (a ``linspace`` base grid in normalised
coordinates, the flow divided by ``(W - 1) / 2`` and ``(H - 1) / 2``, bilinear
``grid_sample`` with border padding and ``align_corners=True``) is the official SAFNet
warp's, so official checkpoints reproduce their outputs through it.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from hdrzoo.errors import InputSizeError

__all__ = ["warp", "base_grid"]


@lru_cache(maxsize=16)
def _cached_base_grid(
    height: int, width: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    # Built on the CPU in float32 (or float64), as the official warp does, then moved, so
    # float32 results are bit-identical whatever the device. Created outside inference mode
    # so a grid first built under `torch.inference_mode` can still be used in training.
    build_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    with torch.inference_mode(False), torch.no_grad():
        xs = torch.linspace(-1.0, 1.0, width, dtype=build_dtype)
        ys = torch.linspace(-1.0, 1.0, height, dtype=build_dtype)
        grid = torch.stack(
            (xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)),
            dim=-1,
        )
        return grid.to(device=device, dtype=dtype).unsqueeze(0).contiguous()


def base_grid(
    height: int, width: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The identity sampling grid of ``grid_sample`` with ``align_corners=True`` (cached).

    Args:
        height: H in pixels.
        width: W in pixels.
        device: device of the grid.
        dtype: floating dtype of the grid.

    Returns:
        Tensor ``(1, H, W, 2)``: ``[..., 0]`` = ``linspace(-1, 1, W)`` along x,
        ``[..., 1]`` = ``linspace(-1, 1, H)`` along y. Shared between calls: do not modify it
        in place.

    Examples:
        >>> base_grid(2, 3)[0, :, :, 0]
        tensor([[-1.,  0.,  1.],
                [-1.,  0.,  1.]])
    """
    return _cached_base_grid(int(height), int(width), torch.device(device), dtype)


def warp(
    x: torch.Tensor, flow: torch.Tensor, origin: tuple[int, int] | None = None
) -> torch.Tensor:
    r"""Backward-warp ``x`` by ``flow``: ``out(p) = x(p + flow(p))``, bilinear.

    The flow lives on the output grid and is in pixels. Samples outside the image take the
    value of the nearest border pixel (``padding_mode='border'``); pixel centres are at
    integer coordinates (``align_corners=True``), so an integer flow is an exact shift.

    Args:
        x: image or features to sample, ``(B, C, H, W)``, floating point.
        flow: displacement ``(B, 2, H, W)`` in pixels; channel 0 is horizontal (+ = right),
            channel 1 vertical (+ = down). Same dtype and device as ``x``. With ``origin``,
            ``(B, 2, h, w)``: the flow of a window of ``x``'s grid.
        origin: ``(top, left)`` of that window: the output is ``warp(x, full_flow)``'s
            ``[..., top : top + h, left : left + w]`` (bit for bit) for any ``full_flow``
            that equals ``flow`` on the window, computed without the rest of the grid (for
            halo tiling, :mod:`hdrzoo.ops.halo`). ``None``: the flow covers the whole grid.

    Returns:
        Warped tensor ``(B, C, H, W)``, or ``(B, C, h, w)`` with ``origin``.

    Examples:
        >>> x = torch.arange(6.0).view(1, 1, 2, 3)
        >>> flow = torch.zeros(1, 2, 2, 3)
        >>> flow[:, 0] = 1.0  # sample one pixel to the right
        >>> warp(x, flow)
        tensor([[[[1., 2., 2.],
                  [4., 5., 5.]]]])
    """
    if x.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise InputSizeError(
            f"warp expects x (B, C, H, W) and flow (B, 2, H, W); got x {tuple(x.shape)} "
            f"and flow {tuple(flow.shape)}"
        )
    height, width = x.shape[-2:]
    top, left = (0, 0) if origin is None else (int(origin[0]), int(origin[1]))
    rows, cols = flow.shape[-2:]
    window_fits = top >= 0 and left >= 0 and top + rows <= height and left + cols <= width
    if (
        x.shape[0] != flow.shape[0]
        or not window_fits
        or (origin is None and (rows, cols) != (height, width))
    ):
        raise InputSizeError(
            f"warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} must share batch size and "
            "spatial size (or, with origin, the flow must cover a window inside x's grid, got "
            f"origin {origin}); resize the flow (and scale its values) to the image first"
        )
    # The window of the whole grid, so that each sampling position is the same number.
    grid = base_grid(height, width, flow.device, flow.dtype)[
        :, top : top + rows, left : left + cols
    ]
    # A 1-pixel axis has a single normalised coordinate; any finite scale leaves it there.
    scale_x = (width - 1.0) / 2.0 if width > 1 else 1.0
    scale_y = (height - 1.0) / 2.0 if height > 1 else 1.0
    offset = torch.stack((flow[:, 0] / scale_x, flow[:, 1] / scale_y), dim=-1)
    return F.grid_sample(
        x, grid + offset, mode="bilinear", padding_mode="border", align_corners=True
    )
