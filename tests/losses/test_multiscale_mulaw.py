"""MultiScaleMuLawL1 against a float64 numpy computation of pooled targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrzoo.errors import HDRZooError
from hdrzoo.losses import MultiScaleMuLawL1


def _tonemap(x):
    return np.log1p(5000 * np.maximum(x, 0)) / np.log1p(5000)


def _block_mean(x, f):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // f, f, w // f, f).mean(axis=(3, 5))


def test_multiscale_loss_matches_numpy_with_block_averaged_targets():
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 1, size=(2, 3, 8, 12))
    predictions = [rng.uniform(-0.1, 1.1, size=(2, 3, 8 // f, 12 // f)) for f in (1, 2, 4)]
    weights = (1.0, 0.5, 2.0)
    expected_terms = [
        np.mean(np.abs(_tonemap(p) - _tonemap(_block_mean(target, f))))
        for p, f in zip(predictions, (1, 2, 4), strict=True)
    ]
    loss, terms = MultiScaleMuLawL1(weights)(
        [torch.from_numpy(p) for p in predictions], torch.from_numpy(target)
    )
    np.testing.assert_allclose([float(t) for t in terms], expected_terms, rtol=1e-12)
    assert float(loss) == pytest.approx(
        sum(w * t for w, t in zip(weights, expected_terms)), rel=1e-12
    )


def test_multiscale_loss_rejects_sizes_that_are_no_integer_fraction():
    loss = MultiScaleMuLawL1((1.0, 1.0))
    with pytest.raises(HDRZooError, match="integer factor"):
        loss([torch.rand(1, 3, 8, 8), torch.rand(1, 3, 3, 3)], torch.rand(1, 3, 8, 8))
    with pytest.raises(HDRZooError, match="predictions"):
        loss([torch.rand(1, 3, 8, 8)], torch.rand(1, 3, 8, 8))
    with pytest.raises(HDRZooError, match="non-negative"):
        MultiScaleMuLawL1((1.0, -1.0))
