"""Soft census (ternary) loss of UnFlow, in the form IFRNet / RIFE use (MODELS.md 2.11)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError

__all__ = ["CensusLoss", "soft_census"]


def soft_census(gray: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Soft census transform: ``c_o(p) = d / sqrt(0.81 + d^2)`` with ``d = g(p + o) - g(p)``.

    Args:
        gray: ``(B, 1, H, W)`` single-channel image.
        kernel: ``(P*P, 1, P, P)`` identity kernel that extracts each neighbour (zeros
            outside the image).

    Returns:
        ``(B, P*P, H, W)``, one channel per offset ``o`` in row-major order.
    """
    patch = kernel.shape[-1]
    neighbours = F.conv2d(gray, kernel, padding=patch // 2)
    difference = neighbours - gray
    return difference / torch.sqrt(0.81 + difference**2)


class CensusLoss(nn.Module):
    """Soft census loss between a prediction and a target image.

    1. ``g`` = mean of the colour channels; 2. soft census of ``g`` over a ``patch x patch``
    neighbourhood (the centre included); 3. ``delta = c(prediction) - stopgrad(c(target))``;
    4. per pixel ``mean_o delta^2 / (0.1 + delta^2)``; 5. only pixels at least ``patch // 2``
    from every border count, but the sum is divided by all ``B * H * W`` pixels.

    Args:
        patch: odd neighbourhood size (7 in UnFlow / IFRNet / SAFNet).

    Shapes:
        ``prediction``, ``target``: ``(B, C, H, W)``, typically mu-law tone-mapped images in
        [0, 1]. Returns a scalar. No gradient flows into ``target``.

    Examples:
        >>> loss = CensusLoss()
        >>> x = torch.rand(1, 3, 16, 16)
        >>> float(loss(x, x))
        0.0
    """

    def __init__(self, patch: int = 7) -> None:
        super().__init__()
        if patch < 1 or patch % 2 == 0:
            raise InputSizeError(f"CensusLoss: patch must be an odd size >= 1, got {patch}")
        self.patch = patch
        kernel = torch.eye(patch * patch).reshape(patch * patch, 1, patch, patch)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape or prediction.ndim != 4:
            raise InputSizeError(
                f"CensusLoss: expected two (B, C, H, W) tensors of one shape, got "
                f"{tuple(prediction.shape)} and {tuple(target.shape)}"
            )
        kernel = self.kernel.to(prediction.dtype)
        census_prediction = soft_census(prediction.mean(1, keepdim=True), kernel)
        with torch.no_grad():
            census_target = soft_census(target.mean(1, keepdim=True), kernel)
        delta = census_prediction - census_target
        distance = (delta**2 / (0.1 + delta**2)).mean(1, keepdim=True)
        border = self.patch // 2
        mask = torch.zeros_like(distance)
        mask[:, :, border : distance.shape[-2] - border, border : distance.shape[-1] - border] = 1.0
        return (distance * mask).sum() / distance.numel()
