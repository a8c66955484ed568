"""RAFT-style iterative optical flow (Teed & Deng, ECCV 2020; MODELS.md 2.4).

The pieces of RAFT-small as separate, model-agnostic parts:

- :class:`BottleneckBlock` and :class:`FlowEncoder`: features at 1/8 resolution, optionally
  sharing information between the streams of a sample by max-pool fusion (2.5);
- :func:`corr_pyramid` and :func:`corr_lookup`: the all-pairs correlation volume and its
  pyramid, sampled around the current correspondence of every pixel; and
  :func:`corr_lookup_on_demand`, the same numbers computed from the features without
  storing the ``(h w)^2`` volume;
- :class:`MotionEncoder`, :class:`ConvGRU`, :class:`FlowHead`, :class:`UpdateBlock`: one
  recurrent refinement step;
- :func:`iterate_flow`: the refinement loop, and :func:`upsample_flow` to full resolution.

Coordinates are absolute pixel positions ``(x, y)`` with pixel centres at integers, and
flows are in pixels, channel 0 horizontal (+ right), channel 1 vertical (+ down), at the
resolution of the tensor that holds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.streams import StreamFusion

__all__ = [
    "coords_grid",
    "corr_pyramid",
    "corr_lookup",
    "corr_lookup_on_demand",
    "pool_level",
    "BottleneckBlock",
    "FlowEncoder",
    "MotionEncoder",
    "ConvGRU",
    "FlowHead",
    "UpdateBlock",
    "iterate_flow",
    "upsample_flow",
]


def coords_grid(
    batch: int,
    height: int,
    width: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The pixel coordinates of every position: ``out[b, 0, y, x] = x``, ``out[b, 1, y, x] = y``.

    Args:
        batch: ``B``.
        height: ``h`` in pixels.
        width: ``w`` in pixels.
        device: device of the result.
        dtype: floating dtype of the result.

    Returns:
        ``(B, 2, h, w)``.

    Examples:
        >>> coords_grid(1, 2, 3)[0, 0]
        tensor([[0., 1., 2.],
                [0., 1., 2.]])
    """
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=0)
    return grid[None].expand(batch, 2, height, width).contiguous()


def pool_level(x: torch.Tensor) -> torch.Tensor:
    """The next pyramid level: ``avg_pool2d(x, 2, 2)`` (floor); an axis of length 1 is kept.

    Keeping a 1-pixel axis lets tiny inputs (1/8 maps of 1 or 2 pixels) build every level
    instead of failing; for maps of at least 2 x 2 this is exactly ``avg_pool2d(x, 2, 2)``.

    Args:
        x: ``(B, C, h, w)``.

    Returns:
        ``(B, C, h', w')`` with ``h' = h // 2`` (``1`` when ``h == 1``), likewise ``w'``.
    """
    kernel = (min(2, x.shape[-2]), min(2, x.shape[-1]))
    return F.avg_pool2d(x, kernel, kernel)


def _check_pair(f_ref: torch.Tensor, f_i: torch.Tensor) -> None:
    if f_ref.ndim != 4 or f_ref.shape != f_i.shape:
        raise InputSizeError(
            "correlation needs two feature maps (B, D, h, w) of one shape, got "
            f"{tuple(f_ref.shape)} and {tuple(f_i.shape)}"
        )


