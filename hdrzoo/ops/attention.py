"""Attention, gating and normalised residual blocks shared by the merge networks.

- The Restormer family (Zamir et al., CVPR 2022): attention is computed between channels
  rather than pixels, so memory and time grow linearly with the number of pixels and whole
  megapixel images run without tiling. ``CrossMDTA`` takes its keys and values from a
  second tensor (LF-Diff's prior). ``ChannelAttention`` is RCAN's squeeze-and-excite and
  ``ResBlock`` the plain two-conv residual unit.
- :class:`SAM`: MPRNet's supervised attention module (an intermediate image, then a gate
  computed from it on the features).
- :class:`HINBlock`: HINet's residual unit with half instance normalisation.

All modules take and return ``(B, C, H, W)`` float tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.rowconv import band_rows, map_row_bands, use_row_blocks

__all__ = [
    "LayerNorm2d",
    "transposed_attention",
    "MDTA",
    "CrossMDTA",
    "GDFN",
    "TransformerBlock",
    "CrossTransformerBlock",
    "ChannelAttention",
    "ResBlock",
    "SAM",
    "HINBlock",
]


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of every pixel, with a learnable scale and bias.

    ``(x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance over C.

    Args:
        channels: C.
        eps: added to the variance.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Examples:
        >>> y = LayerNorm2d(4)(torch.randn(2, 4, 3, 3))
        >>> bool(y.mean(dim=1).abs().max() < 1e-6)
        True
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        normed = (x - mean) / torch.sqrt(var + self.eps)
        return normed * self.weight[:, None, None] + self.bias[:, None, None]


def transposed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """Channel-to-channel attention of every head: ``softmax(q^ k^T * temperature) v``.

    q^ and k^ are q and k L2-normalised along the pixel axis, so ``q^ k^T`` holds cosine
    similarities between channels and the map is ``(C/h, C/h)`` whatever the image size.
    Any permutation of the pixels (the last axis) permutes the output the same way.

    Args:
        q: ``(B, heads, C/heads, P)`` queries, P = H W pixels.
        k: ``(B, heads, C/heads, P)`` keys.
        v: ``(B, heads, C/heads, P)`` values.
        temperature: ``(heads, 1, 1)`` (or broadcastable) multiplier of the similarities.

    Returns:
        ``(B, heads, C/heads, P)``.

    Examples:
        >>> q = k = v = torch.randn(1, 2, 3, 10)
        >>> transposed_attention(q, k, v, torch.ones(2, 1, 1)).shape
        torch.Size([1, 2, 3, 10])
    """
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    attn = torch.softmax((q @ k.transpose(-2, -1)) * temperature, dim=-1)
    return attn @ v


def _pointwise_then_depthwise(c_in: int, c_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 1, bias=bias),
        nn.Conv2d(c_out, c_out, 3, padding=1, groups=c_out, bias=bias),
    )


class MDTA(nn.Module):
    """Multi-Dconv head transposed self-attention (Restormer).

    qkv = dwconv3x3(conv1x1 C->3C(x)); q, k, v of each head attend across channels
    (:func:`transposed_attention`, learnable per-head temperature, init 1); then conv1x1 C->C.
    Parameters (C = 60, 6 heads, no bias): 16,026.

    Args:
        channels: C, divisible by ``heads``.
        heads: attention heads.
        bias: biases in the convolutions.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``; cost linear in H W.

    Examples:
        >>> MDTA(12, heads=3)(torch.randn(2, 12, 8, 8)).shape
        torch.Size([2, 12, 8, 8])
    """

    def __init__(self, channels: int, heads: int, bias: bool = False) -> None:
        super().__init__()
        if channels % heads:
            raise InputSizeError(f"MDTA: channels={channels} must be divisible by heads={heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = _pointwise_then_depthwise(channels, 3 * channels, bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.reshape(b, self.heads, c // self.heads, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        out = transposed_attention(
            self._split_heads(q), self._split_heads(k), self._split_heads(v), self.temperature
        )
        return self.project_out(out.reshape(x.shape))


class CrossMDTA(nn.Module):
    """Single-head transposed cross-attention: queries from x, keys and values from z.

    q = dwconv3x3(conv1x1 C->C(x)); (k, v) = split(dwconv3x3(conv1x1 Z->2C(z)));
    out = conv1x1 C->C(softmax(q^ k^T tau) v) with a scalar temperature tau (init 1).
    Parameters (C = 60, Z = 3, no bias): 9,181.

    Args:
        channels: C of x and of the output.
        z_channels: Z of the guiding tensor.
        bias: biases in the convolutions.

    Shapes:
        x ``(B, C, H, W)``, z ``(B, Z, H, W)`` (same H, W) -> ``(B, C, H, W)``.

    Examples:
        >>> CrossMDTA(8, 3)(torch.randn(1, 8, 4, 4), torch.randn(1, 3, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, channels: int, z_channels: int, bias: bool = False) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1, 1, 1))
        self.q = _pointwise_then_depthwise(channels, channels, bias)
        self.kv = _pointwise_then_depthwise(z_channels, 2 * channels, bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-2:] != x.shape[-2:] or z.shape[0] != x.shape[0]:
            raise InputSizeError(
                f"CrossMDTA: z {tuple(z.shape)} must have x's batch and spatial size "
                f"{tuple(x.shape)}; resize the prior to the feature map first"
            )
        b, c, h, w = x.shape
        q = self.q(x).reshape(b, 1, c, h * w)
        k, v = (t.reshape(b, 1, c, h * w) for t in self.kv(z).chunk(2, dim=1))
        out = transposed_attention(q, k, v, self.temperature)
        return self.project_out(out.reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network (Restormer).

    hidden = int(C e); (a, b) = split(dwconv3x3(conv1x1 C->2 hidden(x)));
    out = conv1x1 hidden->C(GELU(a) * b). Parameters (C = 60, e = 2.66): 31,482.
    In CPU inference it runs in bands of rows, as :class:`ResBlock` does.

    Args:
        channels: C.
        expansion: e, the hidden width factor.
        bias: biases in the convolutions.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Examples:
        >>> GDFN(8)(torch.randn(1, 8, 5, 5)).shape
        torch.Size([1, 8, 5, 5])
    """

    def __init__(self, channels: int, expansion: float = 2.66, bias: bool = False) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = _pointwise_then_depthwise(channels, 2 * hidden, bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_row_blocks(x):
            # CPU inference: its 2 * hidden channels exist one band of rows at a time.
            width = self.project_in[0].out_channels
            return map_row_bands(self._feed_forward, [x], halo=1, rows=band_rows(x, width))[0]
        return self._feed_forward(x)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.project_in(x).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """x + MDTA(LN(x)), then + GDFN(LN(x)). Parameters (60, 6 heads, 2.66): 47,748.

    Args:
        channels: C.
        heads: heads of the MDTA.
        expansion: GDFN width factor.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Examples:
        >>> TransformerBlock(12, heads=2)(torch.randn(1, 12, 4, 4)).shape
        torch.Size([1, 12, 4, 4])
    """

    def __init__(self, channels: int, heads: int, expansion: float = 2.66) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.attn = MDTA(channels, heads)
        self.norm2 = LayerNorm2d(channels)
        self.ffn = GDFN(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class CrossTransformerBlock(nn.Module):
    """x + CrossMDTA(LN(x), z), then + GDFN(LN(x)). Parameters (60, 3, 2.66): 40,903.

    Args:
        channels: C.
        z_channels: channels of the guiding tensor z (not normalised).
        expansion: GDFN width factor.

    Shapes:
        x ``(B, C, H, W)``, z ``(B, Z, H, W)`` -> ``(B, C, H, W)``.

    Examples:
        >>> CrossTransformerBlock(8, 3)(torch.randn(1, 8, 4, 4), torch.randn(1, 3, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, channels: int, z_channels: int, expansion: float = 2.66) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.attn = CrossMDTA(channels, z_channels)
        self.norm2 = LayerNorm2d(channels)
        self.ffn = GDFN(channels, expansion)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), z)
        return x + self.ffn(self.norm2(x))


