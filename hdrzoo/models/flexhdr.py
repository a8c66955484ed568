"""FlexHDR (Catley-Chandar et al., "FlexHDR: Modelling Alignment and Exposure Uncertainties
for Flexible HDR Imaging", CVPR 2022 / IEEE TIP 2022), built as MODELS.md section 5 specifies.

Any number of frames, any reference, and an output that does not depend on the order of the
frames: every frame is a stream through shared weights, and streams meet only through
element-wise maxima. Per frame: a shallow encoder and an exposure confidence (5.1-5.2); a
RAFT-style flow to the reference (5.3); warped features and an alignment uncertainty (5.4);
a 64-channel attention map (5.5); a grouped residual dense merge, max-pooled over the
streams (5.6). No official code or weights exist: see ``docs/models/flexhdr.md``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from hdrzoo.errors import InputSizeError, ModelError
from hdrzoo.losses import MaskedPhotometric, MuLawL1, VGGPerceptual
from hdrzoo.models.base import HDRModule, NetOutput
from hdrzoo.models.registry import register_model
from hdrzoo.ops.flow import (
    FlowEncoder,
    UpdateBlock,
    corr_lookup,
    corr_lookup_on_demand,
    corr_pyramid,
    iterate_flow,
    upsample_flow,
)
from hdrzoo.ops.halo import map_halo_tiles, receptive_radius, tile_shape_for
from hdrzoo.ops.rdb import GRDB
from hdrzoo.ops.streams import StreamFusion, stream_max
from hdrzoo.ops.tonemap import GAMMA, linearize, mu_law
from hdrzoo.ops.warp import warp

__all__ = ["FlexHDR", "FlexHDRModule", "ExposureConfidence", "FlowNet", "AttentionNet", "MergeNet"]

FEATURES = 64
"""Channels of the shallow features F_i and of the attention and merging networks."""
CORR_LEVELS = 4
CORR_RADIUS = 3
HIDDEN, CONTEXT = 80, 64
"""GRU state and context channels of the flow update block (RAFT-small-like)."""
CORRELATIONS = ("auto", "all_pairs", "on_demand")
ALL_PAIRS_MAX_BYTES = 512 * 2**20
"""``correlation="auto"`` builds the all-pairs pyramid only below this size (all pairs
together); above, it looks the correlation up on demand (same numbers, little memory)."""
HEAD_PIXELS = 3 * 2**16
"""Default ``head_pixels``: most frame-pixels (frames x pixels, halos included) the
attention and merge networks process at once. Their activations peak at about 4 KB per
frame-pixel (the dense blocks' concatenations and oneDNN's copies of them), so about
0.8 GB per tile."""


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def _probability_logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class ExposureConfidence(nn.Module):
    """Per-pixel confidence that a frame is well exposed (MODELS.md 5.2).

    ``E = clamp(min(x / alpha, 1, (1 - x) / (1 - beta)), 0, 1)`` with ``x`` the RGB mean of
    the LDR frame: 1 on the plateau ``[alpha, beta]``, falling linearly to 0 at ``x = 0`` and
    ``x = 1``. ``alpha = 0.5 sigmoid(p_alpha)`` and ``beta = 0.5 + 0.5 sigmoid(p_beta)`` are
    learnable and shared by all frames, so ``0 < alpha < 0.5 < beta < 1`` always.

    Args:
        alpha: initial ``alpha`` in (0, 0.5).
        beta: initial ``beta`` in (0.5, 1).

    Shapes:
        ``ldr (B, 3, H, W)`` in [0, 1] -> ``(B, 1, H, W)`` in [0, 1].
    """

    def __init__(self, alpha: float = 0.1, beta: float = 0.9) -> None:
        super().__init__()
        if not (0.0 < alpha < 0.5 < beta < 1.0):
            raise ModelError(
                f"ExposureConfidence: need 0 < alpha < 0.5 < beta < 1, got {alpha}, {beta}"
            )
        self.p_alpha = nn.Parameter(torch.tensor(_probability_logit(2.0 * alpha)))
        self.p_beta = nn.Parameter(torch.tensor(_probability_logit(2.0 * beta - 1.0)))

    @property
    def alpha(self) -> torch.Tensor:
        """Lower well-exposedness threshold alpha in (0, 0.5), a scalar tensor."""
        return 0.5 * torch.sigmoid(self.p_alpha)

    @property
    def beta(self) -> torch.Tensor:
        """Upper well-exposedness threshold beta in (0.5, 1), a scalar tensor."""
        return 0.5 + 0.5 * torch.sigmoid(self.p_beta)

    def forward(self, ldr: torch.Tensor) -> torch.Tensor:
        x = ldr.mean(dim=1, keepdim=True)
        dark_side = x / self.alpha
        bright_side = (1.0 - x) / (1.0 - self.beta)
        return torch.minimum(dark_side, bright_side).clamp(0.0, 1.0)


class FlowNet(nn.Module):
    """Backward flows from the reference to every other frame (MODELS.md 5.3; 885,842 params).

    ``fnet`` encodes all streams (max-pool fusion after layers 2 and 3), ``cnet`` the
    reference alone (GRU state and context); RAFT-style refinement at 1/8 resolution on the
    all-pairs correlation (4 levels, radius 3), then bilinear x8 upsampling.
    """

    def __init__(self, in_channels: int = FEATURES + 1) -> None:
        super().__init__()
        self.fnet = FlowEncoder(in_channels, 128, norm="instance", share=True)
        self.cnet = FlowEncoder(in_channels, HIDDEN + CONTEXT, norm="none", share=False)
        self.update = UpdateBlock(CORR_LEVELS * (2 * CORR_RADIUS + 1) ** 2, CONTEXT, HIDDEN)

    def forward(
        self, x: torch.Tensor, streams: int, iterations: int, correlation: str = "auto"
    ) -> torch.Tensor:
        """Flows of the non-reference streams.

        Args:
            x: ``[F_i, E_i]`` of every stream, ``(B * n, 65, H, W)``, the reference first in
                each sample's ``n`` streams; H, W multiples of 8.
            streams: ``n`` (at least 2).
            iterations: refinement steps.
            correlation: ``"all_pairs"``, ``"on_demand"`` or ``"auto"``.

        Returns:
            ``(B * (n - 1), 2, H, W)`` in pixels: reference pixel ``p`` corresponds to
            ``p + O_i(p)`` in frame ``i``.
        """
        height, width = x.shape[-2:]
        batch = x.shape[0] // streams
        features = self.fnet(x, streams)
        dim, h, w = features.shape[1:]
        features = features.view(batch, streams, dim, h, w)
        others = features[:, 1:].reshape(-1, dim, h, w)
        reference = features[:, :1].expand(-1, streams - 1, -1, -1, -1).reshape(-1, dim, h, w)
        context = self.cnet(x.view(batch, streams, *x.shape[1:])[:, 0])
        hidden, context = context.split([HIDDEN, CONTEXT], dim=1)
        hidden = torch.tanh(hidden).repeat_interleave(streams - 1, dim=0)
        context = F.relu(context).repeat_interleave(streams - 1, dim=0)
        if correlation == "auto":
            size = 4 / 3 * (h * w) ** 2 * others.shape[0] * others.element_size()
            correlation = "all_pairs" if size <= ALL_PAIRS_MAX_BYTES else "on_demand"
        if correlation == "all_pairs":
            pyramid = corr_pyramid(reference, others, CORR_LEVELS)
            lookup = functools.partial(corr_lookup, pyramid, radius=CORR_RADIUS)
        else:
            lookup = functools.partial(
                corr_lookup_on_demand, reference, others, levels=CORR_LEVELS, radius=CORR_RADIUS
            )
        flow = iterate_flow(self.update, lookup, hidden, context, iterations)
        return upsample_flow(flow, height // h)


class AttentionNet(nn.Module):
    """Shallow encoder, exposure confidence and attention maps (MODELS.md 5.1, 5.2, 5.5; 336,194 params).

    Per stream, ``a = [F_i^w, F_r, U_i, E_i^w]`` (193 ch) -> conv 3x3 -> fusion 3x3 -> conv
    3x3 -> fusion 3x3 (LReLU after each) -> conv 3x3 + sigmoid: a 64-channel map ``A_i``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(6, FEATURES, 3, padding=1)
        self.exposure = ExposureConfidence()
        self.conv1 = nn.Conv2d(3 * FEATURES + 1, FEATURES, 3, padding=1)
        self.fuse1 = StreamFusion(FEATURES, kernel_size=3)
        self.conv2 = nn.Conv2d(FEATURES, FEATURES, 3, padding=1)
        self.fuse2 = StreamFusion(FEATURES, kernel_size=3)
        self.conv3 = nn.Conv2d(FEATURES, FEATURES, 3, padding=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Shallow features ``F_i = LReLU(conv3x3(X_i))``: ``(B n, 6, H, W) -> (B n, 64, H, W)``."""
        return _lrelu(self.encoder(x))

    def forward(self, a: torch.Tensor, streams: int) -> torch.Tensor:
        a = _lrelu(self.conv1(a))
        a = _lrelu(self.fuse1(a, streams))
        a = _lrelu(self.conv2(a))
        a = _lrelu(self.fuse2(a, streams))
        return torch.sigmoid(self.conv3(a))


class MergeNet(nn.Module):
    """Grouped residual dense merge over streams, global max, output convs (MODELS.md 5.6; 909,123 params)."""

    def __init__(self, blocks: int = 3) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(FEATURES, FEATURES, 3, padding=1)
        self.grdb = GRDB(FEATURES, growth=32, layers=6, blocks=blocks)
        self.fusions = nn.ModuleList(StreamFusion(FEATURES, kernel_size=1) for _ in range(blocks))
        self.conv1 = nn.Conv2d(FEATURES, FEATURES, 3, padding=1)
        self.conv2 = nn.Conv2d(FEATURES, 3, 3, padding=1)

    def forward(
        self, attended: torch.Tensor, reference: torch.Tensor, streams: int
    ) -> torch.Tensor:
        """``attended = A_i * F_i^w (B n, 64, H, W)``, ``reference = F_r (B, 64, H, W)`` -> ``(B, 3, H, W)``."""
        m0 = _lrelu(self.conv0(attended))
        grouped = self.grdb(m0, after_block=lambda k, y: self.fusions[k](y, streams))
        merged = stream_max(grouped, streams) + reference
        return torch.sigmoid(self.conv2(_lrelu(self.conv1(merged))))


def reference_first_order(ref: torch.Tensor, frames: int) -> torch.Tensor:
    """Per sample, frame indices with the reference first and the others in their order: ``(B, N)``."""
    index = torch.arange(frames, device=ref.device).expand(ref.shape[0], frames)
    others = index[index != ref[:, None]].view(ref.shape[0], frames - 1)
    return torch.cat([ref[:, None], others], dim=1)


def _gather_frames(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    index = order.view(*order.shape, *([1] * (x.ndim - 2))).expand(*order.shape, *x.shape[2:])
    return torch.gather(x, 1, index)


class FlexHDR(nn.Module):
    """FlexHDR network: any number of frames, any reference, permutation-invariant.

    Args:
        iterations: flow refinement steps (8 in training and inference; more can help large
            motion at inference).
        correlation: how the flow's correlation is computed: ``"all_pairs"`` (the
            ``(H W / 64)^2`` volume, fast), ``"on_demand"`` (the same values from the
            features, little memory) or ``"auto"`` (all pairs up to 512 MiB).
        gamma: gamma used to linearise the frames.
        head_pixels: most frame-pixels (frames x pixels) the attention and merge networks
            process at once. Larger inputs run them tile by tile, each tile with a halo of
            their receptive radius (26 pixels) and the flows and warps of the whole image:
            the same output (to float rounding) with memory bounded by the tile. ``None``
            processes the whole image at once.

    Shapes:
        ``ldr (B, N, 3, H, W)`` in [0, 1], ``exposures (B, N)``, ``ref (B,)`` long (or an
        int) -> :class:`NetOutput` with ``hdr (B, 3, H, W)`` in [0, 1] and ``aux``:
        ``flows (B, N, 2, H, W)`` (pixels, zero for the reference), ``confidences
        (B, N, 1, H, W)`` (E_i, unwarped), ``attention (B, N, 1, H, W)`` (channel mean of
        A_i), all in the input's frame order. H and W must be multiples of 8; maps smaller
        than 16 pixels run edge-padded to 16 (instance normalisation at 1/8 needs more than
        one pixel) and are cropped back.

    Memory: the shallow features ``[F_i, E_i]`` (65 channels per frame) and the flows are
    held for the whole image; everything after the warp is local and runs in tiles of
    ``head_pixels`` (see ``docs/models/flexhdr.md``, "Cost and memory").
    """

    frames = None
    size_multiple = 8
    min_size = 16
    """Smaller inputs are edge-padded to this size inside ``forward``."""

    def __init__(
        self,
        iterations: int = 8,
        correlation: str = "auto",
        gamma: float = GAMMA,
        head_pixels: int | None = HEAD_PIXELS,
    ) -> None:
        super().__init__()
        if correlation not in CORRELATIONS:
            raise ModelError(
                f"FlexHDR: correlation must be one of {CORRELATIONS}, got {correlation!r}"
            )
        if not isinstance(iterations, int) or iterations < 1:
            raise ModelError(f"FlexHDR: iterations must be a positive integer, got {iterations!r}")
        if head_pixels is not None and (not isinstance(head_pixels, int) or head_pixels < 1):
            raise ModelError(
                f"FlexHDR: head_pixels must be a positive integer or None, got {head_pixels!r}"
            )
        self.iterations = iterations
        self.correlation = correlation
        self.gamma = gamma
        self.head_pixels = head_pixels
        self.flow = FlowNet()
        self.attention = AttentionNet()
        self.merge = MergeNet()
        attention = self.attention
        self.head_halo = receptive_radius(
            attention.conv1,
            attention.fuse1,
            attention.conv2,
            attention.fuse2,
            attention.conv3,
            self.merge,
        )
        """Receptive radius of the attention and merge networks (26 pixels): the halo of a tile."""

    def _check(self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor) -> None:
        if ldr.ndim != 5 or ldr.shape[2] != 3 or ldr.shape[1] < 1:
            raise InputSizeError(
                f"FlexHDR: ldr must be (B, N, 3, H, W) with N >= 1 frames, got {tuple(ldr.shape)}"
            )
        height, width = ldr.shape[-2:]
        m = self.size_multiple
        if height % m or width % m or min(height, width) < 1:
            raise InputSizeError(
                f"FlexHDR: H and W must be multiples of {m}, got {height}x{width}; pad the "
                "frames (merge() reflect-pads and crops back for you)"
            )
        if exposures.shape != ldr.shape[:2]:
            raise InputSizeError(
                f"FlexHDR: exposures must be (B, N) = {tuple(ldr.shape[:2])}, got {tuple(exposures.shape)}"
            )
        if ref.shape != ldr.shape[:1] or bool(((ref < 0) | (ref >= ldr.shape[1])).any()):
            raise InputSizeError(
                f"FlexHDR: ref must hold one frame index in [0, {ldr.shape[1]}) per sample, got {ref.tolist()}"
            )

    def forward(
        self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor | int
    ) -> NetOutput:
        if not torch.is_tensor(ref):
            ref = torch.full((ldr.shape[0],), int(ref), dtype=torch.long, device=ldr.device)
        self._check(ldr, exposures, ref)
        height, width = ldr.shape[-2:]
        if min(height, width) >= self.min_size:
            return self._forward(ldr, exposures, ref)
        # Instance normalisation at 1/8 needs more than one pixel: run tiny inputs
        # edge-padded to the minimum size and crop every output back.
        pad = (0, max(0, self.min_size - width), 0, max(0, self.min_size - height))
        padded = F.pad(ldr.flatten(0, 1), pad, mode="replicate").unflatten(0, ldr.shape[:2])
        out = self._forward(padded, exposures, ref)
        return NetOutput(
            hdr=out.hdr[..., :height, :width],
            aux={key: value[..., :height, :width] for key, value in out.aux.items()},
        )

    def _encode(self, ldr: torch.Tensor, exposures: torch.Tensor) -> torch.Tensor:
        """``[F_i, E_i]`` of every stream (5.1-5.2): ``(B n, 65, H, W)``, streams consecutive.

        Written stream by stream into one buffer that the flow net reads as it is and the
        rest reads through views: at full resolution a concatenated copy would cost as much
        as the features themselves. Channels-last, because oneDNN convolves that layout in
        place where it would first copy a channels-first input (as large again).
        """
        linear = linearize(ldr, exposures, self.gamma).flatten(0, 1)
        frames = ldr.flatten(0, 1)
        out = torch.empty(
            (frames.shape[0], FEATURES + 1, *frames.shape[-2:]),
            dtype=frames.dtype,
            device=frames.device,
            memory_format=torch.channels_last,
        )
        for i in range(frames.shape[0]):
            one = frames[i : i + 1]
            out[i : i + 1, :FEATURES] = self.attention.encode(
                torch.cat([one, linear[i : i + 1]], 1)
            )
            out[i : i + 1, FEATURES:] = self.attention.exposure(one)
        return out

    def head_tile(self, height: int, width: int, streams: int) -> tuple[int, int]:
        """``(tile_h, tile_w)`` of the attention and merge networks for ``streams`` (B x N)
        frames of ``height x width``: the whole image unless it exceeds ``head_pixels``."""
        pixels = height * width
        if self.head_pixels is not None:
            # Never tiles smaller than the halo, else most of the work would be halo.
            pixels = max(self.head_pixels // streams, (3 * self.head_halo) ** 2)
        return tile_shape_for(height, width, pixels, self.head_halo)

    def _head(
        self,
        streams: torch.Tensor,
        sources: torch.Tensor | None,
        flows: torch.Tensor | None,
        rows: slice,
        cols: slice,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Warp, alignment uncertainty, attention and merge on one window (5.4-5.6).

        ``streams (B, n, 65, H, W)``: ``[F_i, E_i]`` of the whole image, the reference
        first; ``sources``: the same for the other frames as ``(B (n - 1), 65, H, W)`` and
        ``flows (B (n - 1), 2, H, W)`` (both ``None`` for one frame); the window ``rows x
        cols``. Returns ``hdr (B, 3, h, w)`` and the attention's channel mean
        ``(B, n, 1, h, w)`` on the window.
        """
        batch, frames = streams.shape[:2]
        window = streams[:, :1, :, rows, cols]
        if sources is None or flows is None:
            aligned = window
        else:
            # Sampled from the whole image: motion may reach past the window.
            warped = warp(sources, flows[..., rows, cols], (rows.start, cols.start))
            aligned = torch.cat([window, warped.unflatten(0, (batch, frames - 1))], 1)
        warped_features, warped_confidence = aligned.split([FEATURES, 1], dim=2)
        reference = window[:, :, :FEATURES].expand_as(warped_features)
        uncertainty = (warped_features - reference).abs() * window[:, :, FEATURES:]
        # Channels-last, which oneDNN convolves faster; every layer after keeps the layout.
        attention_input = torch.empty(
            (batch * frames, 3 * FEATURES + 1, *window.shape[-2:]),
            dtype=window.dtype,
            device=window.device,
            memory_format=torch.channels_last,
        )
        channel = 0
        # Slice by slice rather than cat(out=), which autograd does not support.
        for part in (warped_features, reference, uncertainty, warped_confidence):
            attention_input[:, channel : channel + part.shape[2]] = part.flatten(0, 1)
            channel += part.shape[2]
        # Each of these holds 64 to 193 channels per frame: free them as soon as they are used.
        del uncertainty, warped_confidence
        attention = self.attention(attention_input, frames)
        del attention_input
        attended = attention * warped_features.flatten(0, 1)
        del aligned, warped_features
        attention_map = attention.mean(1, keepdim=True).unflatten(0, (batch, frames))
        del attention
        return self.merge(attended, reference[:, 0], frames), attention_map

    def _forward(self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor) -> NetOutput:
        batch, frames, _, height, width = ldr.shape
        # The reference goes first; nothing else depends on the frames' order.
        order = reference_first_order(ref, frames)
        ldr = _gather_frames(ldr, order)
        exposures = torch.gather(exposures, 1, order)
        streams = self._encode(ldr, exposures)
        flows = sources = None
        if frames > 1:
            flows = self.flow(streams, frames, self.iterations, self.correlation)
            # A view for one sample; built once, not per tile.
            sources = streams.unflatten(0, (batch, frames))[:, 1:].flatten(0, 1)
        streams = streams.unflatten(0, (batch, frames))

        hdr, attention = map_halo_tiles(
            lambda rows, cols: self._head(streams, sources, flows, rows, cols),
            height,
            width,
            self.head_tile(height, width, batch * frames),
            self.head_halo,
        )

        zero = ldr.new_zeros(batch, 1, 2, height, width)
        all_flows = (
            zero if flows is None else torch.cat([zero, flows.unflatten(0, (batch, frames - 1))], 1)
        )
        inverse = torch.argsort(order, dim=1)
        aux = {
            "flows": _gather_frames(all_flows, inverse),
            "confidences": _gather_frames(streams[:, :, FEATURES:], inverse),
            "attention": _gather_frames(attention, inverse),
        }
        return NetOutput(hdr=hdr, aux=aux)


