import numpy as np
import pytest
import torch

from hdrzoo.errors import InputSizeError
from hdrzoo.losses import CensusLoss


def census_loss_reference(prediction: np.ndarray, target: np.ndarray, patch: int) -> float:
    """MODELS.md 2.11 literally, in float64 loops."""
    batch, _, height, width = prediction.shape
    radius = patch // 2
    gp, gt = prediction.mean(1), target.mean(1)

    def soft(g, b, i, j, u, v):
        ii, jj = i + u, j + v
        neighbour = g[b, ii, jj] if 0 <= ii < height and 0 <= jj < width else 0.0
        d = neighbour - g[b, i, j]
        return d / np.sqrt(0.81 + d * d)

    total = 0.0
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                inside = radius <= i < height - radius and radius <= j < width - radius
                if not inside:
                    continue
                dist = 0.0
                for u in range(-radius, radius + 1):
                    for v in range(-radius, radius + 1):
                        delta = soft(gp, b, i, j, u, v) - soft(gt, b, i, j, u, v)
                        dist += delta * delta / (0.1 + delta * delta)
                total += dist / patch**2
    return total / (batch * height * width)


@pytest.mark.parametrize("patch", [7, 3])
def test_census_matches_float64_loop_reference(patch):
    rng = np.random.default_rng(patch)
    prediction = rng.random((2, 3, 9, 11))
    target = rng.random((2, 3, 9, 11))
    got = CensusLoss(patch)(torch.from_numpy(prediction), torch.from_numpy(target))
    assert abs(float(got) - census_loss_reference(prediction, target, patch)) < 1e-12


def test_census_counts_only_interior_pixels_but_divides_by_all_pixels():
    # 7 x 7 image: only the centre is 3 px from every border. Prediction = target = 0 except
    # the centre, value a: 48 of its 49 offsets see d = -a (the centre offset sees 0), the
    # target sees d = 0 everywhere. Every other pixel is masked, whatever its distance.
    a = 0.4
    target = torch.zeros(1, 3, 7, 7, dtype=torch.float64)
    prediction = target.clone()
    prediction[:, :, 3, 3] = a
    delta = -a / np.sqrt(0.81 + a * a)
    centre = (48 / 49) * delta**2 / (0.1 + delta**2)
    expected = centre / 49  # divided by B * H * W = 49, not by the 1 unmasked pixel
    assert abs(float(CensusLoss()(prediction, target)) - expected) < 1e-14


def test_census_is_zero_for_identical_images_and_no_gradient_reaches_the_target():
    prediction = torch.rand(2, 3, 10, 10, requires_grad=True)
    target = torch.rand(2, 3, 10, 10, requires_grad=True)
    loss = CensusLoss()
    assert float(loss(target, target.detach()).detach()) == 0.0
    loss(prediction, target).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert target.grad is None


def test_census_rejects_even_patches_and_mismatched_shapes():
    with pytest.raises(InputSizeError, match="odd"):
        CensusLoss(6)
    with pytest.raises(InputSizeError, match="shape"):
        CensusLoss()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
