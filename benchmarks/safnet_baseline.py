"""Frozen baseline: hdrzoo's SAFNet / SAFNet-S exactly as it was when it first matched the
official outputs (commit "models/safnet: SAFNet / SAFNet-S network ..."), kept standalone
(torch only: the warp and the triangle weights are frozen copies) so that
``benchmarks/safnet_speed.py`` can time the optimised ``hdrzoo.models.safnet`` against it.

The official code (ltkong218/SAFNet) is not available here; this straightforward
reimplementation of MODELS.md section 4 stands in for it. It is not imported by hdrzoo.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BaselineSAFNet"]


# ---- frozen copy of hdrzoo.ops.warp (as of the parity commit) ----
@lru_cache(maxsize=16)
def _cached_base_grid(
    height: int, width: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    build_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    with torch.inference_mode(False), torch.no_grad():
        xs = torch.linspace(-1.0, 1.0, width, dtype=build_dtype)
        ys = torch.linspace(-1.0, 1.0, height, dtype=build_dtype)
        grid = torch.stack(
            (xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)),
            dim=-1,
        )
        return grid.to(device=device, dtype=dtype).unsqueeze(0).contiguous()


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    height, width = x.shape[-2:]
    grid = _cached_base_grid(height, width, flow.device, flow.dtype)
    scale_x = (width - 1.0) / 2.0 if width > 1 else 1.0
    scale_y = (height - 1.0) / 2.0 if height > 1 else 1.0
    offset = torch.stack((flow[:, 0] / scale_x, flow[:, 1] / scale_y), dim=-1)
    return F.grid_sample(
        x, grid + offset, mode="bilinear", padding_mode="border", align_corners=True
    )


# ---- frozen copies of hdrzoo.ops.tonemap's triangle weights ----
def triangle_mid(x: torch.Tensor) -> torch.Tensor:
    return 1.0 - (2.0 * x - 1.0).abs()


def triangle_hi(x: torch.Tensor) -> torch.Tensor:
    return (2.0 * x - 1.0).clamp(min=0.0)


def triangle_lo(x: torch.Tensor) -> torch.Tensor:
    return (1.0 - 2.0 * x).clamp(min=0.0)


# ---- the network, as in hdrzoo/models/safnet.py at the parity commit ----
DIV_FLOW = 20.0
"""The refine nets see flows divided by this (official ``div_flow``)."""
FEATURES = 40


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
        x = torch.cat([warp(f0, flow0), f1, warp(f2, flow2), flow0, flow2, mask0, mask2], 1)
        x = self.conv1(x)
        x = channel_shuffle(self.conv2(x), 3)
        x = channel_shuffle(self.conv3(x), 3)
        x = channel_shuffle(self.conv4(x), 3)
        x = self.conv5(x)
        delta = self.conv6(x)
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
    ref_ldr = img1[:, 3:6]
    hi, lo, mid = triangle_hi(ref_ldr), triangle_lo(ref_ldr), triangle_mid(ref_ldr)
    w0 = hi * mask0
    w2 = lo * mask2
    w1 = mid + hi * (1.0 - mask0) + lo * (1.0 - mask2)
    merged = w0 * img0[:, 0:3] + w1 * img1[:, 0:3] + w2 * img2[:, 0:3]
    return merged / (w0 + w1 + w2 + 1e-9)


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
    ) -> torch.Tensor:
        x = torch.cat(
            [
                warp(img0, flow0),
                img1,
                warp(img2, flow2),
                flow0 / DIV_FLOW,
                flow2 / DIV_FLOW,
                mask0,
                mask2,
                hdr_m,
            ],
            1,
        )
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.conv4(x)
        x = self.conv5(x)
        x = self.conv6(x)
        return torch.clamp(hdr_m + self.conv7(x), 0.0, 1.0)


class ResBlock(nn.Module):
    """``PReLU(x + conv(convrelu(x)))`` with dilated 3x3 convs."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = _convrelu(channels, channels, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x + self.conv2(self.conv1(x)))


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
    ) -> torch.Tensor:
        feat0 = self.conv0(img0)
        feat1 = self.conv1(
            torch.cat([img1, flow0 / DIV_FLOW, flow2 / DIV_FLOW, mask0, mask2, hdr_m], 1)
        )
        feat2 = self.conv2(img2)
        x = torch.cat([warp(feat0, flow0), feat1, warp(feat2, flow2)], 1)
        x = self.resblock1(x)
        x = self.resblock2(x)
        x = self.resblock3(x)
        x = self.resblock4(x)
        x = self.resblock5(x)
        return torch.clamp(hdr_m + self.conv3(x), 0.0, 1.0)


class BaselineSAFNet(nn.Module):
    """The parity-first SAFNet: ``forward(img0, img1, img2)`` on 6-channel official inputs."""

    def __init__(self, variant: str = "s", flow_scale: float = 0.5) -> None:
        super().__init__()
        self.variant = variant
        self.flow_scale = float(flow_scale)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.refinenet = RefineNetS() if variant == "s" else RefineNet()

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
        feats0 = self.encoder(img0)
        feats1 = self.encoder(img1)
        feats2 = self.encoder(img2)
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

    def forward(
        self, img0: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor, refine: bool = True
    ) -> dict[str, torch.Tensor]:
        flow0, flow2, mask0, mask2 = self.forward_flow_mask(img0, img1, img2)
        hdr_m = merge_hdr(warp(img0, flow0), img1, warp(img2, flow2), mask0, mask2)
        out = {"hdr_m": hdr_m, "flow0": flow0, "flow2": flow2, "mask0": mask0, "mask2": mask2}
        if refine:
            out["hdr_r"] = self.refinenet(img0, img1, img2, flow0, flow2, mask0, mask2, hdr_m)
        return out