class ChannelAttention(nn.Module):
    """RCAN channel attention: ``x * sigmoid(conv1x1(ReLU(conv1x1(mean_HW(x)))))``.

    Args:
        channels: C.
        reduction: r; the squeeze has C // r channels. Parameters (60, 4): 1,875.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Examples:
        >>> ChannelAttention(8, 4)(torch.ones(1, 8, 3, 3)).shape
        torch.Size([1, 8, 3, 3])
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // reduction, 1)
        self.excite = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.excite(F.relu(self.squeeze(s))))


class ResBlock(nn.Module):
    """``x + conv3x3(LReLU_0.2(conv3x3(x)))``. Parameters (C = 60): 64,920.

    In CPU inference (:func:`~hdrzoo.ops.rowconv.use_row_blocks`) it runs in bands of rows
    (:func:`~hdrzoo.ops.rowconv.map_row_bands`), the same values to float rounding with
    only the input and output at full size.

    Args:
        channels: C.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Examples:
        >>> ResBlock(4)(torch.randn(1, 4, 6, 6)).shape
        torch.Size([1, 4, 6, 6])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_row_blocks(x):
            # CPU inference: the inner activations exist one band of rows at a time.
            rows = band_rows(x, self.conv1.out_channels)
            return map_row_bands(self._residual, [x], halo=2, rows=rows)[0]
        return self._residual(x)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class SAM(nn.Module):
    """Supervised attention module (Zamir et al., MPRNet, 2021); all convs without bias.

    ``img = conv_k(x) + base`` (C -> 3), ``g = sigmoid(conv_k(img))`` (3 -> C),
    ``out = conv_k(x) * g + x`` (C -> C). Returns ``(out, img)``.

    Args:
        channels: ``C``.
        kernel_size: ``k`` (odd; padding ``k // 2``).

    Shapes:
        ``x (B, C, H, W)``, ``base (B, 3, H, W)`` -> ``out (B, C, H, W)``,
        ``img (B, 3, H, W)``. Parameters for C = 32, k = 3: 10,944.

    Examples:
        >>> out, img = SAM(8)(torch.rand(1, 8, 4, 4), torch.rand(1, 3, 4, 4))
        >>> out.shape, img.shape
        (torch.Size([1, 8, 4, 4]), torch.Size([1, 3, 4, 4]))
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.feature = nn.Conv2d(channels, channels, kernel_size, padding=padding, bias=False)
        self.to_image = nn.Conv2d(channels, 3, kernel_size, padding=padding, bias=False)
        self.to_gate = nn.Conv2d(3, channels, kernel_size, padding=padding, bias=False)

    def forward(self, x: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.to_image(x) + base
        gate = torch.sigmoid(self.to_gate(image))
        return self.feature(x) * gate + x, image


class HINBlock(nn.Module):
    """HINet's residual unit (Chen et al., HINet, 2021), LReLU slope 0.2.

    ``o = conv3x3(x)``; with ``use_hin`` the first ``C/2`` channels of ``o`` go through
    ``InstanceNorm2d(C/2, affine=True)`` (half instance normalisation) and the rest pass
    unchanged; ``o = LReLU(o)``; ``o = LReLU(conv3x3(o))``; ``out = o + conv1x1(x)``.

    Args:
        channels: ``C`` (even when ``use_hin``).
        use_hin: normalise half of the channels after the first conv.

    Shapes:
        ``x (B, C, H, W)`` -> ``(B, C, H, W)``. Parameters for C = 32: 19,584 with HIN,
        19,552 without. A 1x1 input is normalised to the norm's bias (the formula's value;
        ``torch.nn.InstanceNorm2d`` itself refuses a single pixel), so U-Nets may reach 1x1.

    Examples:
        >>> HINBlock(8)(torch.rand(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    negative_slope = 0.2

    def __init__(self, channels: int, use_hin: bool = True) -> None:
        super().__init__()
        if use_hin and channels % 2:
            raise InputSizeError(f"HINBlock: use_hin needs an even channel count, got {channels}")
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.identity = nn.Conv2d(channels, channels, 1)
        self.norm = nn.InstanceNorm2d(channels // 2, affine=True) if use_hin else None

    def _instance_norm(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] * x.shape[-1] > 1:
            return self.norm(x)
        # torch refuses a single pixel; the formula's value there is (x - x) * w + b = b.
        return (x - x) * self.norm.weight[:, None, None] + self.norm.bias[:, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.norm is not None:
            normalised, kept = out.chunk(2, dim=1)
            out = torch.cat([self._instance_norm(normalised), kept], dim=1)
        out = F.leaky_relu(out, self.negative_slope)
        out = F.leaky_relu(self.conv2(out), self.negative_slope)
        return out + self.identity(x)