# ----------------------------------------------------------------- LightningModule -----
PAPER = (
    "Catley-Chandar et al., FlexHDR: Modelling Alignment and Exposure Uncertainties for "
    "Flexible HDR Imaging, CVPR 2022 / IEEE TIP 2022 (no official code)"
)


@register_model(
    "flexhdr",
    paper=PAPER,
    description="FlexHDR (2.13 M params): any N frames, permutation-invariant; no official weights",
)
class FlexHDRModule(HDRModule):
    """FlexHDR with its loss ``L_tm + L_phot + 1e-3 L_vgg`` (MODELS.md 5.7).

    ``L_tm = |T(H) - T(gt)|_1``; ``L_phot`` is :class:`~hdrzoo.losses.MaskedPhotometric` on
    the final flows of the non-reference frames; ``L_vgg`` the VGG19 perceptual loss on the
    tone-mapped images.

    Args:
        iterations: flow refinement steps (training and inference; ``hdrzoo.load("flexhdr",
            iterations=12)`` changes it at inference).
        correlation: ``"auto"``, ``"all_pairs"`` or ``"on_demand"`` (see :class:`FlexHDR`).
        photometric_weight: weight of ``L_phot`` (1).
        perceptual_weight: weight of ``L_vgg`` (1e-3); ``0`` never downloads VGG19.
        random_subsets: train on a random subset of 2..N frames per batch that contains each
            sample's reference, in random order, so one model serves any N.
        head_pixels: frame-pixels the attention and merge networks process at once (exact
            tiling, for memory; see :class:`FlexHDR`); ``None``: the whole image at once.
        optimizer: ``params -> Optimizer`` (CLI ``--optimizer``); default AdamW(2e-4, wd 1e-4).
        lr_scheduler: ``optimizer -> LRScheduler`` (CLI ``--lr_scheduler``).
    """

    def __init__(
        self,
        iterations: int = 8,
        correlation: str = "auto",
        photometric_weight: float = 1.0,
        perceptual_weight: float = 1e-3,
        random_subsets: bool = False,
        head_pixels: int | None = HEAD_PIXELS,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        for name, value in (
            ("photometric_weight", photometric_weight),
            ("perceptual_weight", perceptual_weight),
        ):
            if not value >= 0:
                raise ModelError(f"FlexHDRModule: {name} must be >= 0, got {value}")
        self.net = FlexHDR(iterations=iterations, correlation=correlation, head_pixels=head_pixels)
        self.photometric_weight = float(photometric_weight)
        self.perceptual_weight = float(perceptual_weight)
        self.random_subsets = bool(random_subsets)
        self.mulaw_l1 = MuLawL1()
        self.photometric = MaskedPhotometric()
        self.perceptual = VGGPerceptual() if perceptual_weight > 0 else None

    def random_frame_subset(self, ref: torch.Tensor, frames: int) -> torch.Tensor:
        """``(B, k)`` frame indices: a random size ``k`` in 2..N, each row holding its
        sample's reference and ``k - 1`` other frames, in random order."""
        size = int(torch.randint(2, frames + 1, ()).item()) if frames > 2 else frames
        rows = []
        for r in ref.tolist():
            others = [j for j in range(frames) if j != r]
            chosen = [others[j] for j in torch.randperm(frames - 1)[: size - 1].tolist()] + [r]
            rows.append([chosen[j] for j in torch.randperm(size).tolist()])
        return torch.tensor(rows, dtype=torch.long, device=ref.device)

    def training_forward(self, batch: dict[str, Any]) -> NetOutput:
        ldr, exposures, ref = batch["ldr"], batch["exposures"], batch["ref"]
        if not self.random_subsets:
            return self(ldr, exposures, ref)
        index = self.random_frame_subset(ref, ldr.shape[1])
        sub_ref = (index == ref[:, None]).long().argmax(dim=1)
        out = self(_gather_frames(ldr, index), torch.gather(exposures, 1, index), sub_ref)
        out.aux["frame_index"] = index
        return out

    def compute_loss(
        self, out: NetOutput, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gt = batch["gt"]
        ldr, exposures, ref = batch["ldr"], batch["exposures"], batch["ref"]
        if "frame_index" in out.aux:
            index = out.aux["frame_index"]
            ldr, exposures = _gather_frames(ldr, index), torch.gather(exposures, 1, index)
            ref = (index == ref[:, None]).long().argmax(dim=1)
        terms: dict[str, torch.Tensor] = {"l_tm": self.mulaw_l1(out.hdr, gt)}
        loss = terms["l_tm"]
        batch_size, frames = ldr.shape[:2]
        if frames > 1:
            linear = linearize(ldr, exposures, self.net.gamma)
            is_other = torch.arange(frames, device=ref.device)[None] != ref[:, None]
            rows = torch.arange(batch_size, device=ref.device)

            def references(x: torch.Tensor) -> torch.Tensor:
                return x[rows, ref].repeat_interleave(frames - 1, dim=0)

            confidences = out.aux["confidences"]
            terms["l_phot"] = self.photometric(
                references(linear),
                linear[is_other],
                out.aux["flows"][is_other],
                references(confidences),
                confidences[is_other],
            )
            loss = loss + self.photometric_weight * terms["l_phot"]
        if self.perceptual is not None:
            terms["l_vgg"] = self.perceptual(_tonemap(out.hdr), _tonemap(gt))
            loss = loss + self.perceptual_weight * terms["l_vgg"]
        with torch.no_grad():
            terms["flow_magnitude"] = out.aux["flows"].norm(dim=2).mean()
            terms["confidence_mean"] = out.aux["confidences"].mean()
            terms["attention_mean"] = out.aux["attention"].mean()
            terms["alpha"] = self.net.attention.exposure.alpha.detach()
            terms["beta"] = self.net.attention.exposure.beta.detach()
        return loss, terms


def _tonemap(x: torch.Tensor) -> torch.Tensor:
    return mu_law(x.clamp(min=0.0))
