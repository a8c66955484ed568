"""Tone curves and exposure handling shared by every model, metric and dataset.

All functions are pure torch, differentiable (almost everywhere: the triangles have kinks
at 0 and 0.5 and 1; ``tests/ops/test_tonemap.py`` runs a float64 gradcheck of each away
from them), device- and dtype-agnostic, and broadcast over any leading dimensions unless
stated.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "MU",
    "GAMMA",
    "mu_law",
    "inverse_mu_law",
    "linearize",
    "normalize_exposures",
    "sort_by_exposure",
    "triangle_mid",
    "triangle_hi",
    "triangle_lo",
    "classic_weights",
    "reinhard",
]

MU = 5000.0
"""The mu of the mu-law tone map used by every paper in the zoo."""

GAMMA = 2.2
"""The gamma the papers linearise with (not a measured camera response)."""


def mu_law(x: torch.Tensor, mu: float = MU) -> torch.Tensor:
    """Mu-law tone map ``T(x) = log(1 + mu x) / log(1 + mu)``.

    Args:
        x: linear HDR values, any shape; nominally in [0, 1]. Negative values are not clamped
            here (losses clamp at 0 themselves) and give NaN below ``-1/mu``.
        mu: compression strength (5000 in all papers of the zoo).

    Returns:
        Tensor of ``x``'s shape, in [0, 1] for ``x`` in [0, 1].

    Examples:
        >>> float(mu_law(torch.tensor(1.0)))
        1.0
    """
    return torch.log1p(mu * x) / math.log1p(mu)


def inverse_mu_law(y: torch.Tensor, mu: float = MU) -> torch.Tensor:
    """Inverse of :func:`mu_law`: ``x = ((1 + mu) ** y - 1) / mu``.

    Examples:
        >>> x = torch.tensor([0.0, 0.01, 1.0])
        >>> torch.allclose(inverse_mu_law(mu_law(x)), x)
        True
    """
    return torch.expm1(y * math.log1p(mu)) / mu


def reinhard(x: torch.Tensor, exposure: float = 1.0) -> torch.Tensor:
    """Global Reinhard operator ``y = e x / (1 + e x)`` for display (not used by any loss).

    Args:
        x: linear HDR, any shape, non-negative.
        exposure: multiplier ``e`` applied before the curve.

    Returns:
        Values in [0, 1) of ``x``'s shape.

    Examples:
        >>> reinhard(torch.tensor([0.0, 1.0, 3.0]))
        tensor([0.0000, 0.5000, 0.7500])
    """
    scaled = exposure * x.clamp(min=0.0)
    return scaled / (1.0 + scaled)


def linearize(ldr: torch.Tensor, exposures: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """Linear frames ``H_i = ldr_i ** gamma / t_i`` in units where ``t = 1``.

    Args:
        ldr: gamma-encoded frames in [0, 1], shape ``(..., N, C, H, W)``.
        exposures: exposure times ``(..., N)`` matching ``ldr``'s leading dimensions.
        gamma: the encoding gamma (2.2 in the papers; 2.24 in NTIRE).

    Returns:
        Linear frames of ``ldr``'s shape.

    Examples:
        >>> ldr = torch.full((2, 1, 1, 1), 0.5)
        >>> linearize(ldr, torch.tensor([1.0, 4.0]), gamma=2.0).flatten()
        tensor([0.2500, 0.0625])
    """
    return ldr.pow(gamma) / exposures[..., None, None, None]


def normalize_exposures(exposures: torch.Tensor) -> torch.Tensor:
    """Exposure times relative to the shortest one of each bracket: ``t / min(t)`` over the last dim.

    Examples:
        >>> normalize_exposures(torch.tensor([[0.5, 2.0, 8.0]]))
        tensor([[ 1.,  4., 16.]])
    """
    return exposures / exposures.amin(dim=-1, keepdim=True)


def sort_by_exposure(
    ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Re-order the frames of every bracket by exposure, ascending (stable).

    Args:
        ldr: ``(B, N, C, H, W)``.
        exposures: ``(B, N)``.
        ref: ``(B,)`` long, reference index in the given order.

    Returns:
        ``(ldr_sorted, exposures_sorted, ref_sorted)`` with ``ref`` re-indexed to the new order.
        Differentiable with respect to ``ldr`` and ``exposures`` (a permutation).

    Examples:
        >>> ldr = torch.arange(3.0).view(1, 3, 1, 1, 1)
        >>> _, t, ref = sort_by_exposure(ldr, torch.tensor([[4.0, 1.0, 16.0]]), torch.tensor([0]))
        >>> t, ref
        (tensor([[ 1.,  4., 16.]]), tensor([1]))
    """
    order = torch.argsort(exposures, dim=1, stable=True)
    exposures_sorted = torch.gather(exposures, 1, order)
    index = order[:, :, None, None, None].expand_as(ldr)
    ldr_sorted = torch.gather(ldr, 1, index)
    ref_sorted = (order == ref[:, None]).to(torch.long).argmax(dim=1)
    return ldr_sorted, exposures_sorted, ref_sorted


