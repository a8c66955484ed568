"""SAFNet and SAFNet-S (Kong et al., "SAFNet: Selective Alignment Fusion Network for
Efficient HDR Imaging", ECCV 2024), reproducing the official code (ltkong218/SAFNet @553e72a).

Stage 1 estimates, at half resolution, the flows from the reference to the short and long
frames and two selection masks, then merges the aligned linear frames with the triangle
weights of Kalantari 17 (H_m). Stage 2, a small refine net at full resolution, adds a
residual (H_r). Submodule names are the official ones, so the official state dicts load
with ``strict=True`` and no renaming (see :func:`convert_official_state_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from hdrzoo.errors import BracketError, InputSizeError, ModelError, WeightsError
from hdrzoo.losses import CensusLoss, MuLawL1, VGGPerceptual
from hdrzoo.models.base import HDRModule, NetOutput, check_frame_count
from hdrzoo.models.registry import WeightTag, register_model
from hdrzoo.ops.precision import float32_under_autocast
from hdrzoo.ops.rowconv import (
    cat_channels_last,
    channels_last,
    conv_module_rows,
    conv_prelu_stack_rows,
    empty_channels_last,
    use_row_blocks,
)
from hdrzoo.ops.tonemap import GAMMA, mu_law, sort_by_exposure
from hdrzoo.ops.warp import warp
from hdrzoo.ops.windows import window_partition, window_reverse

__all__ = [
    "SAFNet",
    "SAFNetModule",
    "convert_official_state_dict",
    "merge_hdr",
]

VARIANTS = ("s", "full")
DIV_FLOW = 20.0
"""The refine nets see flows divided by this (official ``div_flow``)."""
FEATURES = 40
"""Channels of every encoder stage and of each third of the decoder."""


def _convrelu(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
) -> nn.Sequential:
    # Sequential(conv, PReLU): the official layout, hence the `.0.weight` / `.1.weight` names.
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            groups=groups,
            bias=True,
        ),
        nn.PReLU(out_channels),
    )


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: new channel ``groups * i + g`` is old channel ``C/groups * g + i``."""
    batch, channels, height, width = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # Channels-last: shuffle the innermost (channel) axis and stay channels-last.
        nhwc = x.permute(0, 2, 3, 1).reshape(batch, height, width, groups, channels // groups)
        nhwc = nhwc.transpose(3, 4).reshape(batch, height, width, channels)
        return nhwc.permute(0, 3, 1, 2)
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(
        x, scale_factor=2.0, mode="bilinear", align_corners=False, recompute_scale_factor=True
    )


class Encoder(nn.Module):
    """Four stride-2 pyramid stages of 40 channels; outputs at 1/2, 1/4, 1/8, 1/16."""

    def __init__(self, in_channels: int = 6) -> None:
        super().__init__()
        self.pyramid1 = nn.Sequential(
            _convrelu(in_channels, FEATURES, stride=2), _convrelu(FEATURES, FEATURES)
        )
        self.pyramid2 = nn.Sequential(
            _convrelu(FEATURES, FEATURES, stride=2), _convrelu(FEATURES, FEATURES)
        )
        self.pyramid3 = nn.Sequential(
            _convrelu(FEATURES, FEATURES, stride=2), _convrelu(FEATURES, FEATURES)
        )
        self.pyramid4 = nn.Sequential(
            _convrelu(FEATURES, FEATURES, stride=2), _convrelu(FEATURES, FEATURES)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.pyramid1(x)
        f2 = self.pyramid2(f1)
        f3 = self.pyramid3(f2)
        f4 = self.pyramid4(f3)
        return [f1, f2, f3, f4]


class Decoder(nn.Module):
    """One coarse-to-fine step: refine the flows and mask logits and double their resolution."""

    def __init__(self) -> None:
        super().__init__()
        width = 3 * FEATURES
        self.conv1 = _convrelu(3 * FEATURES + 6, width)
        self.conv2 = _convrelu(width, width, groups=3)
        self.conv3 = _convrelu(width, width, groups=3)
        self.conv4 = _convrelu(width, width, groups=3)
        self.conv5 = _convrelu(width, width)
        self.conv6 = nn.ConvTranspose2d(width, 6, 4, stride=2, padding=1, bias=True)
        # Departure from PyTorch's default init (the paper does not state one): the head
        # starts at zero, so an untrained network begins from zero flows and masks of exactly
        # 0.5. With the default init each of the four levels adds random flow of order one
        # pixel, amplified 2x per level (up to 16x at full resolution): the warped frames start
        # as garbage, the selection masks learn to shut them out, the flows then receive no
        # gradient through the merge, and training can settle on returning the reference
        # frame (seed 0 of the demo recipe did; docs/models/safnet.md). Official weights
        # overwrite this init, so parity is unaffected.
        nn.init.zeros_(self.conv6.weight)
        nn.init.zeros_(self.conv6.bias)

    # float32 under bf16 autocast: rounding at the coarse levels is enlarged 2x per level
    # (-0.16 dB PSNR-mu on a fixture scene with the official weights; docs/benchmarks.md).
    @float32_under_autocast
    def forward(
        self,
        f0: torch.Tensor,
        f1: torch.Tensor,
        f2: torch.Tensor,
        flow0: torch.Tensor,
        flow2: torch.Tensor,
        mask0: torch.Tensor,
        mask2: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = cat_channels_last([warp(f0, flow0), f1, warp(f2, flow2), flow0, flow2, mask0, mask2])
        x = self.conv1(x)
        x = channel_shuffle(self.conv2(x), 3)
        x = channel_shuffle(self.conv3(x), 3)
        x = channel_shuffle(self.conv4(x), 3)
        x = self.conv5(x)
        delta = self.conv6(x).contiguous()
        flow0 = delta[:, 0:2] + 2.0 * _upsample2(flow0)
        flow2 = delta[:, 2:4] + 2.0 * _upsample2(flow2)
        mask0 = delta[:, 4:5] + _upsample2(mask0)
        mask2 = delta[:, 5:6] + _upsample2(mask2)
        return flow0, flow2, mask0, mask2


def merge_hdr(
    img0: torch.Tensor,
    img1: torch.Tensor,
    img2: torch.Tensor,
    mask0: torch.Tensor,
    mask2: torch.Tensor,
) -> torch.Tensor:
    """SAFNet's explicit merge H_m (MODELS.md 4.4): triangle weights gated by the masks.

    Where the reference is too bright (too dark), the aligned short (long) frame takes the
    weight its mask selects; the rest stays with the reference.

    Args:
        img0: aligned short frame ``(B, 6, H, W)``: linear RGB then LDR RGB.
        img1: reference frame ``(B, 6, H, W)``.
        img2: aligned long frame ``(B, 6, H, W)``.
        mask0: selection mask of the short frame in [0, 1], ``(B, 1, H, W)``.
        mask2: selection mask of the long frame in [0, 1], ``(B, 1, H, W)``.

    Returns:
        Linear HDR ``(B, 3, H, W)``.
    """
    # The three triangle weights sum to exactly 1 for every x, so the official normalisation
    # by W_0 + W_1 + W_2 (+ 1e-9) is the identity and W_1 = 1 - W_0 - W_2. Hence
    # H_m = H_1 + W_0 (H_0 - H_1) + W_2 (H_2 - H_1): the same value to float rounding, in a
    # third of the full-resolution passes.
    signed = img1[:, 3:6] * 2.0 - 1.0  # triangle_hi = max(0, s), triangle_lo = max(0, -s)
    lin1 = img1[:, 0:3]
    w0 = signed.clamp(min=0.0) * mask0
    w2 = signed.neg().clamp(min=0.0) * mask2
    merged = torch.addcmul(lin1, w0, img0[:, 0:3] - lin1)
    return torch.addcmul(merged, w2, img2[:, 0:3] - lin1)


def _zero_residual_head(conv: nn.Conv2d) -> None:
    """Start a refine net's residual at zero: an untrained SAFNet returns H_m.

    Departure from PyTorch's default init (the paper states none; official weights overwrite
    it). A random head adds a residual of order 0.1 everywhere, which the short frame's
    dark pixels turn into tens of dB of mu-law error, and what the net learns first is to
    undo it on the radiance it trains on. Started at zero, the refine net only adds what the
    loss asks for: on scenes from radiance maps it never saw, the demo recipe's 400 steps read
    28.55 dB instead of 26.78 (reference frame alone 27.29; docs/transfer.md).
    """
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)


class RefineNetS(nn.Module):
    """SAFNet-S refine net: eight 3x3 convs on the aligned inputs, dilations 1,1,2,4,2,1."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.conv1 = _convrelu(27, width)
        self.conv2 = _convrelu(width, width)
        self.conv3 = _convrelu(width, width, dilation=2)
        self.conv4 = _convrelu(width, width, dilation=4)
        self.conv5 = _convrelu(width, width, dilation=2)
        self.conv6 = _convrelu(width, width)
        self.conv7 = nn.Conv2d(width, 3, 3, padding=1, bias=True)
        _zero_residual_head(self.conv7)

    # float32 under bf16 autocast: its residual lands on well-exposed radiance (-0.09 dB).
    @float32_under_autocast
    def forward(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        img2: torch.Tensor,
        flow0: torch.Tensor,
        flow2: torch.Tensor,
        mask0: torch.Tensor,
        mask2: torch.Tensor,
        hdr_m: torch.Tensor,
        aligned: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if aligned is None:
            aligned = (warp(img0, flow0), warp(img2, flow2))
        parts = [
            aligned[0],
            img1,
            aligned[1],
            flow0 / DIV_FLOW,
            flow2 / DIV_FLOW,
            mask0,
            mask2,
            hdr_m,
        ]
        if use_row_blocks(hdr_m):
            residual = self._forward_row_blocks(parts)
        else:
            x = cat_channels_last(parts)
            for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6):
                x = layer(x)
            residual = self.conv7(x)
        return torch.clamp(residual.contiguous() + hdr_m, 0.0, 1.0)

    def _forward_row_blocks(self, parts: list[torch.Tensor]) -> torch.Tensor:
        layers = (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6)
        x = conv_prelu_stack_rows(parts, [(layer[0], layer[1]) for layer in layers])
        return self.conv7(x)


class ResBlock(nn.Module):
    """``PReLU(x + conv(convrelu(x)))`` with dilated 3x3 convs."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = _convrelu(channels, channels, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place is safe: autograd does not need the conv's output.
        return self.prelu(self.conv2(self.conv1(x)).add_(x))

    def forward_rows(
        self, x: torch.Tensor, hidden: torch.Tensor, out: torch.Tensor
    ) -> torch.Tensor:
        """The same in row blocks (CPU inference) with caller-owned buffers ``hidden``, ``out``."""
        conv_module_rows(x, self.conv1[0], hidden, prelu=self.conv1[1])
        return conv_module_rows(hidden, self.conv2, out, prelu=self.prelu, residual=x)


class RefineNet(nn.Module):
    """SAFNet refine net: per-frame features aligned by the flows, five dilated res-blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_convrelu(6, 20), _convrelu(20, 20))
        self.conv1 = nn.Sequential(_convrelu(15, 40), _convrelu(40, 40))
        self.conv2 = nn.Sequential(_convrelu(6, 20), _convrelu(20, 20))
        self.resblock1 = ResBlock(80, 1)
        self.resblock2 = ResBlock(80, 2)
        self.resblock3 = ResBlock(80, 4)
        self.resblock4 = ResBlock(80, 2)
        self.resblock5 = ResBlock(80, 1)
        self.conv3 = nn.Conv2d(80, 3, 3, padding=1, bias=True)
        _zero_residual_head(self.conv3)

    # float32 under bf16 autocast: its residual lands on well-exposed radiance (-0.09 dB).
    @float32_under_autocast
    def forward(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        img2: torch.Tensor,
        flow0: torch.Tensor,
        flow2: torch.Tensor,
        mask0: torch.Tensor,
        mask2: torch.Tensor,
        hdr_m: torch.Tensor,
        aligned: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        del aligned  # this refine net aligns features, not images
        side = [img1, flow0 / DIV_FLOW, flow2 / DIV_FLOW, mask0, mask2, hdr_m]
        if use_row_blocks(hdr_m):
            residual = self._forward_row_blocks(img0, img2, side, flow0, flow2)
        else:
            feat0 = self.conv0(channels_last(img0))
            feat1 = self.conv1(cat_channels_last(side))
            feat2 = self.conv2(channels_last(img2))
            x = cat_channels_last([warp(feat0, flow0), feat1, warp(feat2, flow2)])
            for block in self.resblocks():
                x = block(x)
            residual = self.conv3(x)
        return torch.clamp(residual.contiguous() + hdr_m, 0.0, 1.0)

    def resblocks(self) -> tuple[ResBlock, ...]:
        return (self.resblock1, self.resblock2, self.resblock3, self.resblock4, self.resblock5)

    def _forward_row_blocks(
        self,
        img0: torch.Tensor,
        img2: torch.Tensor,
        side: list[torch.Tensor],
        flow0: torch.Tensor,
        flow2: torch.Tensor,
    ) -> torch.Tensor:
        # Three 80-channel buffers serve every layer: the feature stage works in channel
        # slices of `hidden` and writes its result straight into the slices of `x`.
        x = empty_channels_last(img0, 80)
        hidden = torch.empty_like(x)
        spare = torch.empty_like(x)
        for img, branch, flow, target in (
            (img0, self.conv0, flow0, x[:, 0:20]),
            (img2, self.conv2, flow2, x[:, 60:80]),
        ):
            first = conv_module_rows(
                channels_last(img), branch[0][0], hidden[:, 0:20], branch[0][1]
            )
            second = conv_module_rows(first, branch[1][0], hidden[:, 20:40], branch[1][1])
            target.copy_(warp(second, flow))
        side_input = hidden[:, 0:15]
        torch.cat(side, 1, out=side_input)
        first = conv_module_rows(side_input, self.conv1[0][0], hidden[:, 40:80], self.conv1[0][1])
        conv_module_rows(first, self.conv1[1][0], x[:, 20:60], self.conv1[1][1])
        for block in self.resblocks():
            x, spare = block.forward_rows(x, hidden, spare), x
        return self.conv3(x)


class SAFNet(nn.Module):
    """SAFNet (``variant="full"``, 1,120,849 params) or SAFNet-S (``"s"``, 566,713 params).

    Args:
        variant: ``"s"`` (SAFNet-S, the light refine net) or ``"full"``.
        flow_scale: resolution of the flow/mask stage relative to the input (official 0.5).
        gamma: gamma used to linearise the frames (official 2.2).

    Shapes:
        ``ldr (B, 3, 3, H, W)`` gamma-encoded RGB in [0, 1], ``exposures (B, 3)`` relative
        exposure times, ``ref (B,)`` -> :class:`NetOutput` with ``hdr (B, 3, H, W)`` linear
        in [0, 1] (units where the shortest exposure is 1) and ``aux``: ``hdr_m (B, 3, H, W)``,
        ``flow0``, ``flow2 (B, 2, H, W)`` in pixels (reference -> short / long frame,
        channel 0 = x), ``mask0``, ``mask2 (B, 1, H, W)`` in [0, 1]. Any H, W >= 1.

    Examples:
        >>> net = SAFNet("s").eval()
        >>> out = net(torch.rand(1, 3, 3, 37, 53), torch.tensor([[1.0, 4.0, 16.0]]), torch.tensor([1]))
        >>> out.hdr.shape, out.aux["flow0"].shape
        (torch.Size([1, 3, 37, 53]), torch.Size([1, 2, 37, 53]))
    """

    frames = 3
    size_multiple = 1

    def __init__(self, variant: str = "s", flow_scale: float = 0.5, gamma: float = GAMMA) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ModelError(f"SAFNet: unknown variant {variant!r}; use one of {VARIANTS}")
        if not 0.0 < flow_scale <= 1.0:
            raise ModelError(f"SAFNet: flow_scale must be in (0, 1], got {flow_scale}")
        self.variant = variant
        self.flow_scale = float(flow_scale)
        self.gamma = float(gamma)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.refinenet = RefineNetS() if variant == "s" else RefineNet()

    # ------------------------------------------------------------------ inputs -----
    def encode_inputs(
        self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sort by exposure and build the official 6-channel frames ``[ldr**gamma / t, ldr]``.

        Args:
            ldr: ``(B, 3, 3, H, W)`` gamma-encoded frames in [0, 1].
            exposures: ``(B, 3)`` positive exposure times (normalised by their minimum here).
            ref: ``(B,)`` reference indices (or one int for the whole batch); after sorting
                the reference must be the middle exposure.

        Returns:
            ``(img0, img1, img2)``: short, reference, long, each ``(B, 6, H, W)``.
        """
        if not isinstance(ldr, torch.Tensor) or ldr.ndim != 5 or ldr.shape[2] != 3:
            shape = tuple(ldr.shape) if isinstance(ldr, torch.Tensor) else type(ldr).__name__
            raise InputSizeError(
                f"SAFNet: ldr must be a (B, 3, 3, H, W) tensor of RGB frames, got {shape}"
            )
        batch, frames = ldr.shape[:2]
        check_frame_count(self, frames, what="SAFNet ldr")
        exposures = torch.as_tensor(exposures, dtype=ldr.dtype, device=ldr.device)
        if exposures.shape != (batch, frames):
            raise BracketError(
                f"SAFNet: exposures must have shape ({batch}, {frames}) like ldr's first two "
                f"dimensions, got {tuple(exposures.shape)}"
            )
        if not (torch.isfinite(exposures).all() and (exposures > 0).all()):
            raise BracketError(
                f"SAFNet: exposures must be finite and positive, got {exposures.tolist()}"
            )
        ref = torch.as_tensor(ref, dtype=torch.long, device=ldr.device).reshape(-1)
        if ref.numel() == 1:
            ref = ref.expand(batch)
        if ref.shape != (batch,) or ((ref < 0) | (ref >= frames)).any():
            raise BracketError(
                f"SAFNet: ref must hold one index in [0, {frames}) per sample, got {ref.tolist()}"
            )
        ldr, exposures, ref = sort_by_exposure(ldr, exposures, ref)
        if (ref != 1).any():
            raise InputSizeError(
                "SAFNet: the reference frame must be the middle exposure (SAFNet aligns the "
                "short and long frames to it); got reference positions "
                f"{ref.tolist()} in exposure order (0 = shortest). Choose the middle exposure as ref."
            )
        exposures = exposures / exposures.amin(dim=1, keepdim=True)
        linear = ldr.pow(self.gamma) / exposures[:, :, None, None, None]
        imgs = torch.cat([linear, ldr], dim=2)
        return imgs[:, 0], imgs[:, 1], imgs[:, 2]

    # ------------------------------------------------------------------ stages -----
    def forward_flow_mask(
        self, img0: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flows and selection masks from the three 6-channel frames (MODELS.md 4.3).

        Args:
            img0: short frame ``(B, 6, H, W)`` (``[linear, ldr]``).
            img1: reference frame ``(B, 6, H, W)``.
            img2: long frame ``(B, 6, H, W)``.

        Returns:
            ``(flow0, flow2, mask0, mask2)``: flows ``(B, 2, H, W)`` in pixels of the input,
            masks ``(B, 1, H, W)`` after the sigmoid.
        """
        height, width = img1.shape[-2:]
        height_s = 16 * math.ceil(height * self.flow_scale / 16)
        width_s = 16 * math.ceil(width * self.flow_scale / 16)
        resized = (height_s, width_s) != (height, width)
        if resized:
            img0, img1, img2 = (
                F.interpolate(img, size=(height_s, width_s), mode="bilinear", align_corners=False)
                for img in (img0, img1, img2)
            )
        # One encoder pass over the three frames stacked along the batch.
        feats = self.encoder(channels_last(torch.cat([img0, img1, img2], 0)))
        feats0, feats1, feats2 = zip(*(f.chunk(3, 0) for f in feats))
        coarse = feats1[3]
        flow0 = coarse.new_zeros(coarse.shape[0], 2, *coarse.shape[-2:])
        flow2 = torch.zeros_like(flow0)
        mask0 = coarse.new_zeros(coarse.shape[0], 1, *coarse.shape[-2:])
        mask2 = torch.zeros_like(mask0)
        for level in (3, 2, 1, 0):
            flow0, flow2, mask0, mask2 = self.decoder(
                feats0[level], feats1[level], feats2[level], flow0, flow2, mask0, mask2
            )
        if resized:
            flow0, flow2, mask0, mask2 = (
                F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
                for t in (flow0, flow2, mask0, mask2)
            )
            # Flows are in pixels of the resized image: scale back by the plain size ratio.
            ratio = torch.tensor(
                [width / width_s, height / height_s], dtype=flow0.dtype, device=flow0.device
            ).view(1, 2, 1, 1)
            flow0 = flow0 * ratio
            flow2 = flow2 * ratio
        return flow0, flow2, torch.sigmoid(mask0), torch.sigmoid(mask2)

    def forward_images(
        self, img0: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor, refine: bool = True
    ) -> NetOutput:
        """The official model call on 6-channel frames ``[ldr**2.2 / t, ldr]`` (short, ref, long).

        Args:
            img0: short frame ``(B, 6, H, W)``.
            img1: reference frame ``(B, 6, H, W)``.
            img2: long frame ``(B, 6, H, W)``.
            refine: run the refine net (``False`` returns H_m as ``hdr``).

        Returns:
            :class:`NetOutput` as in :meth:`forward`.
        """
        stage1 = self.forward_merge(img0, img1, img2)
        aux = {key: stage1[key] for key in ("hdr_m", "flow0", "flow2", "mask0", "mask2")}
        if not refine:
            return NetOutput(hdr=stage1["hdr_m"], aux=aux)
        hdr_r = self.refinenet(
            *self.refine_inputs(img0, img1, img2, stage1), aligned=stage1["aligned"]
        )
        return NetOutput(hdr=hdr_r, aux=aux)

    def forward_merge(
        self, img0: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor
    ) -> dict[str, Any]:
        """Stage 1: flows, masks and the explicit merge H_m (MODELS.md 4.3-4.4).

        Args:
            img0: short frame ``(B, 6, H, W)``.
            img1: reference frame ``(B, 6, H, W)``.
            img2: long frame ``(B, 6, H, W)``.

        Returns:
            ``{"flow0", "flow2", "mask0", "mask2", "hdr_m", "aligned"}``, ``aligned`` being
            the short and long 6-channel frames warped to the reference.
        """
        flow0, flow2, mask0, mask2 = self.forward_flow_mask(img0, img1, img2)
        # The aligned 6-channel frames serve the merge and the SAFNet-S refine net alike.
        aligned = (warp(img0, flow0), warp(img2, flow2))
        hdr_m = merge_hdr(aligned[0], img1, aligned[1], mask0, mask2)
        return {
            "flow0": flow0,
            "flow2": flow2,
            "mask0": mask0,
            "mask2": mask2,
            "hdr_m": hdr_m,
            "aligned": aligned,
        }

    @staticmethod
    def refine_inputs(
        img0: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor, stage1: dict[str, Any]
    ) -> list[torch.Tensor]:
        """The refine net's positional inputs ``img0, img1, img2, flow0, flow2, mask0, mask2, hdr_m``."""
        keys = ("flow0", "flow2", "mask0", "mask2", "hdr_m")
        return [img0, img1, img2, *(stage1[k] for k in keys)]

    def forward(
        self,
        ldr: torch.Tensor,
        exposures: torch.Tensor,
        ref: torch.Tensor | int,
        refine: bool = True,
    ) -> NetOutput:
        """Merge a batch of 3-exposure brackets (see the class docstring for shapes)."""
        img0, img1, img2 = self.encode_inputs(ldr, exposures, ref)
        return self.forward_images(img0, img1, img2, refine=refine)


# ----------------------------------------------------------------- LightningModule -----
PAPER = (
    "Kong et al., SAFNet: Selective Alignment Fusion Network for Efficient HDR Imaging, "
    "ECCV 2024 (official code: github.com/ltkong218/SAFNet)"
)
ACADEMIC_ONLY = "academic research only, no commercial use (upstream SAFNet README)"

SAFNET_S_KALANTARI17 = WeightTag(
    tag="kalantari17",
    hub_id=None,
    licence=ACADEMIC_ONLY,
    source=(
        "checkpoints/SAFNet_S_siggraph17.pth of github.com/ltkong218/SAFNet at commit 553e72a "
        "(sha256 9d4e18199fb7dd990ec9ca94e706b823c2eb0c451e514fc403103e86d69bd5fe); load it with "
        "hdrzoo.load('safnet_s', weights='SAFNet_S_siggraph17.pth')"
    ),
    trained_on="Kalantari 17 (SIGGRAPH 2017) training set, 74 scenes",
    conventions={
        "gamma": 2.2,
        "divisor": 65536,
        "channel_order": "RGB",
        "frames": 3,
        "ref_index": "middle exposure",
        "size_multiple": 1,
    },
    metrics={
        "kalantari17": {
            "psnr_mu": 44.12,
            "psnr_l": 42.50,
            "ssim_mu": 0.9928,
            "ssim_l": 0.9907,
            "hdr_vdp2": 66.75,
        }
    },
    notes=(
        "Metrics as reported by the SAFNet paper (Kalantari 17 test set), not re-measured by "
        "hdrzoo. Outputs reproduce the official code within 1e-4 on two reference scenes "
        "(tests/models/test_safnet.py). Not mirrored on the Hugging Face Hub."
    ),
)


@register_model(
    "safnet",
    paper=PAPER,
    description="SAFNet (1.12 M params): selective alignment fusion, full refine net",
    variant="full",
)
@register_model(
    "safnet_s",
    paper=PAPER,
    description="SAFNet-S (0.57 M params): selective alignment fusion, light refine net",
    weights=[SAFNET_S_KALANTARI17],
    variant="s",
)
class SAFNetModule(HDRModule):
    """SAFNet / SAFNet-S with the paper's training loss and window-partition cropping.

    Loss (MODELS.md 4.7): ``L = L_r + merge_weight * L_m`` with
    ``L_r = |T(H_r) - T(gt)|_1 + perceptual_weight * VGG(T(H_r), T(gt))`` on the refine
    windows and ``L_m = |T(H_m) - T(gt)|_1 + census_weight * census(T(H_m), T(gt))`` on the
    whole crop, ``T`` the mu-law tone map.

    Window-partition cropping: stage 1 (flows, masks, H_m) runs on the whole training crop
    (512 in the paper); the refine net then runs on its ``window_size`` windows (128), its
    warps seeing only their window. Validation, test and inference run on whole images.

    Args:
        variant: ``"s"`` (SAFNet-S) or ``"full"`` (SAFNet).
        flow_scale: resolution of the flow / mask stage (official 0.5).
        window_size: refine-net window in training (crops must be multiples of it); ``None``
            refines whole crops.
        merge_weight: weight of ``L_m`` (paper 0.1).
        perceptual_weight: weight of the VGG term in ``L_r`` (paper 0.01). ``0`` skips it and
            never downloads VGG19 (offline training).
        census_weight: weight of the census term in ``L_m`` (1).
        init_weights: an official SAFNet(-S) ``.pth``, a ``.safetensors`` network state dict
            or a Lightning ``.ckpt``, loaded (strict, by :func:`hdrzoo.hub.load_weights_into`)
            once when a Trainer first sets the module up (fit, validate, test, predict):
            fine-tune from it, or evaluate it. A checkpoint Lightning restores (resume,
            ``--ckpt_path``) or weights given to ``hdrzoo.load`` override it.
        optimizer: ``params -> Optimizer`` (CLI ``--optimizer``); default AdamW(2e-4, wd 1e-4).
        lr_scheduler: ``optimizer -> LRScheduler`` (CLI ``--lr_scheduler``).
    """

    conventions = {"divisor": 65536}

    def __init__(
        self,
        variant: str = "s",
        flow_scale: float = 0.5,
        window_size: int | None = 128,
        merge_weight: float = 0.1,
        perceptual_weight: float = 0.01,
        census_weight: float = 1.0,
        init_weights: str | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        for name, value in (
            ("merge_weight", merge_weight),
            ("perceptual_weight", perceptual_weight),
            ("census_weight", census_weight),
        ):
            if not value >= 0:
                raise ModelError(f"SAFNetModule: {name} must be >= 0, got {value}")
        if window_size is not None and window_size < 1:
            raise ModelError(f"SAFNetModule: window_size must be >= 1 or None, got {window_size}")
        self.net = SAFNet(variant=variant, flow_scale=flow_scale)
        self.window_size = window_size
        self.merge_weight = float(merge_weight)
        self.perceptual_weight = float(perceptual_weight)
        self.census_weight = float(census_weight)
        self.use_init_weights(init_weights)
        self.mulaw_l1 = MuLawL1()
        self.census = CensusLoss(7)
        self.perceptual = VGGPerceptual() if perceptual_weight > 0 else None

    # ----------------------------------------------------------------- weights -----
    def convert_foreign_weights(self, raw: Any, path: Path) -> dict[str, torch.Tensor]:
        """Official checkpoint contents -> ``self.net`` state dict (used by ``hdrzoo.load``)."""
        return convert_official_state_dict(raw, source=str(path))

    # ---------------------------------------------------------------- training -----
    def training_forward(self, batch: dict[str, Any]) -> NetOutput:
        """Stage 1 on the whole crops, the refine net on ``window_size`` windows (WPC)."""
        net = self.net
        img0, img1, img2 = net.encode_inputs(batch["ldr"], batch["exposures"], batch["ref"])
        stage1 = net.forward_merge(img0, img1, img2)
        aux = {key: stage1[key] for key in ("hdr_m", "flow0", "flow2", "mask0", "mask2")}
        inputs = net.refine_inputs(img0, img1, img2, stage1)
        size = self.window_size
        if size is None:
            return NetOutput(hdr=net.refinenet(*inputs, aligned=stage1["aligned"]), aux=aux)
        height, width = img1.shape[-2:]
        if height % size or width % size:
            raise InputSizeError(
                f"SAFNetModule: training crops of {height}x{width} are not multiples of "
                f"window_size={size}; set the data module's crop_size to a multiple of {size} "
                "(the paper: 512 crops, 128 windows) or window_size to null"
            )
        # Every refine input is cut alike, so the warps inside see only their window.
        windows = net.refinenet(*(window_partition(t, size) for t in inputs))
        aux["hdr_r_windows"] = windows
        return NetOutput(hdr=window_reverse(windows, size, height, width), aux=aux)

    def compute_loss(
        self, out: NetOutput, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gt = batch["gt"]
        if "hdr_r_windows" in out.aux:
            refined, target = out.aux["hdr_r_windows"], window_partition(gt, self.window_size)
        else:
            refined, target = out.hdr, gt
        terms: dict[str, torch.Tensor] = {}
        terms["mulaw_r"] = self.mulaw_l1(refined, target)
        loss_r = terms["mulaw_r"]
        if self.perceptual is not None:
            terms["vgg_r"] = self.perceptual(_tonemap(refined), _tonemap(target))
            loss_r = loss_r + self.perceptual_weight * terms["vgg_r"]
        hdr_m = out.aux["hdr_m"]
        terms["mulaw_m"] = self.mulaw_l1(hdr_m, gt)
        terms["census_m"] = self.census(_tonemap(hdr_m), _tonemap(gt))
        loss_m = terms["mulaw_m"] + self.census_weight * terms["census_m"]
        terms["l_r"], terms["l_m"] = loss_r, loss_m
        with torch.no_grad():
            for key in ("flow0", "flow2"):
                terms[f"{key}_magnitude"] = out.aux[key].norm(dim=1).mean()
            for key in ("mask0", "mask2"):
                terms[f"{key}_mean"] = out.aux[key].mean()
        return loss_r + self.merge_weight * loss_m, terms


def _tonemap(x: torch.Tensor) -> torch.Tensor:
    return mu_law(x.clamp(min=0.0))


# ------------------------------------------------------ foreign checkpoints -----
def convert_official_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Official SAFNet checkpoint -> hdrzoo ``SAFNet`` state dict (the names are the same).

    Accepts a plain ``state_dict``, a dict holding one under ``"state_dict"`` (or ``"model"``),
    and ``module.`` prefixes left by ``DataParallel``/DDP.

    Args:
        obj: the loaded checkpoint, as :func:`hdrzoo.hub.read_weights_file` returns it
            (``torch.load`` with ``weights_only=True``, tensors on the CPU).
        source: file name used in error messages.

    Returns:
        ``{name: tensor}`` ready for ``SAFNet.load_state_dict(..., strict=True)``.
    """
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(
            f"{source}: expected a SAFNet state_dict (a mapping of tensor names to tensors), "
            f"got {type(obj).__name__}"
        )
    state = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor; "
                "this is not a SAFNet state_dict"
            )
        while name.startswith("module."):
            name = name[len("module.") :]
        state[name] = value
    return state
