import numpy as np
import torch

from hdrzoo.losses import MuLawL1


def test_mulaw_l1_matches_float64_formula_with_clamping():
    rng = np.random.default_rng(0)
    prediction = rng.uniform(-0.1, 1.2, size=(2, 3, 5, 7))
    target = rng.uniform(0, 1, size=(2, 3, 5, 7))

    def tonemap(x):
        x = np.maximum(x, 0)
        return np.log1p(5000 * x) / np.log1p(5000)

    expected = np.mean(np.abs(tonemap(prediction) - tonemap(target)))
    got = MuLawL1()(torch.from_numpy(prediction), torch.from_numpy(target))
    assert abs(float(got) - expected) < 1e-12


def test_mulaw_l1_is_zero_for_identical_images_and_has_gradients():
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    loss = MuLawL1()
    assert float(loss(x, x.detach()).detach()) == 0.0
    y = torch.rand(1, 3, 4, 4)
    loss(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_mulaw_l1_mu_parameter():
    a, b = (
        torch.full((1, 1, 1, 1), 0.5, dtype=torch.float64),
        torch.zeros(1, 1, 1, 1, dtype=torch.float64),
    )
    assert abs(float(MuLawL1(mu=10.0)(a, b)) - np.log1p(5.0) / np.log1p(10.0)) < 1e-12