def triangle_mid(x: torch.Tensor) -> torch.Tensor:
    """``1 - |2x - 1|``: well-exposedness of an LDR value, peak 1 at 0.5.

    Examples:
        >>> triangle_mid(torch.tensor([0.0, 0.25, 0.5, 1.0]))
        tensor([0.0000, 0.5000, 1.0000, 0.0000])
    """
    return 1.0 - (2.0 * x - 1.0).abs()


def triangle_hi(x: torch.Tensor) -> torch.Tensor:
    """``max(0, 2x - 1)``: how much a too-bright reference hands to shorter exposures.

    Examples:
        >>> triangle_hi(torch.tensor([0.25, 0.75]))
        tensor([0.0000, 0.5000])
    """
    return (2.0 * x - 1.0).clamp(min=0.0)


def triangle_lo(x: torch.Tensor) -> torch.Tensor:
    """``max(0, 1 - 2x)``: how much a too-dark reference hands to longer exposures.

    Examples:
        >>> triangle_lo(torch.tensor([0.25, 0.75]))
        tensor([0.5000, 0.0000])
    """
    return (1.0 - 2.0 * x).clamp(min=0.0)


def classic_weights(ldr_sorted: torch.Tensor, ref: int) -> torch.Tensor:
    """Triangle merge weights of Kalantari 17, generalised to N frames (MODELS.md section 3).

    Where the reference is too bright its weight cascades to ever shorter frames, each
    keeping what it can (its own ``1 - triangle_hi``); too dark cascades to longer frames.
    The weights are non-negative and sum to exactly 1 per pixel and channel.

    Args:
        ldr_sorted: frames sorted by exposure (ascending), ``(B, N, C, H, W)`` in [0, 1].
        ref: the reference's index in the sorted order (one int for the whole batch).

    Returns:
        Weights ``(B, N, C, H, W)``.

    Examples:
        >>> w = classic_weights(torch.rand(1, 3, 3, 4, 4), ref=1)
        >>> bool(torch.allclose(w.sum(1), torch.ones(1, 3, 4, 4)))
        True
    """
    n = ldr_sorted.shape[1]
    x = ldr_sorted[:, ref]
    weights: list[torch.Tensor | None] = [None] * n
    weights[ref] = (
        triangle_mid(x)
        + (triangle_hi(x) if ref == 0 else 0.0)
        + (triangle_lo(x) if ref == n - 1 else 0.0)
    )
    carry = triangle_hi(x)
    for j in range(ref - 1, -1, -1):
        if j == 0:
            weights[j] = carry
        else:
            passed_on = triangle_hi(ldr_sorted[:, j])
            weights[j] = carry * (1.0 - passed_on)
            carry = carry * passed_on
    carry = triangle_lo(x)
    for j in range(ref + 1, n):
        if j == n - 1:
            weights[j] = carry
        else:
            passed_on = triangle_lo(ldr_sorted[:, j])
            weights[j] = carry * (1.0 - passed_on)
            carry = carry * passed_on
    return torch.stack(weights, dim=1)
