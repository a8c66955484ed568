"""Diffusion schedules, forward noising and the DDIM sampler, for any denoiser and any shape.

Notation (code name -> symbol of Song et al., "Denoising Diffusion Implicit Models"):

=============  ===========================================================
``betas``      beta_t, the variance added at step t (t = 0 ... T-1)
``abar``       alpha-bar_t = prod_{s <= t} (1 - beta_s); alpha-bar_{-1} := 1
``taus``       the sub-sequence tau_1 > tau_2 > ... > tau_S the sampler visits
``eps_fn``     the denoiser epsilon_theta(x_t, t)
``eta``        eta: 0 gives the deterministic DDIM, 1 the DDPM-like sampler
=============  ===========================================================

Everything is differentiable: LF-Diff trains its denoiser through all sampling steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from hdrzoo.errors import HDRZooError

__all__ = [
    "linear_betas",
    "cumulative_alphas",
    "q_sample",
    "ddim_timesteps",
    "ddim_sample",
    "timestep_embedding",
]


def linear_betas(T: int, start: float, end: float) -> torch.Tensor:
    """The linear variance schedule ``beta_t = linspace(start, end, T)`` in float64.

    Args:
        T: number of diffusion steps (>= 1).
        start: beta_0, in (0, 1).
        end: beta_{T-1}, in (0, 1).

    Returns:
        float64 tensor ``(T,)``.

    Examples:
        >>> linear_betas(3, 0.1, 0.3)
        tensor([0.1000, 0.2000, 0.3000], dtype=torch.float64)
    """
    if int(T) != T or T < 1:
        raise HDRZooError(f"linear_betas: T must be a positive integer, got {T}")
    if not (0.0 < start < 1.0 and 0.0 < end < 1.0):
        raise HDRZooError(
            f"linear_betas: start and end must lie in (0, 1), got start={start}, end={end}"
        )
    return torch.linspace(start, end, int(T), dtype=torch.float64)


def cumulative_alphas(betas: torch.Tensor) -> torch.Tensor:
    """``alpha-bar_t = prod_{s <= t} (1 - beta_s)``, computed in float64.

    Args:
        betas: ``(T,)`` variances in (0, 1).

    Returns:
        float64 tensor ``(T,)``, decreasing from ``1 - beta_0``.

    Examples:
        >>> cumulative_alphas(torch.tensor([0.5, 0.5]))
        tensor([0.5000, 0.2500], dtype=torch.float64)
    """
    return torch.cumprod(1.0 - betas.to(torch.float64), dim=0)


def _abar_at(abar: torch.Tensor, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """alpha-bar at ``t`` (an int, or ``(B,)`` indices), shaped to broadcast against ``like``."""
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        values = abar.to(like.device)[t.to(like.device, torch.long)]
        return values.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))
    return abar[int(t)].to(like.device, like.dtype)


def q_sample(
    x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor, abar: torch.Tensor
) -> torch.Tensor:
    """Noise a clean sample to step t: ``sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``.

    Args:
        x0: clean samples, any shape ``(B, ...)``.
        t: one step index for the whole batch (int) or one per sample (``(B,)`` long).
        noise: standard normal noise, the shape of ``x0``.
        abar: ``(T,)`` cumulative alphas (:func:`cumulative_alphas`).

    Returns:
        x_t, the shape and dtype of ``x0``.

    Examples:
        >>> abar = cumulative_alphas(linear_betas(10, 0.1, 0.2))
        >>> q_sample(torch.ones(2, 3), 0, torch.zeros(2, 3), abar)[0]
        tensor([0.9487, 0.9487, 0.9487])
    """
    if noise.shape != x0.shape:
        raise HDRZooError(
            f"q_sample: noise {tuple(noise.shape)} must have the shape of x0 {tuple(x0.shape)}"
        )
    a = _abar_at(abar, t, x0)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def ddim_timesteps(T: int, S: int, spacing: str = "trailing") -> list[int]:
    """The S steps a DDIM sampler visits, in decreasing order.

    ``trailing`` spacing starts at the last step: ``round(T - 1 - i T / S)`` for
    i = 0 ... S-1, so the sampler always starts from the (near) pure-noise end of the chain.

    Args:
        T: steps of the diffusion chain.
        S: sampling steps, 1 <= S <= T.
        spacing: only ``"trailing"``.

    Returns:
        ``S`` distinct ints in ``[0, T)``, decreasing.

    Examples:
        >>> ddim_timesteps(200, 10)
        [199, 179, 159, 139, 119, 99, 79, 59, 39, 19]
    """
    if spacing != "trailing":
        raise HDRZooError(f"ddim_timesteps: spacing must be 'trailing', got {spacing!r}")
    if int(S) != S or not 1 <= S <= T:
        raise HDRZooError(f"ddim_timesteps: need 1 <= S <= T, got S={S}, T={T}")
    return [round(T - 1 - i * T / S) for i in range(int(S))]


def _sigma(eta: float, abar_t: float, abar_next: float) -> float:
    """DDIM's sigma_t (eq. 16 of Song et al.) between alpha-bars ``abar_t`` and ``abar_next``."""
    if eta == 0.0:
        return 0.0
    return eta * math.sqrt((1.0 - abar_next) / (1.0 - abar_t)) * math.sqrt(1.0 - abar_t / abar_next)


