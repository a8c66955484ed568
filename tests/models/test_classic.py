import numpy as np
import pytest
import torch

import hdrzoo
from hdrzoo.errors import InputSizeError
from hdrzoo.models.classic import ClassicMerge


def _numpy_three_frame_merge(ldr: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Kalantari-17 triangle merge for N = 3, middle reference, written out in float64."""
    x = ldr[1]
    w0 = np.maximum(0.0, 2 * x - 1)
    w1 = 1 - np.abs(2 * x - 1)
    w2 = np.maximum(0.0, 1 - 2 * x)
    lin = ldr**2.2 / t[:, None, None, None]
    return (w0 * lin[0] + w1 * lin[1] + w2 * lin[2]) / (w0 + w1 + w2 + 1e-9)


def test_classic_three_frames_matches_float64_formula():
    ldr = np.random.default_rng(0).random((3, 3, 17, 23))
    t = np.array([1.0, 4.0, 16.0])
    got = ClassicMerge()(torch.from_numpy(ldr)[None], torch.from_numpy(t)[None], torch.tensor([1]))[
        0
    ]
    np.testing.assert_allclose(
        got.numpy(), _numpy_three_frame_merge(ldr, t), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("n", [2, 3, 5])
def test_classic_recovers_radiance_of_a_static_unclipped_scene(n):
    # Without motion, noise or quantisation every frame with non-zero weight is exact, so the
    # merge returns the radiance wherever the shortest frame is not clipped.
    radiance = torch.rand(3, 32, 32, dtype=torch.float64) * 0.9 + 0.001
    t = 4.0 ** torch.arange(n, dtype=torch.float64)
    ldr = (radiance[None] * t[:, None, None, None]).clamp(0, 1) ** (1 / 2.2)
    for ref in range(n):
        merged = ClassicMerge()(ldr[None], t[None], torch.tensor([ref]))[0]
        torch.testing.assert_close(merged, radiance, rtol=1e-9, atol=1e-12)


def test_classic_is_invariant_to_frame_order():
    ldr = torch.rand(1, 4, 3, 9, 9)
    t = torch.tensor([[1.0, 4.0, 16.0, 64.0]])
    perm = torch.tensor([2, 0, 3, 1])
    a = ClassicMerge()(ldr, t, torch.tensor([1]))
    b = ClassicMerge()(ldr[:, perm], t[:, perm], torch.tensor([3]))  # frame 1 now sits at index 3
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_classic_handles_a_batch_with_different_references():
    ldr = torch.rand(2, 3, 3, 8, 8)
    t = torch.tensor([[1.0, 4.0, 16.0]] * 2)
    both = ClassicMerge()(ldr, t, torch.tensor([0, 2]))
    torch.testing.assert_close(both[0], ClassicMerge()(ldr[:1], t[:1], torch.tensor([0]))[0])
    torch.testing.assert_close(both[1], ClassicMerge()(ldr[1:], t[1:], torch.tensor([2]))[0])


def test_load_classic_has_no_parameters_and_merges_any_frame_count():
    model = hdrzoo.load("classic")
    assert sum(p.numel() for p in model.parameters()) == 0
    assert not model.training
    for n in (2, 4, 7):
        ldr = torch.rand(n, 3, 12, 10)
        hdr = model.merge(ldr, exposures=2.0 ** torch.arange(n))
        assert hdr.shape == (3, 12, 10) and torch.isfinite(hdr).all()
    with pytest.raises(InputSizeError, match="at least 2"):
        model.merge(torch.rand(1, 3, 8, 8), exposures=[1.0])
