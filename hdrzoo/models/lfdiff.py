"""LF-Diff (Hu, Yan, Qi, Zhang, "Generating Content for HDR Deghosting from Frequency View",
CVPR 2024), built as MODELS.md section 6 specifies; no official code or weights exist.

AHDRNet-style attention aligns the short and long frames to the reference (``align``); the
dynamic HDR reconstruction network (``dhrnet``) refines the merged feature with frequency
blocks that split it into a low band (transposed-attention blocks at reduced resolution)
and a high band (convolutions). A compact low-frequency prior z ``(B, 3, H/4, W/4)`` guides
the first block of each group (PIM, cross-attention to z). Stage 1 learns z from the ground
truth (``lpenet``); stage 2 learns to generate it: a small diffusion model (``denoiser``)
runs 10 DDIM steps from noise, conditioned on ``lpenet_dm``'s encoding of the aligned
feature, and is trained through all its steps together with the reconstruction.

Variants: ``baseline`` (no prior), ``stage1`` (prior from the ground truth: a training
stage), ``full`` (the inference model, diffusion prior), ``direct`` (the paper's "w/o DM"
ablation: the condition is used as the prior directly).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from hdrzoo.errors import BracketError, InputSizeError, ModelError, WeightsError
from hdrzoo.losses import MuLawL1, VGGPerceptual
from hdrzoo.models.base import HDRModule, NetOutput, check_frame_count
from hdrzoo.models.registry import register_model
from hdrzoo.ops.align import SpatialAttention
from hdrzoo.ops.attention import ChannelAttention, CrossTransformerBlock, ResBlock, TransformerBlock
from hdrzoo.ops.diffusion import (
    cumulative_alphas,
    ddim_sample,
    ddim_timesteps,
    linear_betas,
    q_sample,
    timestep_embedding,
)
from hdrzoo.ops.rowconv import band_rows, map_row_bands, use_row_blocks
from hdrzoo.ops.tonemap import GAMMA, mu_law, sort_by_exposure
from hdrzoo.ops.windows import crop, pad_to_multiple

__all__ = ["LFDiff", "LFDiffModule", "VARIANTS"]

VARIANTS = ("full", "stage1", "baseline", "direct")
CHANNELS = 60
HEADS = 6
FFN_EXPANSION = 2.66
LOW_BAND_BLOCKS = 5
"""Transformer blocks on the low band of every FRM / PIM (our choice: it reproduces the
paper's parameter table)."""
PRIOR_CHANNELS = 3
PRIOR_SCALE = 4
"""The prior z lives at 1/4 of the input resolution (LPENet's PixelUnshuffle(4))."""
SIZE_ARGUMENTS = (
    "channels",
    "heads",
    "low_band_blocks",
    "frms_per_group",
    "prior_width",
    "denoiser_width",
)
DIFFUSION_STEPS = 200
BETA_START, BETA_END = 5e-4, 0.1


# ------------------------------------------------------------------ alignment -----
class Alignment(nn.Module):
    """Per-frame 3x3 convs, spatial attention of the short and long frames against the
    reference, fusion conv 180 -> 60 (MODELS.md 6.1; 496,320 params)."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.conv_short = nn.Conv2d(6, channels, 3, padding=1)
        self.conv_ref = nn.Conv2d(6, channels, 3, padding=1)
        self.conv_long = nn.Conv2d(6, channels, 3, padding=1)
        self.att_short = SpatialAttention(channels)
        self.att_long = SpatialAttention(channels)
        self.fuse = nn.Conv2d(3 * channels, channels, 3, padding=1)

    def forward(
        self, x_short: torch.Tensor, x_ref: torch.Tensor, x_long: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 6, H, W)`` x 3 -> ``(F_0, f_ref)``, both ``(B, 60, H, W)``."""
        if use_row_blocks(x_ref):
            # CPU inference: four 3x3 convs deep, all local, so bands of rows with a 4-row
            # halo give the same features while only F_0 and f_ref exist at full size.
            rows = band_rows(x_ref, self.fuse.in_channels)
            f0, f_ref = map_row_bands(self._align, [x_short, x_ref, x_long], halo=4, rows=rows)
            return f0, f_ref
        return self._align(x_short, x_ref, x_long)

    def _align(
        self, x_short: torch.Tensor, x_ref: torch.Tensor, x_long: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f_s, f_r, f_l = self.conv_short(x_short), self.conv_ref(x_ref), self.conv_long(x_long)
        f_s = f_s * self.att_short(f_s, f_r)
        f_l = f_l * self.att_long(f_l, f_r)
        return self.fuse(torch.cat([f_s, f_r, f_l], dim=1)), f_r


# ---------------------------------------------------------- frequency blocks -----
def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class _FrequencyBlock(nn.Module):
    """x + CA(conv1x1([ResBlock(high), up(low branch(low))])) after a ResBlock and an
    average-pool split of the feature into low and high bands."""

    def __init__(self, pool: int, low_blocks: nn.ModuleList, channels: int = CHANNELS) -> None:
        super().__init__()
        self.pool = pool
        self.res_in = ResBlock(channels)
        self.res_high = ResBlock(channels)
        self.low_blocks = low_blocks
        self.fuse = nn.Conv2d(2 * channels, channels, 1)
        self.channel_attention = ChannelAttention(channels, 4)

    def low_branch(self, low: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        # Written so that a 1000 x 1500 merge holds few full-resolution maps at once: each is
        # released (or overwritten, in inference) once used, and the 1x1 fusion of
        # [high, up(low)] is applied as the sum of its two halves: the concatenation never
        # exists. (Fusing the low half before the up-sampling would also be exact, both being
        # linear, but would change the layer-by-layer cost MODELS.md states.)
        x1 = self.res_in(x)
        low = F.avg_pool2d(x1, self.pool)
        up = _upsample(low, x1)
        high_band = x1 - up if torch.is_grad_enabled() else x1.sub_(up)
        del x1, up
        high = self.res_high(high_band)
        del high_band
        fused = self._fuse_half(high, 0)
        del high
        low = _upsample(self.low_branch(low, prior), fused)
        if torch.is_grad_enabled():
            fused += self._fuse_half(low, 1)
        else:
            # Inference: the 1x1 conv acts on each pixel alone, so adding it band by band
            # gives the same sum without a full-size copy of its output.
            for top in range(0, low.shape[-2], band_rows(low, low.shape[1])):
                rows = slice(top, top + band_rows(low, low.shape[1]))
                fused[:, :, rows] += self._fuse_half(low[:, :, rows], 1)
        del low
        return self.channel_attention(fused).add_(x)

    def _fuse_half(self, part: torch.Tensor, index: int) -> torch.Tensor:
        """``fuse`` restricted to the ``index``-th half of its input channels (the bias goes
        with the first half)."""
        channels = part.shape[1]
        weight = self.fuse.weight[:, index * channels : (index + 1) * channels]
        return F.conv2d(part, weight, self.fuse.bias if index == 0 else None)


class FRM(_FrequencyBlock):
    """Frequency refinement module: 5 transformer blocks on the 1/2-resolution low band
    (377,715 params)."""

    def __init__(
        self, channels: int = CHANNELS, heads: int = HEADS, low_blocks: int = LOW_BAND_BLOCKS
    ) -> None:
        blocks = nn.ModuleList(
            TransformerBlock(channels, heads, FFN_EXPANSION) for _ in range(low_blocks)
        )
        super().__init__(pool=2, low_blocks=blocks, channels=channels)

    def low_branch(self, low: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        for block in self.low_blocks:
            low = block(low)
        return low


class PIM(_FrequencyBlock):
    """Prior integration module: the 1/4-resolution low band cross-attends to the prior z
    (5 cross-transformer blocks; 343,490 params)."""

    def __init__(self, channels: int = CHANNELS, low_blocks: int = LOW_BAND_BLOCKS) -> None:
        blocks = nn.ModuleList(
            CrossTransformerBlock(channels, PRIOR_CHANNELS, FFN_EXPANSION)
            for _ in range(low_blocks)
        )
        super().__init__(pool=PRIOR_SCALE, low_blocks=blocks, channels=channels)

    def low_branch(self, low: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        if prior is None:
            raise ModelError("PIM needs the low-frequency prior z; this variant has none")
        for block in self.low_blocks:
            low = block(low, prior)
        return low


class ReconstructionGroup(nn.Module):
    """PIM (or an FRM without prior), 3 FRMs, conv 3x3, residual over the group."""

    def __init__(
        self,
        use_prior: bool,
        channels: int = CHANNELS,
        heads: int = HEADS,
        low_blocks: int = LOW_BAND_BLOCKS,
        frms: int = 3,
    ) -> None:
        super().__init__()
        if use_prior:
            self.first: _FrequencyBlock = PIM(channels, low_blocks)
        else:
            self.first = FRM(channels, heads, low_blocks)
        self.frms = nn.ModuleList(FRM(channels, heads, low_blocks) for _ in range(frms))
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        y = self.first(x, prior)
        for frm in self.frms:
            y = frm(y)
        return x + self.conv(y)


class DHRNet(nn.Module):
    """Dynamic HDR reconstruction network (MODELS.md 6.3): 3 groups, then an HDR-Transformer
    style tail ``sigmoid(conv(f_ref + conv(x + F_0)))`` (4,561,368 params; 4,664,043 without
    prior)."""

    def __init__(
        self,
        use_prior: bool,
        channels: int = CHANNELS,
        heads: int = HEADS,
        low_blocks: int = LOW_BAND_BLOCKS,
        frms_per_group: int = 3,
    ) -> None:
        super().__init__()
        self.groups = nn.ModuleList(
            ReconstructionGroup(use_prior, channels, heads, low_blocks, frms_per_group)
            for _ in range(3)
        )
        self.conv_after_body = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(
        self, f0: torch.Tensor, f_ref: torch.Tensor, prior: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.tail(self.body(f0, prior), f0, f_ref)

    def body(self, f0: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """The three groups."""
        x = f0
        for group in self.groups:
            x = group(x, prior)
        return x

    def tail(self, x: torch.Tensor, f0: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        """``sigmoid(conv_out(f_ref + conv_after_body(x + F_0)))``."""
        residual = self.conv_after_body(x + f0)
        return torch.sigmoid(self.conv_out(f_ref + residual))


# --------------------------------------------------------------- prior nets -----
class LPENet(nn.Module):
    """Low-frequency prior extraction: PixelUnshuffle(4), conv 3x3 -> 48, LReLU, 4 ResBlocks,
    conv 3x3 48 -> 3 (209,091 params on ``[H_gt, T(H_gt)]``; 582,339 on F_0)."""

    def __init__(self, in_channels: int, width: int = 48, out_channels: int = PRIOR_CHANNELS):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(PRIOR_SCALE)
        self.conv_in = nn.Conv2d(in_channels * PRIOR_SCALE**2, width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock(width) for _ in range(4)))
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.leaky_relu(self.conv_in(self.unshuffle(x)), 0.2)
        return self.conv_out(self.blocks(hidden))


class TimeResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between, 1x1 skip if widths differ."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class _Up(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Denoiser(nn.Module):
    """epsilon_theta([z_t, D], t): a 3-level U-Net at 1/4 resolution, widths 48/96/96, two
    time-conditioned residual blocks per level (MODELS.md 6.4; 1,683,219 params)."""

    def __init__(self, base: int = 48, in_channels: int = 2 * PRIOR_CHANNELS) -> None:
        super().__init__()
        emb_dim = 4 * base
        wide = 2 * base
        self.base = base
        self.time_mlp = nn.Sequential(
            nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.conv_in = nn.Conv2d(in_channels, base, 3, padding=1)
        self.down1 = nn.ModuleList(
            [TimeResBlock(base, base, emb_dim), TimeResBlock(base, base, emb_dim)]
        )
        self.downsample1 = nn.Conv2d(base, base, 3, stride=2, padding=1)
        self.down2 = nn.ModuleList(
            [TimeResBlock(base, wide, emb_dim), TimeResBlock(wide, wide, emb_dim)]
        )
        self.downsample2 = nn.Conv2d(wide, wide, 3, stride=2, padding=1)
        self.middle = nn.ModuleList(
            [TimeResBlock(wide, wide, emb_dim), TimeResBlock(wide, wide, emb_dim)]
        )
        self.upsample2 = _Up(wide, wide)
        self.up2 = nn.ModuleList(
            [TimeResBlock(2 * wide, wide, emb_dim), TimeResBlock(wide, wide, emb_dim)]
        )
        self.upsample1 = _Up(wide, base)
        self.up1 = nn.ModuleList(
            [TimeResBlock(2 * base, base, emb_dim), TimeResBlock(base, base, emb_dim)]
        )
        self.norm_out = nn.GroupNorm(8, base)
        self.conv_out = nn.Conv2d(base, PRIOR_CHANNELS, 3, padding=1)

    @staticmethod
    def _run(blocks: nn.ModuleList, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            x = block(x, emb)
        return x

    def forward(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``x (B, 6, h, w)`` = ``[z_t, D]`` (h, w multiples of 4), ``t`` an int or ``(B,)``."""
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.base).to(x.dtype))
        s1 = self._run(self.down1, self.conv_in(x), emb)
        s2 = self._run(self.down2, self.downsample1(s1), emb)
        h = self._run(self.middle, self.downsample2(s2), emb)
        h = self._run(self.up2, torch.cat([self.upsample2(h), s2], dim=1), emb)
        h = self._run(self.up1, torch.cat([self.upsample1(h), s1], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


# -------------------------------------------------------------------- network -----
class LFDiff(nn.Module):
    """LF-Diff: ``full`` 7,532,337 params, ``stage1`` 5,266,779, ``baseline`` 5,160,363,
    ``direct`` 5,849,118.

    Args:
        variant: ``"full"`` (diffusion prior; the inference model), ``"stage1"`` (prior
            from the ground truth: needs ``gt``), ``"baseline"`` (no prior) or ``"direct"``
            (the condition D used as the prior, the paper's "w/o DM").
        sampling_steps: DDIM steps S (paper 10), trailing spacing over T = 200.
        eta: DDIM stochasticity (0: deterministic given the starting noise).
        sample_seed: seed of the generator drawing the starting noise z_T (and, with
            eta > 0, the sampler's noise) at inference; the generator lives on the input's
            device, so a seed reproduces its output on the same device.
        gamma: gamma used to linearise the frames.
        channels, heads, low_band_blocks, frms_per_group, prior_width, denoiser_width: the
            sizes of MODELS.md 6 (60, 6, 5, 3, 48, 48). Other values build a smaller LF-Diff
            of the same layout (the CPU training tests use one); published figures refer to
            the defaults.

    Shapes:
        ``ldr (B, 3, 3, H, W)`` gamma-encoded in [0, 1] with H, W multiples of 16,
        ``exposures (B, 3)``, ``ref (B,)`` (the middle exposure), optional ``gt (B, 3, H, W)``
        -> :class:`NetOutput`: ``hdr (B, 3, H, W)`` linear in [0, 1] (units where the
        shortest exposure is 1); ``aux``: ``z_hat`` (the prior DHRNet used) and, when made,
        ``condition`` (D) and ``z`` (LPENet's prior of ``gt``), all ``(B, 3, H/4, W/4)``.
        In one batch every sample draws its own part of one noise tensor, so a sample's
        output depends on its position in the batch (not on the other samples' content).

    Examples:
        >>> net = LFDiff("baseline").eval()
        >>> out = net(torch.rand(1, 3, 3, 16, 32), torch.tensor([[1.0, 4.0, 16.0]]), torch.tensor([1]))
        >>> out.hdr.shape
        torch.Size([1, 3, 16, 32])
    """

    frames = 3
    size_multiple = 16

    def __init__(
        self,
        variant: str = "full",
        sampling_steps: int = 10,
        eta: float = 0.0,
        sample_seed: int = 0,
        gamma: float = GAMMA,
        channels: int = CHANNELS,
        heads: int = HEADS,
        low_band_blocks: int = LOW_BAND_BLOCKS,
        frms_per_group: int = 3,
        prior_width: int = 48,
        denoiser_width: int = 48,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ModelError(f"LFDiff: unknown variant {variant!r}; use one of {VARIANTS}")
        if not (int(sampling_steps) == sampling_steps and 1 <= sampling_steps <= DIFFUSION_STEPS):
            raise ModelError(
                f"LFDiff: sampling_steps must be an integer in [1, {DIFFUSION_STEPS}], got {sampling_steps}"
            )
        if not eta >= 0:
            raise ModelError(f"LFDiff: eta must be >= 0, got {eta}")
        self.variant = variant
        self.sampling_steps = int(sampling_steps)
        self.eta = float(eta)
        self.sample_seed = int(sample_seed)
        self.gamma = float(gamma)
        if channels % heads:
            raise ModelError(f"LFDiff: channels={channels} must be divisible by heads={heads}")
        if denoiser_width % 8:
            raise ModelError(
                f"LFDiff: denoiser_width must be a multiple of 8 (GroupNorm of 8), got {denoiser_width}"
            )
        self.align = Alignment(channels)
        self.dhrnet = DHRNet(
            variant != "baseline", channels, heads, low_band_blocks, frms_per_group
        )
        if variant != "baseline":
            self.lpenet = LPENet(6, prior_width)
        if variant in ("full", "direct"):
            self.lpenet_dm = LPENet(channels, prior_width)
        if variant == "full":
            self.denoiser = Denoiser(denoiser_width)
            abar = cumulative_alphas(linear_betas(DIFFUSION_STEPS, BETA_START, BETA_END))
            # Derived from the constants above, so kept out of the state dict.
            self.register_buffer("abar", abar.to(torch.float32), persistent=False)

    @property
    def needs_gt(self) -> bool:
        """Whether the forward pass needs the ground truth (``stage1``)."""
        return self.variant == "stage1"

    @property
    def timesteps(self) -> list[int]:
        """The DDIM steps visited, e.g. 199, 179, ..., 19 for S = 10."""
        return ddim_timesteps(DIFFUSION_STEPS, self.sampling_steps)

    # ------------------------------------------------------------------ inputs -----
    def encode_inputs(
        self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sort by exposure and build ``X_k = [ldr_k, ldr_k**gamma / t_k]`` (short, ref, long),
        each ``(B, 6, H, W)``; raise for anything but 3 frames, middle reference, H and W
        multiples of 16."""
        if not isinstance(ldr, torch.Tensor) or ldr.ndim != 5 or ldr.shape[2] != 3:
            shape = tuple(ldr.shape) if isinstance(ldr, torch.Tensor) else type(ldr).__name__
            raise InputSizeError(f"LFDiff: ldr must be a (B, 3, 3, H, W) tensor, got {shape}")
        batch, frames, _, height, width = ldr.shape
        check_frame_count(self, frames, what="LFDiff ldr")
        if height % self.size_multiple or width % self.size_multiple:
            raise InputSizeError(
                f"LFDiff: H and W must be multiples of {self.size_multiple}, got {height}x{width}; "
                "pad the frames (module.merge() pads and crops back for you)"
            )
        exposures = torch.as_tensor(exposures, dtype=ldr.dtype, device=ldr.device)
        if exposures.shape != (batch, frames):
            raise BracketError(
                f"LFDiff: exposures must have shape ({batch}, {frames}), got {tuple(exposures.shape)}"
            )
        if not (torch.isfinite(exposures).all() and (exposures > 0).all()):
            raise BracketError(
                f"LFDiff: exposures must be finite and positive, got {exposures.tolist()}"
            )
        ref = torch.as_tensor(ref, dtype=torch.long, device=ldr.device).reshape(-1)
        if ref.numel() == 1:
            ref = ref.expand(batch)
        if ref.shape != (batch,) or ((ref < 0) | (ref >= frames)).any():
            raise BracketError(
                f"LFDiff: ref must hold one index in [0, {frames}) per sample, got {ref.tolist()}"
            )
        ldr, exposures, ref = sort_by_exposure(ldr, exposures, ref)
        if (ref != 1).any():
            raise InputSizeError(
                "LFDiff: the reference frame must be the middle exposure; got reference "
                f"positions {ref.tolist()} in exposure order (0 = shortest)"
            )
        exposures = exposures / exposures.amin(dim=1, keepdim=True)
        linear = ldr.pow(self.gamma) / exposures[:, :, None, None, None]
        frames6 = torch.cat([ldr, linear], dim=2)
        return frames6[:, 0], frames6[:, 1], frames6[:, 2]

    # ------------------------------------------------------------------- prior -----
    def prior_from_gt(self, gt: torch.Tensor) -> torch.Tensor:
        """LPENet's prior z ``(B, 3, H/4, W/4)`` of the linear ground truth ``(B, 3, H, W)``."""
        if not hasattr(self, "lpenet"):
            raise ModelError(f"LFDiff variant {self.variant!r} has no LPENet")
        return self.lpenet(torch.cat([gt, mu_law(gt.clamp(min=0.0))], dim=1))

    def sample_prior(
        self,
        condition: torch.Tensor,
        z_T: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """DDIM from ``z_T`` to the prior, conditioned on ``condition`` (D); differentiable."""

        def eps_fn(z_t: torch.Tensor, t: int) -> torch.Tensor:
            return self.denoiser(torch.cat([z_t, condition], dim=1), t)

        return ddim_sample(eps_fn, z_T, self.timesteps, self.abar, self.eta, generator)

    def _start_noise(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Generator]:
        generator = torch.Generator(device=like.device).manual_seed(self.sample_seed)
        noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        return noise, generator

    # ----------------------------------------------------------------- forward -----
    def forward(
        self,
        ldr: torch.Tensor,
        exposures: torch.Tensor,
        ref: torch.Tensor | int,
        gt: torch.Tensor | None = None,
        start_from_gt: bool = False,
    ) -> NetOutput:
        """Merge 3-exposure brackets (shapes in the class docstring).

        Args:
            gt: linear ground truth ``(B, 3, H, W)``; needed by ``stage1``; for the other
                prior variants it adds ``aux["z"]``.
            start_from_gt: ``full`` only, stage-2 training: start the sampler from
                ``q_sample(z, 199, noise)`` of LPENet's z (noise from the global RNG) instead
                of the seeded pure noise.
        """
        gt_shape = (ldr.shape[0], 3, *ldr.shape[-2:])
        x_short, x_ref, x_long = self.encode_inputs(ldr, exposures, ref)
        f0, f_ref = self.align(x_short, x_ref, x_long)
        del x_short, x_long
        if not torch.is_grad_enabled():
            # Inference: f_ref is needed by DHRNet's tail only; recomputing it there (one
            # 6 -> 60 conv of the reference frame) beats holding it at full resolution
            # through the twelve frequency blocks.
            x_ref, f_ref = x_ref.clone(), None
        if self.variant == "baseline":
            return NetOutput(hdr=self._reconstruct(f0, f_ref, x_ref, None))
        if gt is not None and tuple(gt.shape) != gt_shape:
            raise BracketError(f"LFDiff: gt must have shape {gt_shape}, got {tuple(gt.shape)}")
        aux: dict[str, torch.Tensor] = {}
        if gt is not None:
            if self.variant == "stage1":
                aux["z"] = self.prior_from_gt(gt)
            else:
                # Stage 2 freezes LPENet: its z is a fixed target.
                with torch.no_grad():
                    aux["z"] = self.prior_from_gt(gt)
        if self.variant == "stage1":
            if gt is None:
                raise BracketError(
                    "LFDiff variant 'stage1' takes its prior from the ground truth: pass gt, "
                    "or use variant 'full' for inference"
                )
            prior = aux["z"]
        else:
            aux["condition"] = self.lpenet_dm(f0)
            if self.variant == "direct":
                prior = aux["condition"]
            elif start_from_gt:
                if gt is None:
                    raise BracketError("LFDiff: start_from_gt=True needs gt")
                z_T = q_sample(aux["z"], self.timesteps[0], torch.randn_like(aux["z"]), self.abar)
                prior = self.sample_prior(aux["condition"], z_T)
            else:
                z_T, generator = self._start_noise(aux["condition"])
                prior = self.sample_prior(aux["condition"], z_T, generator)
        aux["z_hat"] = prior
        return NetOutput(hdr=self._reconstruct(f0, f_ref, x_ref, prior), aux=aux)

    def _reconstruct(
        self,
        f0: torch.Tensor,
        f_ref: torch.Tensor | None,
        x_ref: torch.Tensor,
        prior: torch.Tensor | None,
    ) -> torch.Tensor:
        """DHRNet; ``f_ref`` ``None`` recomputes it from ``x_ref`` after the groups."""
        x = self.dhrnet.body(f0, prior)
        if f_ref is None:
            f_ref = self.align.conv_ref(x_ref)
        return self.dhrnet.tail(x, f0, f_ref)


# ----------------------------------------------------------------- LightningModule -----
PAPER = (
    "Hu, Yan, Qi, Zhang, Generating Content for HDR Deghosting from Frequency View, "
    "CVPR 2024 (no official code or weights)"
)
_STAGE_OF_VARIANT = {"baseline": 0, "stage1": 1, "full": 2, "direct": 2}
STAGE1_PARTS = ("align", "dhrnet", "lpenet")
"""The parts of the network stage 2 takes from a trained stage 1."""
WARMUP_FROZEN_PARTS = ("align", "dhrnet")
"""The parts that keep their stage-1 weights during stage 2's prior warm-up."""


# No constructor defaults pinned here (the class's own default is variant "full"), so that
# every variant's checkpoint records the name "lfdiff" and `hdrzoo.load(ckpt)` rebuilds it.
@register_model(
    "lfdiff",
    paper=PAPER,
    description="LF-Diff (7.53 M params): low-frequency diffusion prior + frequency-split transformer",
)
class LFDiffModule(HDRModule):
    """LF-Diff with its two training stages (MODELS.md 6.7).

    Stage 0 (``baseline``) and 1 (``stage1``): ``L_rec = |T(H) - T(gt)|_1 +
    perceptual_weight * VGG(T(H), T(gt))``, stage 1 training align, DHRNet and LPENet (the
    prior of the ground truth) jointly. Stage 2 (``full``): initialised from a stage-1
    checkpoint (``stage1_checkpoint``), LPENet frozen; every training step runs the DDIM
    sampler from ``q_sample(z, 199, noise)`` and trains align, DHRNet, LPENet_DM and the
    denoiser through all its steps with ``L_rec + diffusion_weight * |z_hat - z|_1``.
    ``direct`` trains with ``L_rec + diffusion_weight * |D - z|_1``.

    Stage 2 may begin with a prior warm-up (our choice; the paper trains jointly from the
    first step): for ``prior_warmup_steps`` optimizer steps align and DHRNet keep their
    stage-1 weights while LPENet_DM and the denoiser learn, then everything trains jointly
    with every learning rate multiplied by ``joint_lr_scale``. An untrained sampler returns
    a prior about 180 times the noise (``1 / sqrt(abar_199)``), so without the warm-up the
    first updates of align and DHRNet follow a meaningless prior (docs/models/lfdiff.md).

    Args:
        variant: ``"full"``, ``"stage1"``, ``"baseline"`` or ``"direct"``.
        stage: 0, 1 or 2; ``None`` derives it from the variant (baseline 0, stage1 1,
            full / direct 2); a stage that contradicts the variant is an error.
        sampling_steps: DDIM steps in training and inference (paper 10).
        sample_seed: seed of the inference noise; the same seed gives the same output.
        eta: DDIM stochasticity (0 in the paper's setting).
        stage1_checkpoint: stage 2 only: a stage-1 Lightning ``.ckpt`` (or a
            ``.safetensors`` state dict of a stage-1 network) whose align, DHRNet and LPENet
            (:data:`STAGE1_PARTS`) initialise this network when a Trainer first sets the
            module up (read by the hub, see :meth:`HDRModule.use_init_weights`); a
            checkpoint Lightning restores (resume, ``--ckpt_path``) takes precedence.
        perceptual_weight: weight of the VGG term (paper 1e-2); ``0`` skips it and never
            downloads VGG19.
        diffusion_weight: weight of the prior term in stage 2 (paper 1).
        prior_warmup_steps: stage 2 only: optimizer steps at the start during which align
            and DHRNet (:data:`WARMUP_FROZEN_PARTS`) are not updated (0: joint from the
            start, as in the paper).
        joint_lr_scale: stage 2 only: factor applied to every parameter group's learning
            rate once, when the joint phase starts (step ``prior_warmup_steps``); 1 leaves
            it alone. Schedulers that multiply the current lr (StepLR) keep it; one that
            recomputes from its base lr (LambdaLR) overrides it.
        sizes: overrides of LFDiff's size arguments (``channels``, ``heads``,
            ``low_band_blocks``, ``frms_per_group``, ``prior_width``, ``denoiser_width``);
            ``None`` builds the paper's network. Smaller sizes are for quick experiments and
            the CPU tests.
        optimizer: ``params -> Optimizer`` (CLI ``--optimizer``).
        lr_scheduler: ``optimizer -> LRScheduler`` (CLI ``--lr_scheduler``).
    """

    def __init__(
        self,
        variant: str = "full",
        stage: int | None = None,
        sampling_steps: int = 10,
        sample_seed: int = 0,
        eta: float = 0.0,
        stage1_checkpoint: str | None = None,
        perceptual_weight: float = 0.01,
        diffusion_weight: float = 1.0,
        prior_warmup_steps: int = 0,
        joint_lr_scale: float = 1.0,
        sizes: dict[str, int] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if variant not in VARIANTS:
            raise ModelError(f"LFDiffModule: unknown variant {variant!r}; use one of {VARIANTS}")
        expected_stage = _STAGE_OF_VARIANT[variant]
        if stage is not None and stage != expected_stage:
            raise ModelError(
                f"LFDiffModule: stage {stage} does not match variant {variant!r} (stage "
                f"{expected_stage}); set variant baseline for 0, stage1 for 1, full for 2"
            )
        for name, value in (
            ("perceptual_weight", perceptual_weight),
            ("diffusion_weight", diffusion_weight),
        ):
            if not value >= 0:
                raise ModelError(f"LFDiffModule: {name} must be >= 0, got {value}")
        if int(prior_warmup_steps) != prior_warmup_steps or prior_warmup_steps < 0:
            raise ModelError(
                f"LFDiffModule: prior_warmup_steps must be an integer >= 0, got {prior_warmup_steps}"
            )
        if not joint_lr_scale > 0:
            raise ModelError(f"LFDiffModule: joint_lr_scale must be > 0, got {joint_lr_scale}")
        if (prior_warmup_steps or joint_lr_scale != 1.0) and expected_stage != 2:
            raise ModelError(
                "LFDiffModule: prior_warmup_steps and joint_lr_scale shape stage 2; use them with "
                f"variant 'full' (or 'direct'), not {variant!r}"
            )
        if stage1_checkpoint is not None and expected_stage != 2:
            raise ModelError(
                "LFDiffModule: stage1_checkpoint initialises stage 2; use it with variant 'full' "
                f"(or 'direct'), not {variant!r}"
            )
        self.stage = expected_stage
        unknown = sorted(set(sizes or {}) - set(SIZE_ARGUMENTS))
        if unknown:
            raise ModelError(
                f"LFDiffModule: unknown sizes {unknown}; the size arguments are {SIZE_ARGUMENTS}"
            )
        self.net = LFDiff(
            variant=variant,
            sampling_steps=sampling_steps,
            eta=eta,
            sample_seed=sample_seed,
            **(sizes or {}),
        )
        if self.stage == 2:
            self.net.lpenet.requires_grad_(False)
        self.stage1_checkpoint = stage1_checkpoint
        self.use_init_weights(stage1_checkpoint, parts=STAGE1_PARTS)
        self.perceptual_weight = float(perceptual_weight)
        self.diffusion_weight = float(diffusion_weight)
        self.prior_warmup_steps = int(prior_warmup_steps)
        self.joint_lr_scale = float(joint_lr_scale)
        self.mulaw_l1 = MuLawL1()
        self.perceptual = VGGPerceptual() if perceptual_weight > 0 else None

    # ----------------------------------------------------------------- weights -----
    def load_stage1(self, stage1: LFDiff) -> None:
        """Copy align, DHRNet and LPENet from a trained stage-1 network into this one."""
        if not hasattr(stage1, "lpenet") or stage1.variant == "baseline":
            raise WeightsError(
                f"LFDiffModule: the stage-1 network is variant {stage1.variant!r}; stage 2 needs "
                "one trained with a prior (variant 'stage1')"
            )
        for name in STAGE1_PARTS:
            getattr(self.net, name).load_state_dict(getattr(stage1, name).state_dict())
        self.net_weights_loaded = True

    def setup(self, stage: str) -> None:
        # The base class loads STAGE1_PARTS of `stage1_checkpoint` (once, before Lightning
        # restores a checkpoint, which therefore wins).
        super().setup(stage)
        if self.stage == 2 and stage == "fit" and not self.net_weights_loaded:
            raise WeightsError(
                "LFDiffModule: stage 2 (variant 'full') starts from a trained stage 1; pass "
                "--model.init_args.stage1_checkpoint PATH (train it with "
                "configs/lfdiff/synthetic_stage1.yaml first)"
            )

    # ---------------------------------------------------------------- training -----
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.stage != 2:
            return
        step = self.trainer.global_step
        # Our choice where the paper is silent (docs/models/lfdiff.md, "Stage 2: why a
        # warm-up"): on the CPU test's small LF-Diff, joint training from the first step
        # reads 17.4 dB after 150 steps, the warm-up then lr / 10 28.3 dB after 150 + 150.
        if step < self.prior_warmup_steps:
            # Prior warm-up: dropping the gradients (rather than zeroing them) makes the
            # optimizer skip these parameters, so they keep their stage-1 weights and Adam
            # starts their moments only when the joint phase begins.
            for part in WARMUP_FROZEN_PARTS:
                for parameter in getattr(self.net, part).parameters():
                    parameter.grad = None
        elif step == self.prior_warmup_steps and self.joint_lr_scale != 1.0:
            # Stored in the optimizer's state, so a resumed run keeps the scaled rate.
            for group in optimizer.param_groups:
                group["lr"] *= self.joint_lr_scale

    def training_forward(self, batch: dict[str, Any]) -> NetOutput:
        gt = batch["gt"] if self.stage > 0 else None
        return self.net(
            batch["ldr"], batch["exposures"], batch["ref"], gt=gt, start_from_gt=self.stage == 2
        )

    def forward(
        self,
        ldr: torch.Tensor,
        exposures: torch.Tensor,
        ref: torch.Tensor,
        gt: torch.Tensor | None = None,
    ) -> NetOutput:
        """Inference on any H, W (``gt`` is needed by ``stage1`` only).

        Validation and test see whole frames (1000 x 1500 in Kalantari 17): they are
        reflect-padded to a multiple of 16 and the outputs cropped back, as ``merge`` does.
        """
        height, width = ldr.shape[-2:]
        ldr, _ = pad_to_multiple(ldr, self.net.size_multiple)
        if gt is not None:
            gt, _ = pad_to_multiple(gt, self.net.size_multiple)
        out = self.net(ldr, exposures, ref, gt=gt)
        prior_height, prior_width = -(-height // PRIOR_SCALE), -(-width // PRIOR_SCALE)
        return NetOutput(
            hdr=crop(out.hdr, height, width),
            aux={key: crop(value, prior_height, prior_width) for key, value in out.aux.items()},
        )

    def evaluation_forward(self, batch: dict[str, Any]) -> NetOutput:
        # Stage 1's prior comes from the ground truth, in validation as in training.
        gt = batch.get("gt") if self.net.needs_gt else None
        return self(batch["ldr"], batch["exposures"], batch["ref"], gt=gt)

    def compute_loss(
        self, out: NetOutput, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gt = batch["gt"]
        terms: dict[str, torch.Tensor] = {"mulaw": self.mulaw_l1(out.hdr, gt)}
        loss = terms["mulaw"]
        if self.perceptual is not None:
            terms["vgg"] = self.perceptual(_tonemap(out.hdr), _tonemap(gt))
            loss = loss + self.perceptual_weight * terms["vgg"]
        terms["l_rec"] = loss
        if self.stage == 2:
            terms["l_diff"] = F.l1_loss(out.aux["z_hat"], out.aux["z"])
            loss = loss + self.diffusion_weight * terms["l_diff"]
        if "z" in out.aux:
            with torch.no_grad():
                terms["z_mean"] = out.aux["z"].mean()
                terms["z_std"] = out.aux["z"].std()
        return loss, terms


def _tonemap(x: torch.Tensor) -> torch.Tensor:
    return mu_law(x.clamp(min=0.0))
