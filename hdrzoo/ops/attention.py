"""Attention and gating blocks shared by the restoration-style merge networks.

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

__all__ = ["SAM", "HINBlock"]


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

    Example:
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

    Example:
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
