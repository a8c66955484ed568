"""ops/diffusion.py against an independent float64 (numpy) transcription of the DDIM equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hdrzoo.errors import HDRZooError
from hdrzoo.ops.diffusion import (
    cumulative_alphas,
    ddim_sample,
    ddim_timesteps,
    linear_betas,
    q_sample,
    timestep_embedding,
)


def _numpy_abar(T: int, start: float, end: float) -> np.ndarray:
    betas = start + (end - start) * np.arange(T, dtype=np.float64) / (T - 1)
    out, running = np.empty(T), 1.0
    for t in range(T):
        running *= 1.0 - betas[t]
        out[t] = running
    return out


def _reference_ddim(eps_fn, x_T: np.ndarray, taus, abar: np.ndarray, eta, draw_noise):
    """DDIM written out step by step in numpy float64 (Song et al., eq. 12 and 16)."""
    x = x_T.copy()
    for i, t in enumerate(taus):
        prev = taus[i + 1] if i + 1 < len(taus) else None
        a_t = abar[t]
        a_prev = 1.0 if prev is None else abar[prev]
        eps = eps_fn(x, t)
        pred_x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = np.sqrt(a_prev) * pred_x0 + np.sqrt(max(0.0, 1 - a_prev - sigma**2)) * eps
        if sigma > 0:
            x = x + sigma * draw_noise(x.shape)
    return x


def test_schedule_matches_closed_form_and_lfdiff_figures():
    betas = linear_betas(200, 5e-4, 0.1)
    assert betas.dtype == torch.float64 and betas.shape == (200,)
    abar = cumulative_alphas(betas)
    np.testing.assert_allclose(abar.numpy(), _numpy_abar(200, 5e-4, 0.1), rtol=1e-12)
    # MODELS.md 6.5: z_T is pure noise, the last DDIM step starts from abar = 0.900.
    assert float(abar[199]) == pytest.approx(3.03e-5, rel=0.01)
    assert float(abar[19]) == pytest.approx(0.900, abs=0.001)


def test_ddim_timesteps_examples():
    assert ddim_timesteps(200, 10) == [199, 179, 159, 139, 119, 99, 79, 59, 39, 19]
    assert ddim_timesteps(10, 3) == [9, 6, 2]  # round(9 - 10/3) = 6, round(9 - 20/3) = 2
    assert ddim_timesteps(5, 5) == [4, 3, 2, 1, 0]
    assert ddim_timesteps(1000, 1) == [999]
    for T, S in ((200, 7), (37, 11), (1000, 50)):
        taus = ddim_timesteps(T, S)
        assert taus == [round(T - 1 - i * T / S) for i in range(S)]
        assert all(a > b for a, b in zip(taus, taus[1:])) and taus[-1] >= 0


@pytest.mark.parametrize(
    "kwargs", [dict(T=10, S=0), dict(T=10, S=11), dict(T=10, S=3, spacing="leading")]
)
def test_ddim_timesteps_rejects_bad_arguments(kwargs):
    with pytest.raises(HDRZooError):
        ddim_timesteps(**kwargs)


def test_q_sample_per_sample_steps_match_formula():
    abar = cumulative_alphas(linear_betas(50, 1e-3, 0.05))
    x0, eps = (
        torch.randn(3, 2, 4, 4, dtype=torch.float64),
        torch.randn(3, 2, 4, 4, dtype=torch.float64),
    )
    t = torch.tensor([0, 17, 49])
    got = q_sample(x0, t, eps, abar)
    for b in range(3):
        a = float(abar[int(t[b])])
        expected = math.sqrt(a) * x0[b] + math.sqrt(1 - a) * eps[b]
        torch.testing.assert_close(got[b], expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(q_sample(x0, 17, eps, abar)[1], got[1])
    with pytest.raises(HDRZooError, match="noise"):
        q_sample(x0, 3, eps[:1], abar)


def _nonlinear_eps(x, t):
    # Any function of (x, t) serves: the sampler must not care what the denoiser is.
    if isinstance(x, np.ndarray):
        return 0.7 * np.tanh(x) + 0.01 * t * np.cos(x)
    return 0.7 * torch.tanh(x) + 0.01 * t * torch.cos(x)


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("T,S", [(200, 10), (37, 5), (10, 3)])
def test_ddim_matches_float64_equations(eta, T, S):
    abar = cumulative_alphas(linear_betas(T, 5e-4, 0.1))
    taus = ddim_timesteps(T, S)
    x_T = torch.randn(2, 3, 5, 4, dtype=torch.float64)

    calls = []

    def eps_fn(x, t):
        assert isinstance(t, int)
        calls.append(t)
        return _nonlinear_eps(x, t)

    got = ddim_sample(eps_fn, x_T, taus, abar, eta=eta, generator=torch.Generator().manual_seed(5))
    assert calls == taus
    reference_generator = torch.Generator().manual_seed(5)
    expected = _reference_ddim(
        _nonlinear_eps,
        x_T.numpy(),
        taus,
        abar.numpy(),
        eta,
        lambda shape: torch.randn(
            shape, generator=reference_generator, dtype=torch.float64
        ).numpy(),
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_noise_is_drawn_after_the_denoiser_once_per_stochastic_step():
    # The denoiser draws from the same generator: the samples agree only if the sampler draws
    # its xi after each eps_fn call and exactly once per step with sigma > 0.
    T, S, eta = 50, 6, 0.8
    abar = cumulative_alphas(linear_betas(T, 1e-3, 0.1))
    taus = ddim_timesteps(T, S)
    x_T = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(11)

    def eps_fn(x, t):
        return torch.tanh(x) + 0.1 * torch.randn((), generator=generator, dtype=x.dtype)

    got = ddim_sample(eps_fn, x_T, taus, abar, eta=eta, generator=generator)
    draws = torch.Generator().manual_seed(11)
    expected = _reference_ddim(
        lambda x, t: (
            np.tanh(x) + 0.1 * torch.randn((), generator=draws, dtype=torch.float64).item()
        ),
        x_T.numpy(),
        taus,
        abar.numpy(),
        eta,
        lambda shape: torch.randn(shape, generator=draws, dtype=torch.float64).numpy(),
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)
    # S - 1 stochastic steps, no draw at the last one: both generators are at the same state.
    assert torch.equal(generator.get_state(), draws.get_state())


def test_same_seed_same_sample_and_eta_zero_never_draws():
    abar = cumulative_alphas(linear_betas(200, 5e-4, 0.1))
    taus = ddim_timesteps(200, 10)
    x_T = torch.randn(1, 3, 8, 8)
    runs = [
        ddim_sample(
            lambda x, t: torch.tanh(x),
            x_T,
            taus,
            abar,
            eta=0.5,
            generator=torch.Generator().manual_seed(0),
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    ddim_sample(lambda x, t: torch.tanh(x), x_T, taus, abar, eta=0.0, generator=generator)
    assert torch.equal(generator.get_state(), before)


def test_true_epsilon_recovers_x0_exactly():
    abar = cumulative_alphas(linear_betas(200, 5e-4, 0.1))
    x0 = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    eps = torch.randn_like(x0)
    x_T = q_sample(x0, 199, eps, abar)
    out = ddim_sample(lambda x, t: eps, x_T, ddim_timesteps(200, 10), abar)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("T,S", [(200, 10), (10, 3), (37, 7)])
def test_one_step_with_true_epsilon_lands_on_q_sample_at_the_next_entry(T, S):
    abar = cumulative_alphas(linear_betas(T, 5e-4, 0.1))
    taus = ddim_timesteps(T, S)
    x0 = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x0)
    seen = {}

    def eps_fn(x, t):
        seen[t] = x
        return eps

    ddim_sample(eps_fn, q_sample(x0, taus[0], eps, abar), taus, abar)
    for t in taus:
        # t' is the next schedule entry (not t - T / S): x_{t'} = q_sample(x0, t', eps).
        torch.testing.assert_close(seen[t], q_sample(x0, t, eps, abar), rtol=0, atol=1e-10)


def test_gradients_flow_through_every_step():
    abar = cumulative_alphas(linear_betas(20, 1e-3, 0.2))
    taus = ddim_timesteps(20, 4)
    weight = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    x_T = torch.randn(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)

    def sample(x, w):
        return ddim_sample(
            lambda z, t: w * torch.sin(z) + 0.01 * t,
            x,
            taus,
            abar,
            eta=0.5,
            generator=torch.Generator().manual_seed(1),
        )

    assert torch.autograd.gradcheck(sample, (x_T, weight))


def test_ddim_sample_rejects_bad_schedules():
    abar = cumulative_alphas(linear_betas(10, 1e-3, 0.1))
    x = torch.zeros(1, 1)
    for taus in ([], [3, 5], [10, 2], [4, 4]):
        with pytest.raises(HDRZooError, match="taus"):
            ddim_sample(lambda z, t: z, x, taus, abar)
    with pytest.raises(HDRZooError, match="eta"):
        ddim_sample(lambda z, t: z, x, [5, 1], abar, eta=-1.0)


def test_timestep_embedding_matches_closed_form():
    t = torch.tensor([0, 3, 199])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8) and emb.dtype == torch.float32
    for b, step in enumerate([0, 3, 199]):
        for k in range(4):
            f = math.exp(-math.log(10000.0) * k / 4)
            assert float(emb[b, k]) == pytest.approx(math.cos(step * f), abs=1e-5)
            assert float(emb[b, 4 + k]) == pytest.approx(math.sin(step * f), abs=1e-5)
    assert timestep_embedding(7, 6).shape == (1, 6)
    with pytest.raises(HDRZooError, match="even"):
        timestep_embedding(t, 5)
