"""STHDR (Li, Yao, Xie, Wang, "Scale-aware Two-stage High Dynamic Range Imaging").

Three scales (1/4, 1/2, full), processed coarse to fine with the *same* weights: at each
scale the Align Net corrects the short and long frames' features towards the reference
with two spatial correction modules (deformable convolution steered by a global-context
re-weighting), and the two-stage Merge Net (two HINet-style U-Nets with a supervised
attention module between them) predicts the HDR as a residual over the reference's linear
image, taking the upsampled output of the previous scale as an extra input.

No official code or weights exist; the layout follows MODELS.md section 7, which fixes the
block counts and kernels (1,574,123 parameters, 48.478 GMAC at 512x512) and lists every
choice where the paper is silent (section 9).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from hdrzoo.errors import BracketError, InputSizeError, ModelError
from hdrzoo.losses import MultiScaleMuLawL1
from hdrzoo.models.base import HDRModule, NetOutput, check_frame_count
from hdrzoo.models.registry import register_model
from hdrzoo.ops.attention import SAM, HINBlock
from hdrzoo.ops.deform import SCM
from hdrzoo.ops.tonemap import GAMMA, sort_by_exposure
from hdrzoo.ops.windows import crop, pad_to_multiple

__all__ = ["AlignNet", "UNet", "MergeNet", "STHDR", "STHDRModule"]

CHANNELS = 32
NEGATIVE_SLOPE = 0.2
SCALES = (4, 2, 1)
"""Down-sampling factors of the three scales, in processing order (coarse to fine)."""


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, NEGATIVE_SLOPE)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class AlignNet(nn.Module):
    """Align Net (MODELS.md 7.1, 66,984 params): shared input conv, an SCM per side, fusion.

    Shapes:
        ``frames (B, 3, 6, h, w)``: short, reference, long, each ``[ldr, linear]`` ->
        ``Z (B, 32, h, w)``.
    """

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.inp = nn.Conv2d(6, channels, 3, padding=1)
        self.scm_s = SCM(channels)
        self.scm_l = SCM(channels)
        self.out = nn.Conv2d(3 * channels, channels, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, count = frames.shape[:2]
        features = _lrelu(self.inp(frames.flatten(0, 1)))
        short, reference, long = features.unflatten(0, (batch, count)).unbind(1)
        aligned_short = self.scm_s(short, reference)
        aligned_long = self.scm_l(long, reference)
        return _lrelu(self.out(torch.cat([aligned_short, reference, aligned_long], dim=1)))


class UNet(nn.Module):
    """One Merge Net stage (746,048 params): a five-level HIN U-Net, 32 channels throughout.

    Encoder level l holds ``encoder_blocks[l]`` HIN blocks (instance norm on); levels are
    joined by a stride-2 conv 3x3. Decoding, each coarser output is bilinearly doubled,
    passed through a conv 1x1, added to the encoder output of the level and refined by
    ``decoder_blocks[l]`` HIN blocks (no norm).

    Shapes:
        ``(B, 32, h, w)`` with h, w multiples of 16 -> ``(B, 32, h, w)``.
    """

    def __init__(
        self,
        channels: int = CHANNELS,
        encoder_blocks: Sequence[int] = (1, 1, 2, 4, 22),
        decoder_blocks: Sequence[int] = (0, 0, 2, 4),
    ) -> None:
        super().__init__()
        if len(decoder_blocks) != len(encoder_blocks) - 1:
            raise ModelError("UNet: give one decoder block count per level except the coarsest")
        self.encoders = nn.ModuleList(
            nn.Sequential(*(HINBlock(channels, use_hin=True) for _ in range(n)))
            for n in encoder_blocks
        )
        self.downs = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in decoder_blocks
        )
        self.ups = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in decoder_blocks)
        self.decoders = nn.ModuleList(
            nn.Sequential(*(HINBlock(channels, use_hin=False) for _ in range(n)))
            for n in decoder_blocks
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder, down in zip(self.encoders[:-1], self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.encoders[-1](x)
        for level in reversed(range(len(skips))):
            x = self.ups[level](_upsample2(x)) + skips[level]
            x = self.decoders[level](x)
        return x


class MergeNet(nn.Module):
    """Two-stage Merge Net (MODELS.md 7.2, 1,507,139 params), shared by the three scales.

    Shapes:
        ``z (B, 32, h, w)`` aligned features, ``base (B, 3, h, w)`` the reference's linear
        image, optional ``previous (B, 3, h, w)`` the upsampled output of the coarser scale ->
        ``(hdr (B, 3, h, w) in [0, 1], sam_image (B, 3, h, w))``.
    """

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.prev = nn.Conv2d(channels + 3, channels, 1)
        self.u1 = UNet(channels)
        self.sam = SAM(channels, 3)
        self.cat = nn.Conv2d(2 * channels, channels, 1)
        self.u2 = UNet(channels)
        self.out = nn.Conv2d(channels, 3, 3, padding=1)
        # A zero output conv makes the untrained network return the reference's radiance
        # (MODELS.md is silent on initialisation): training starts from "do nothing", which
        # a merge must beat, instead of a random residual about 11 dB below it.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, z: torch.Tensor, base: torch.Tensor, previous: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if previous is not None:
            z = _lrelu(self.prev(torch.cat([z, previous], dim=1)))
        gated, sam_image = self.sam(self.u1(z), base)
        refined = self.u2(_lrelu(self.cat(torch.cat([gated, z], dim=1))))
        # A residual over the reference's linear image; the clamp keeps the [0, 1] range of
        # linear HDR in units of the shortest exposure (MODELS.md 9).
        hdr = (self.out(refined) + base).clamp(0.0, 1.0)
        return hdr, sam_image


class STHDR(nn.Module):
    """STHDR: Align Net + two-stage Merge Net, applied at 1/4, 1/2 and full scale.

    Frames are sorted by exposure and encoded as ``X_k = [ldr_k, ldr_k**gamma / t_k]``
    (6 channels, t relative to the shortest exposure). The input pyramid is average-pooled
    from full resolution; at each scale ``Z = align(X)``, ``H = merge(Z, base, up2(H_prev))``
    with ``base`` the reference's linear image at that scale. Any H, W: the frames are
    reflect-padded to a multiple of 64 (two scale halvings x four U-Net down-samplings)
    and the outputs cropped back.

    Args:
        gamma: gamma used to linearise the frames.

    Shapes:
        ``ldr (B, 3, 3, H, W)`` gamma-encoded RGB in [0, 1], ``exposures (B, 3)``, ``ref (B,)``
        (the middle exposure) -> :class:`NetOutput` with ``hdr (B, 3, H, W)`` linear in
        [0, 1] (units where the shortest exposure is 1) and ``aux``: ``hdr_s{f}`` and
        ``sam_s{f}`` ``(B, 3, H // f, W // f)`` for f = 4, 2, 1 (per-scale outputs and SAM
        images).

    Examples:
        >>> net = STHDR().eval()
        >>> out = net(torch.rand(1, 3, 3, 40, 70), torch.tensor([[1.0, 4.0, 16.0]]), torch.tensor([1]))
        >>> out.hdr.shape, out.aux["hdr_s2"].shape
        (torch.Size([1, 3, 40, 70]), torch.Size([1, 3, 20, 35]))
    """

    frames = 3
    size_multiple = 64

    def __init__(self, gamma: float = GAMMA) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.align = AlignNet()
        self.merge = MergeNet()

    def encode_inputs(
        self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate, sort by exposure and encode: ``(X (B, 3, 6, H, W), base (B, 3, H, W))``."""
        if not isinstance(ldr, torch.Tensor) or ldr.ndim != 5 or ldr.shape[2] != 3:
            shape = tuple(ldr.shape) if isinstance(ldr, torch.Tensor) else type(ldr).__name__
            raise InputSizeError(
                f"STHDR: ldr must be a (B, 3, 3, H, W) tensor of RGB frames, got {shape}"
            )
        batch, count = ldr.shape[:2]
        check_frame_count(self, count, what="STHDR ldr")
        exposures = torch.as_tensor(exposures, dtype=ldr.dtype, device=ldr.device)
        if exposures.shape != (batch, count):
            raise BracketError(
                f"STHDR: exposures must have shape ({batch}, {count}), got {tuple(exposures.shape)}"
            )
        if not (torch.isfinite(exposures).all() and (exposures > 0).all()):
            raise BracketError(
                f"STHDR: exposures must be finite and positive, got {exposures.tolist()}"
            )
        ref = torch.as_tensor(ref, dtype=torch.long, device=ldr.device).reshape(-1)
        if ref.numel() == 1:
            ref = ref.expand(batch)
        if ref.shape != (batch,) or ((ref < 0) | (ref >= count)).any():
            raise BracketError(
                f"STHDR: ref must hold one index in [0, {count}) per sample, got {ref.tolist()}"
            )
        ldr, exposures, ref = sort_by_exposure(ldr, exposures, ref)
        if (ref != 1).any():
            raise BracketError(
                "STHDR: the reference frame must be the middle exposure (STHDR aligns the short "
                f"and long frames to it); got positions {ref.tolist()} in exposure order. "
                "Choose the middle exposure as ref."
            )
        exposures = exposures / exposures.amin(dim=1, keepdim=True)
        linear = ldr.pow(self.gamma) / exposures[:, :, None, None, None]
        return torch.cat([ldr, linear], dim=2), linear[:, 1]

    def forward(self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor) -> NetOutput:
        return self.forward_encoded(*self.encode_inputs(ldr, exposures, ref))

    def forward_encoded(self, frames: torch.Tensor, base: torch.Tensor) -> NetOutput:
        """The network on encoded inputs ``frames (B, 3, 6, H, W)``, ``base (B, 3, H, W)``."""
        height, width = frames.shape[-2:]
        frames, _ = pad_to_multiple(frames, self.size_multiple)
        base, _ = pad_to_multiple(base, self.size_multiple)
        aux: dict[str, torch.Tensor] = {}
        previous = None
        for factor in SCALES:
            frames_s = frames if factor == 1 else _pool_frames(frames, factor)
            base_s = base if factor == 1 else F.avg_pool2d(base, factor)
            upsampled = None if previous is None else _upsample2(previous)
            hdr, sam_image = self.merge(self.align(frames_s), base_s, upsampled)
            previous = hdr
            aux[f"hdr_s{factor}"] = crop(hdr, height // factor, width // factor)
            aux[f"sam_s{factor}"] = crop(sam_image, height // factor, width // factor)
        return NetOutput(hdr=aux["hdr_s1"], aux=aux)


def _pool_frames(frames: torch.Tensor, factor: int) -> torch.Tensor:
    return F.avg_pool2d(frames.flatten(0, 1), factor).unflatten(0, frames.shape[:2])


# ----------------------------------------------------------------- LightningModule -----
PAPER = (
    "Li, Yao, Xie, Wang, Scale-aware Two-stage High Dynamic Range Imaging "
    "(no official code or weights)"
)


@register_model(
    "sthdr",
    paper=PAPER,
    description="STHDR (1.57 M params): deformable alignment, two-stage HIN merge, 3 scales",
)
class STHDRModule(HDRModule):
    """STHDR trained with the multi-scale mu-law L1 loss (MODELS.md 7.5).

    ``L = sum_s scale_weights_s * |T(H_s) - T(avg_pool(gt))|_1`` over the full, half and
    quarter scales, plus ``sam_weight`` times the same loss on the SAM images (0 by default:
    the paper does not supervise them). ``T`` is the mu-law tone map.

    Args:
        gamma: gamma used to linearise the frames.
        scale_weights: ``(full, half, quarter)`` weights (paper: all 1).
        sam_weight: weight of the SAM-image supervision (MPRNet-style; 0 = off).
        optimizer: ``params -> Optimizer`` (CLI ``--optimizer``); default AdamW(2e-4, wd 1e-4).
        lr_scheduler: ``optimizer -> LRScheduler`` (CLI ``--lr_scheduler``).
    """

    def __init__(
        self,
        gamma: float = GAMMA,
        scale_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        sam_weight: float = 0.0,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if len(scale_weights) != len(SCALES):
            raise ModelError(
                f"STHDRModule: scale_weights needs {len(SCALES)} values (full, half, quarter), "
                f"got {scale_weights}"
            )
        if not sam_weight >= 0:
            raise ModelError(f"STHDRModule: sam_weight must be >= 0, got {sam_weight}")
        self.net = STHDR(gamma=gamma)
        self.sam_weight = float(sam_weight)
        self.multiscale_loss = MultiScaleMuLawL1(scale_weights)

    def compute_loss(
        self, out: NetOutput, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        factors = (1, 2, 4)
        loss, per_scale = self.multiscale_loss([out.aux[f"hdr_s{f}"] for f in factors], batch["gt"])
        terms = {f"mulaw_s{f}": term for f, term in zip(factors, per_scale, strict=True)}
        if self.sam_weight > 0:
            sam_loss, _ = self.multiscale_loss([out.aux[f"sam_s{f}"] for f in factors], batch["gt"])
            terms["sam"] = sam_loss
            loss = loss + self.sam_weight * sam_loss
        return loss, terms