def corr_pyramid(f_ref: torch.Tensor, f_i: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """All-pairs correlation volume and its average-pooled pyramid.

    ``C(p, q) = <f_ref(p), f_i(q)> / sqrt(D)`` for every source position ``p`` and target
    position ``q``. Memory: ``(h w)^2`` values per pair (4/3 of that for the pyramid); see
    :func:`corr_lookup_on_demand` for large maps.

    Args:
        f_ref: features of the reference (source), ``(B, D, h, w)``.
        f_i: features of the other frame (target), ``(B, D, h, w)``.
        levels: number of pyramid levels.

    Returns:
        ``levels`` tensors; level 0 is ``(B * h * w, 1, h, w)`` with row ``b h w + y w + x``
        holding ``C((x, y), .)`` over the target grid, and level ``k + 1`` is
        :func:`pool_level` of level ``k`` (target axes pooled).

    Examples:
        >>> pyramid = corr_pyramid(torch.rand(1, 8, 4, 6), torch.rand(1, 8, 4, 6), levels=2)
        >>> [tuple(level.shape) for level in pyramid]
        [(24, 1, 4, 6), (24, 1, 2, 3)]
    """
    _check_pair(f_ref, f_i)
    batch, dim, height, width = f_ref.shape
    volume = torch.einsum("bdp,bdq->bpq", f_ref.flatten(2), f_i.flatten(2)) / math.sqrt(dim)
    pyramid = [volume.reshape(batch * height * width, 1, height, width)]
    for _ in range(levels - 1):
        pyramid.append(pool_level(pyramid[-1]))
    return pyramid


def _neighbourhood(radius: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Offsets ``(2r+1, 2r+1, 2)`` as ``(dx, dy)``, dy along the first axis (outer loop)."""
    steps = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack((dx, dy), dim=-1)


def _normalised(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # Pixel x -> (2x + 1) / w - 1 with align_corners=False samples exactly pixel x, like
    # 2x / (w - 1) - 1 with align_corners=True, and stays correct for a 1-pixel axis.
    x = (2.0 * points[..., 0] + 1.0) / width - 1.0
    y = (2.0 * points[..., 1] + 1.0) / height - 1.0
    return torch.stack((x, y), dim=-1)


def _check_coords(coords: torch.Tensor, batch: int, height: int, width: int) -> None:
    if coords.shape != (batch, 2, height, width):
        raise InputSizeError(
            f"coords must be (B, 2, h, w) = {(batch, 2, height, width)} pixel positions (x, y) "
            f"on the source grid, got {tuple(coords.shape)}"
        )


def corr_lookup(
    pyramid: Sequence[torch.Tensor], coords: torch.Tensor, radius: int = 3
) -> torch.Tensor:
    """Sample the correlation pyramid in a ``(2r+1)^2`` window around each correspondence.

    For source pixel ``p`` with current target position ``c(p)``, level ``k`` is sampled
    bilinearly at ``c(p) / 2^k + (dx, dy)`` for ``dy`` in ``-r..r`` (outer) and ``dx`` in
    ``-r..r`` (inner); points outside the level's map read zeros.

    Args:
        pyramid: output of :func:`corr_pyramid` for features of size ``(B, D, h, w)``.
        coords: target positions ``(B, 2, h, w)`` in pixels at the features' resolution,
            channel 0 = x, channel 1 = y.
        radius: ``r``.

    Returns:
        ``(B, levels * (2r+1)^2, h, w)``; channel ``k (2r+1)^2 + (dy + r)(2r+1) + (dx + r)``.

    Examples:
        >>> f = torch.rand(1, 8, 4, 4)
        >>> corr = corr_lookup(corr_pyramid(f, f, levels=2), coords_grid(1, 4, 4), radius=1)
        >>> corr.shape
        torch.Size([1, 18, 4, 4])
    """
    source_pixels, _, height, width = pyramid[0].shape
    batch = coords.shape[0]
    _check_coords(coords, batch, coords.shape[-2], coords.shape[-1])
    if source_pixels != batch * coords.shape[-2] * coords.shape[-1]:
        raise InputSizeError(
            f"coords {tuple(coords.shape)} do not match a pyramid of {source_pixels} source pixels"
        )
    side = 2 * radius + 1
    delta = _neighbourhood(radius, coords.device, coords.dtype)
    centres = coords.permute(0, 2, 3, 1).reshape(source_pixels, 1, 1, 2)
    samples = []
    for level_index, level in enumerate(pyramid):
        points = centres / 2**level_index + delta
        grid = _normalised(points, level.shape[-2], level.shape[-1])
        sampled = F.grid_sample(
            level, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        samples.append(sampled.view(batch, coords.shape[-2], coords.shape[-1], side * side))
    return torch.cat(samples, dim=-1).permute(0, 3, 1, 2).contiguous()


def corr_lookup_on_demand(
    f_ref: torch.Tensor,
    f_i: torch.Tensor,
    coords: torch.Tensor,
    levels: int = 4,
    radius: int = 3,
) -> torch.Tensor:
    """:func:`corr_lookup` of :func:`corr_pyramid` without building the correlation volume.

    Correlation is linear in ``f_i``, so pooling the volume over the target axes equals
    correlating with pooled features, and bilinear sampling of the volume equals bilinear
    interpolation of correlations with the pooled features at integer positions. The
    window's offsets are integers, so all ``(2r+1)^2`` samples around ``c(p) / 2^k`` share
    one fractional part: they interpolate the ``(2r+2)^2`` correlations
    ``<f_ref(p), pool^k(f_i)(floor(c(p) / 2^k) + (i, j))> / sqrt(D)`` (zero outside the map),
    ``i, j`` in ``-r..r+1``. The same numbers (to float rounding) with memory
    ``O(B D h w)`` instead of ``O(B (h w)^2)``: each step gathers one target row per source
    pixel, written into one preallocated result (no growing list of temporaries).

    Args:
        f_ref: source features ``(B, D, h, w)``.
        f_i: target features ``(B, D, h, w)``.
        coords: target positions ``(B, 2, h, w)`` in pixels (x, y).
        levels: pyramid levels.
        radius: ``r``.

    Returns:
        ``(B, levels * (2r+1)^2, h, w)`` in the channel order of :func:`corr_lookup`.

    Examples:
        >>> f, g = torch.rand(1, 8, 4, 4), torch.rand(1, 8, 4, 4)
        >>> c = coords_grid(1, 4, 4) + 0.3
        >>> a = corr_lookup(corr_pyramid(f, g, 2), c, 1)
        >>> bool(torch.allclose(a, corr_lookup_on_demand(f, g, c, 2, 1), atol=1e-6))
        True
    """
    _check_pair(f_ref, f_i)
    batch, dim, height, width = f_ref.shape
    _check_coords(coords, batch, height, width)
    side, span = 2 * radius + 1, 2 * radius + 2
    pixels = height * width
    source = f_ref.permute(0, 2, 3, 1).reshape(batch, pixels, dim)
    centres = coords.permute(0, 2, 3, 1).reshape(batch, pixels, 2)
    dtype = torch.result_type(f_ref, coords)
    out = f_ref.new_empty((batch, levels * side * side, pixels), dtype=dtype)
    scale = 1.0 / math.sqrt(dim)
    target = f_i
    for level in range(levels):
        if level:
            target = pool_level(target)
        level_h, level_w = target.shape[-2:]
        # Per sample, the target's pixels, then one zero row that every point outside the
        # map reads; the samples stacked, so that one row gather serves the whole batch.
        rows_per_sample = level_h * level_w + 1
        table = torch.cat(
            [target.permute(0, 2, 3, 1).reshape(batch, -1, dim), target.new_zeros(batch, 1, dim)],
            dim=1,
        ).view(-1, dim)
        first_row = torch.arange(batch, device=f_ref.device)[:, None] * rows_per_sample
        points = centres / 2**level
        corner = points.floor()
        fraction = points - corner
        corner = corner.long()
        # A fresh one per level: autograd keeps the previous level's for the backward pass.
        integer = f_ref.new_empty((batch, span, span, pixels))
        for j in range(span):
            y = corner[..., 1] + (j - radius)
            for i in range(span):
                x = corner[..., 0] + (i - radius)
                inside = (x >= 0) & (x < level_w) & (y >= 0) & (y < level_h)
                index = torch.where(inside, y * level_w + x, level_h * level_w) + first_row
                gathered = table.index_select(0, index.flatten()).view(batch, pixels, dim)
                integer[:, j, i] = torch.linalg.vecdot(gathered, source) * scale
        fx = fraction[:, None, None, :, 0]
        fy = fraction[:, None, None, :, 1]
        top = integer[:, :-1, :-1] * (1 - fx) + integer[:, :-1, 1:] * fx
        bottom = integer[:, 1:, :-1] * (1 - fx) + integer[:, 1:, 1:] * fx
        window = top * (1 - fy) + bottom * fy
        out[:, level * side * side : (level + 1) * side * side] = window.reshape(batch, -1, pixels)
    return out.view(batch, -1, height, width)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise InputSizeError(f"norm must be 'instance' or 'none', got {kind!r}")


class BottleneckBlock(nn.Module):
    """RAFT-small residual unit: 1x1 (C/4) -> 3x3 (C/4, stride) -> 1x1 (C), norm + ReLU after each.

    The shortcut is the identity, or a strided 1x1 conv + norm when the stride or the width
    changes; ``out = ReLU(shortcut(x) + branch(x))``.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C``; a multiple of 4.
        stride: stride of the 3x3 conv (1 or 2).
        norm: ``"instance"`` (``InstanceNorm2d(affine=False)``) or ``"none"``.

    Shapes:
        ``(B, C_in, H, W) -> (B, C, ceil(H / stride), ceil(W / stride))``.

    Examples:
        >>> BottleneckBlock(32, 64, stride=2)(torch.rand(1, 32, 8, 8)).shape
        torch.Size([1, 64, 4, 4])
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, norm: str = "instance"
    ) -> None:
        super().__init__()
        mid = out_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.norm1 = _norm(norm, mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1)
        self.norm2 = _norm(norm, mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.norm3 = _norm(norm, out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride), _norm(norm, out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        return F.relu(self.shortcut(x) + y)


class FlowEncoder(nn.Module):
    """RAFT-small feature / context encoder: features at 1/8 resolution.

    stem conv 3x3 stride 2 ``cin -> dims[0]`` + norm + ReLU (1/2); layer1: two units
    ``dims[0] -> dims[0]``; layer2: unit ``dims[0] -> dims[1]`` stride 2, unit
    ``dims[1] -> dims[1]`` (1/4); [``share``: max-pool stream fusion, a 1x1 conv]; layer3:
    unit ``dims[1] -> dims[2]`` stride 2, unit ``dims[2] -> dims[2]`` (1/8); [``share``:
    fusion]; conv 1x1 ``dims[2] -> cout``.

    Args:
        in_channels: ``cin``.
        out_channels: ``cout``.
        dims: widths of the three stages.
        norm: ``"instance"`` or ``"none"``.
        share: fuse the streams of each sample after layers 2 and 3 (:mod:`hdrzoo.ops.streams`).

    Shapes:
        ``x (B * n, cin, H, W)`` with the ``n = streams`` streams of each sample
        consecutive -> ``(B * n, cout, ceil(H / 8), ceil(W / 8))``. With ``norm="instance"``
        the 1/8 map must have more than one pixel.

    Examples:
        >>> encoder = FlowEncoder(3, 16, dims=(8, 8, 16), share=True)
        >>> encoder(torch.rand(4, 3, 32, 32), streams=2).shape
        torch.Size([4, 16, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dims: Sequence[int] = (32, 64, 96),
        norm: str = "instance",
        share: bool = False,
    ) -> None:
        super().__init__()
        d1, d2, d3 = dims
        self.conv1 = nn.Conv2d(in_channels, d1, 3, stride=2, padding=1)
        self.norm1 = _norm(norm, d1)
        self.layer1 = nn.Sequential(
            BottleneckBlock(d1, d1, 1, norm), BottleneckBlock(d1, d1, 1, norm)
        )
        self.layer2 = nn.Sequential(
            BottleneckBlock(d1, d2, 2, norm), BottleneckBlock(d2, d2, 1, norm)
        )
        self.layer3 = nn.Sequential(
            BottleneckBlock(d2, d3, 2, norm), BottleneckBlock(d3, d3, 1, norm)
        )
        self.share = share
        self.fuse2 = StreamFusion(d2) if share else None
        self.fuse3 = StreamFusion(d3) if share else None
        self.conv2 = nn.Conv2d(d3, out_channels, 1)

    def forward(self, x: torch.Tensor, streams: int = 1) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        if self.fuse2 is not None:
            x = self.fuse2(x, streams)
        x = self.layer3(x)
        if self.fuse3 is not None:
            x = self.fuse3(x, streams)
        return self.conv2(x)


class MotionEncoder(nn.Module):
    """RAFT-small motion encoder: correlation and current flow -> motion features + flow.

    ``c = ReLU(conv1x1 corr -> 96)``; ``f = ReLU(conv3x3 64 -> 32(ReLU(conv7x7 2 -> 64(flow))))``;
    ``m = ReLU(conv3x3 128 -> 80([c, f]))``; output ``[m, flow]`` (82 channels). The widths
    ``(96, 64, 32, 80)`` are RAFT-small's; ``widths`` changes them (e.g. for tiny tests).

    Args:
        corr_channels: channels of the correlation lookup (``levels (2r+1)^2``).
        widths: ``(corr, flow hidden, flow, motion)`` output widths of the four convs.

    Shapes:
        ``flow (B, 2, h, w)``, ``corr (B, corr_channels, h, w)`` ->
        ``(B, widths[3] + 2, h, w)``.

    Examples:
        >>> MotionEncoder(196)(torch.rand(1, 2, 4, 4), torch.rand(1, 196, 4, 4)).shape
        torch.Size([1, 82, 4, 4])
    """

    def __init__(self, corr_channels: int, widths: Sequence[int] = (96, 64, 32, 80)) -> None:
        super().__init__()
        corr_width, flow_hidden, flow_width, motion_width = widths
        self.convc1 = nn.Conv2d(corr_channels, corr_width, 1)
        self.convf1 = nn.Conv2d(2, flow_hidden, 7, padding=3)
        self.convf2 = nn.Conv2d(flow_hidden, flow_width, 3, padding=1)
        self.conv = nn.Conv2d(corr_width + flow_width, motion_width, 3, padding=1)
        self.out_channels = motion_width + 2

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        c = F.relu(self.convc1(corr))
        f = F.relu(self.convf2(F.relu(self.convf1(flow))))
        motion = F.relu(self.conv(torch.cat([c, f], dim=1)))
        return torch.cat([motion, flow], dim=1)


class ConvGRU(nn.Module):
    """Convolutional GRU with 3x3 gates.

    ``z = sigmoid(conv([h, x]))``, ``r = sigmoid(conv([h, x]))``,
    ``q = tanh(conv([r h, x]))``, ``h' = (1 - z) h + z q``.

    Args:
        hidden_channels: ``|h|``.
        input_channels: ``|x|``.

    Shapes:
        ``h (B, |h|, H, W)``, ``x (B, |x|, H, W)`` -> ``(B, |h|, H, W)``.

    Examples:
        >>> ConvGRU(4, 3)(torch.zeros(1, 4, 5, 5), torch.rand(1, 3, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self, hidden_channels: int, input_channels: int) -> None:
        super().__init__()
        both = hidden_channels + input_channels
        self.convz = nn.Conv2d(both, hidden_channels, 3, padding=1)
        self.convr = nn.Conv2d(both, hidden_channels, 3, padding=1)
        self.convq = nn.Conv2d(both, hidden_channels, 3, padding=1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1.0 - z) * h + z * q


class FlowHead(nn.Module):
    """``conv3x3 hidden -> mid``, ReLU, ``conv3x3 mid -> 2``: a flow increment in pixels.

    Shapes:
        ``(B, hidden, H, W) -> (B, 2, H, W)``.

    Examples:
        >>> FlowHead(80)(torch.rand(1, 80, 3, 3)).shape
        torch.Size([1, 2, 3, 3])
    """

    def __init__(self, hidden_channels: int, mid_channels: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(hidden_channels, mid_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(mid_channels, 2, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(h)))


class UpdateBlock(nn.Module):
    """One RAFT-small refinement step: motion encoder, ConvGRU on ``[context, motion]``, flow head.

    Args:
        corr_channels: channels of the correlation lookup.
        context_channels: channels of the context features.
        hidden_channels: channels of the GRU state.
        motion_widths: widths of the :class:`MotionEncoder` (RAFT-small's by default).
        head_channels: hidden width of the :class:`FlowHead`.

    Shapes:
        ``hidden (B, hidden, h, w)``, ``context (B, context, h, w)``,
        ``corr (B, corr_channels, h, w)``, ``flow (B, 2, h, w)`` ->
        ``(hidden', delta)`` with ``delta (B, 2, h, w)`` in pixels.

    Examples:
        >>> block = UpdateBlock(18, 8, 16)
        >>> h, delta = block(torch.zeros(1, 16, 4, 4), torch.rand(1, 8, 4, 4),
        ...                  torch.rand(1, 18, 4, 4), torch.zeros(1, 2, 4, 4))
        >>> delta.shape
        torch.Size([1, 2, 4, 4])
    """

    def __init__(
        self,
        corr_channels: int,
        context_channels: int = 64,
        hidden_channels: int = 80,
        motion_widths: Sequence[int] = (96, 64, 32, 80),
        head_channels: int = 128,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.context_channels = context_channels
        self.motion = MotionEncoder(corr_channels, motion_widths)
        self.gru = ConvGRU(hidden_channels, context_channels + self.motion.out_channels)
        self.head = FlowHead(hidden_channels, head_channels)

    def forward(
        self,
        hidden: torch.Tensor,
        context: torch.Tensor,
        corr: torch.Tensor,
        flow: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        motion = self.motion(flow, corr)
        hidden = self.gru(hidden, torch.cat([context, motion], dim=1))
        return hidden, self.head(hidden)


def iterate_flow(
    update: UpdateBlock,
    lookup: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    context: torch.Tensor,
    iterations: int,
) -> torch.Tensor:
    """RAFT's refinement loop from zero flow.

    ``coords1 = coords0`` (the pixel grid); each iteration: ``coords1 <- detach(coords1)``,
    ``corr = lookup(coords1)``, ``(hidden, delta) = update(hidden, context, corr,
    coords1 - coords0)``, ``coords1 <- coords1 + delta``. Detaching makes each step learn
    a correction of the previous estimate (as in RAFT).

    Args:
        update: the refinement step.
        lookup: ``coords (B, 2, h, w) -> corr (B, K, h, w)``, e.g. ``functools.partial`` of
            :func:`corr_lookup` on a pyramid, or of :func:`corr_lookup_on_demand`.
        hidden: initial GRU state ``(B, hidden, h, w)``.
        context: context features ``(B, context, h, w)``.
        iterations: number of refinement steps (0 returns zero flow).

    Returns:
        Flow ``(B, 2, h, w)`` in pixels at the features' resolution: source pixel ``p``
        corresponds to target position ``p + flow(p)``.

    Examples:
        >>> f = torch.rand(1, 8, 4, 4)
        >>> pyramid = corr_pyramid(f, f, levels=1)
        >>> flow = iterate_flow(UpdateBlock(9, 8, 16), lambda c: corr_lookup(pyramid, c, 1),
        ...                     torch.zeros(1, 16, 4, 4), torch.rand(1, 8, 4, 4), iterations=2)
        >>> flow.shape
        torch.Size([1, 2, 4, 4])
    """
    batch, _, height, width = hidden.shape
    coords0 = coords_grid(batch, height, width, hidden.device, hidden.dtype)
    coords1 = coords0
    for _ in range(iterations):
        coords1 = coords1.detach()
        corr = lookup(coords1)
        hidden, delta = update(hidden, context, corr, coords1 - coords0)
        coords1 = coords1 + delta
    return coords1 - coords0


def upsample_flow(flow: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Bilinear upsampling of a flow to ``factor`` times its size, values scaled by ``factor``.

    ``factor * interpolate(flow, size=(factor h, factor w), bilinear, align_corners=True)``
    (MODELS.md 2.4; no convex upsampler).

    Args:
        flow: ``(B, 2, h, w)`` in pixels at the low resolution.
        factor: the size ratio (8 for RAFT features).

    Returns:
        ``(B, 2, factor h, factor w)`` in pixels at the high resolution.

    Examples:
        >>> up = upsample_flow(torch.ones(1, 2, 2, 2), 8)
        >>> up.shape, round(float(up.mean()), 4)
        (torch.Size([1, 2, 16, 16]), 8.0)
    """
    height, width = flow.shape[-2:]
    size = (height * factor, width * factor)
    return factor * F.interpolate(flow, size=size, mode="bilinear", align_corners=True)
