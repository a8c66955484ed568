import math

import numpy as np
import pytest
import torch

from hdrzoo.ops.tonemap import (
    classic_weights,
    inverse_mu_law,
    linearize,
    mu_law,
    normalize_exposures,
    reinhard,
    sort_by_exposure,
    triangle_hi,
    triangle_lo,
    triangle_mid,
)


def test_mu_law_matches_float64_formula():
    x = np.linspace(0, 1, 1001)
    expected = np.log(1 + 5000 * x) / np.log(1 + 5000)
    got = mu_law(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert float(mu_law(torch.tensor(1.0))) == pytest.approx(1.0)


def test_inverse_mu_law_inverts():
    x = torch.rand(1000, dtype=torch.float64)
    torch.testing.assert_close(inverse_mu_law(mu_law(x)), x, rtol=1e-9, atol=1e-12)


def test_linearize_divides_gamma_decoded_frames_by_exposure():
    ldr = torch.rand(2, 3, 3, 4, 5, dtype=torch.float64)
    t = torch.tensor([[1.0, 4.0, 16.0], [1.0, 8.0, 64.0]], dtype=torch.float64)
    got = linearize(ldr, t)
    for b in range(2):
        for i in range(3):
            torch.testing.assert_close(got[b, i], ldr[b, i] ** 2.2 / t[b, i])


def test_triangles_sum_to_one_and_match_hand_values():
    x = torch.linspace(0, 1, 101)
    torch.testing.assert_close(triangle_mid(x) + triangle_hi(x) + triangle_lo(x), torch.ones(101))
    assert float(triangle_mid(torch.tensor(0.5))) == 1.0
    assert float(triangle_hi(torch.tensor(0.75))) == pytest.approx(0.5)
    assert float(triangle_lo(torch.tensor(0.25))) == pytest.approx(0.5)
    assert float(triangle_hi(torch.tensor(0.25))) == 0.0


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_classic_weights_are_nonnegative_and_sum_to_one_for_every_reference(n):
    ldr = torch.rand(2, n, 3, 6, 7, dtype=torch.float64)
    for r in range(n):
        w = classic_weights(ldr, r)
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(1), torch.ones(2, 3, 6, 7, dtype=torch.float64))


def test_classic_weights_three_frames_middle_reference_are_the_kalantari_triangles():
    ldr = torch.rand(1, 3, 3, 5, 5)
    w = classic_weights(ldr, 1)
    x = ldr[:, 1]
    torch.testing.assert_close(w[:, 0], triangle_hi(x), rtol=0, atol=0)
    torch.testing.assert_close(w[:, 1], triangle_mid(x), rtol=0, atol=0)
    torch.testing.assert_close(w[:, 2], triangle_lo(x), rtol=0, atol=0)


def test_classic_weights_cascade_past_a_saturated_shorter_frame():
    # N = 3, reference = longest: a fully saturated reference hands everything down; the middle
    # frame at 0.75 keeps 1 - hi(0.75) = 0.5 and passes 0.5 on to the shortest.
    ldr = torch.tensor([0.1, 0.75, 1.0]).reshape(1, 3, 1, 1, 1)
    w = classic_weights(ldr, 2).flatten().tolist()
    assert w == pytest.approx([0.5, 0.5, 0.0])


def test_sort_by_exposure_reindexes_the_reference():
    ldr = torch.arange(3.0).reshape(1, 3, 1, 1, 1).expand(1, 3, 3, 2, 2)
    t = torch.tensor([[16.0, 1.0, 4.0]])
    s_ldr, s_t, s_ref = sort_by_exposure(ldr, t, torch.tensor([2]))
    assert s_t.tolist() == [[1.0, 4.0, 16.0]]
    assert s_ldr[0, :, 0, 0, 0].tolist() == [1.0, 2.0, 0.0]
    assert s_ref.tolist() == [1]
    assert math.isclose(float(s_ldr[0, s_ref[0], 0, 0, 0]), 2.0)


# ------------------------------------------------------------- gradients (float64) -----
def away_from_kinks(*shape: int) -> torch.Tensor:
    """float64 values in (0.05, 0.95) at least 0.05 from the triangles' kink at 0.5."""
    x = torch.rand(*shape, dtype=torch.float64) * 0.4 + 0.05
    flip = torch.rand(*shape) < 0.5
    return torch.where(flip, x + 0.5, x).requires_grad_()


@pytest.mark.parametrize(
    "op", [mu_law, inverse_mu_law, reinhard, triangle_mid, triangle_hi, triangle_lo]
)
def test_pointwise_curves_pass_float64_gradcheck(op):
    torch.manual_seed(0)
    assert torch.autograd.gradcheck(op, (away_from_kinks(2, 3, 4),))


def test_linearize_and_exposure_normalisation_pass_float64_gradcheck():
    torch.manual_seed(0)
    ldr = away_from_kinks(2, 3, 3, 2, 2)
    exposures = torch.tensor([[1.0, 4.0, 16.0], [2.0, 3.0, 9.0]], dtype=torch.float64)
    exposures.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, t: linearize(a, t, gamma=2.2), (ldr, exposures))
    # Distinct exposures: the minimum's gradient is defined.
    assert torch.autograd.gradcheck(normalize_exposures, (exposures,))


def test_sort_by_exposure_passes_float64_gradcheck():
    torch.manual_seed(0)
    ldr = away_from_kinks(2, 3, 3, 2, 2)
    exposures = torch.tensor([[4.0, 1.0, 16.0], [9.0, 2.0, 3.0]], dtype=torch.float64)
    exposures.requires_grad_()
    ref = torch.tensor([0, 2])

    def sorted_values(a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ldr_sorted, t_sorted, _ = sort_by_exposure(a, t, ref)
        return ldr_sorted, t_sorted

    assert torch.autograd.gradcheck(sorted_values, (ldr, exposures))


@pytest.mark.parametrize("n,ref", [(3, 1), (5, 0), (5, 4), (4, 2)])
def test_classic_weights_pass_float64_gradcheck(n, ref):
    torch.manual_seed(n + ref)
    ldr = away_from_kinks(1, n, 2, 2, 2)
    assert torch.autograd.gradcheck(lambda a: classic_weights(a, ref), (ldr,))