def ddim_sample(
    eps_fn: Callable[[torch.Tensor, int], torch.Tensor],
    x_T: torch.Tensor,
    taus: Sequence[int],
    abar: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run the DDIM sampler from ``x_T`` through the steps ``taus`` down to a clean sample.

    For each step t of ``taus`` with t' the next entry (t' = -1 after the last, where
    alpha-bar = 1):

    1. eps = eps_fn(x_t, t)
    2. x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), without clipping
    3. sigma = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t')
    4. x_t' = sqrt(abar_t') x0 + sqrt(max(0, 1 - abar_t' - sigma^2)) eps + sigma xi

    xi is drawn with ``torch.randn(x.shape, generator=generator, dtype=x.dtype,
    device=x.device)`` after the eps_fn call, once per step whose sigma > 0 (never with
    eta = 0, never at the last step), so a seeded generator reproduces the samples exactly.
    t' is read from ``taus``, never computed as t - T/S (they differ when S does not divide T).
    Gradients flow through every step.

    Args:
        eps_fn: the denoiser; called as ``eps_fn(x_t, t)`` with ``x_t`` the shape of ``x_T``
            and ``t`` a Python ``int``; returns the predicted noise, the shape of ``x_t``.
        x_T: the starting sample, any shape (usually pure noise at ``taus[0]``).
        taus: strictly decreasing step indices in ``[0, len(abar))`` (:func:`ddim_timesteps`).
        abar: ``(T,)`` cumulative alphas.
        eta: stochasticity, >= 0.
        generator: random generator for xi (only used when eta > 0).

    Returns:
        x_0, the shape and dtype of ``x_T``.

    Examples:
        >>> abar = cumulative_alphas(linear_betas(200, 5e-4, 0.1))
        >>> x0, eps = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
        >>> x_T = q_sample(x0, 199, eps, abar)
        >>> out = ddim_sample(lambda x, t: eps, x_T, ddim_timesteps(200, 10), abar)
        >>> torch.allclose(out, x0, atol=1e-4)
        True
    """
    taus = [int(t) for t in taus]
    if not taus:
        raise HDRZooError("ddim_sample: taus is empty; give at least one step")
    if any(b >= a for a, b in zip(taus, taus[1:])) or taus[-1] < 0 or taus[0] >= len(abar):
        raise HDRZooError(
            f"ddim_sample: taus must decrease strictly within [0, {len(abar)}), got {taus}"
        )
    if not eta >= 0.0:
        raise HDRZooError(f"ddim_sample: eta must be >= 0, got {eta}")
    abar_values = abar.detach().to("cpu", torch.float64).tolist()
    x = x_T
    for index, t in enumerate(taus):
        t_next = taus[index + 1] if index + 1 < len(taus) else -1
        abar_t = abar_values[t]
        abar_next = abar_values[t_next] if t_next >= 0 else 1.0
        eps = eps_fn(x, t)
        x0 = (x - math.sqrt(1.0 - abar_t) * eps) / math.sqrt(abar_t)
        sigma = _sigma(eta, abar_t, abar_next)
        direction = math.sqrt(max(0.0, 1.0 - abar_next - sigma**2))
        x = math.sqrt(abar_next) * x0 + direction * eps
        if sigma > 0.0:
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + sigma * xi
    return x


def timestep_embedding(t: int | torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion steps: ``[cos(t f_k), sin(t f_k)]``, cos block first.

    ``f_k = exp(-ln(10000) k / half)`` for k = 0 ... half-1, ``half = dim / 2``.

    Args:
        t: one step (int) or ``(B,)`` steps (any numeric dtype).
        dim: embedding width, even.

    Returns:
        float32 tensor ``(B, dim)`` (``B = 1`` for an int), on ``t``'s device.

    Examples:
        >>> timestep_embedding(torch.tensor([0]), 4)
        tensor([[1., 1., 0., 0.]])
    """
    if int(dim) != dim or dim < 2 or dim % 2:
        raise HDRZooError(f"timestep_embedding: dim must be an even integer >= 2, got {dim}")
    t = torch.as_tensor(t).reshape(-1).to(torch.float32)
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = t[:, None] * freqs[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
