"""Drawing LF-Diff's low-frequency prior (hdrzoo.viz.prior_to_color)."""

from __future__ import annotations

import pytest
import torch

from hdrzoo.errors import HDRZooError
from hdrzoo.models.lfdiff import LFDiff
from hdrzoo.viz import prior_to_color


def test_prior_to_color_stretches_each_channel_and_enlarges_by_blocks():
    prior = torch.stack(
        [
            torch.tensor([[0.0, 1.0], [2.0, 3.0]]),  # spread 3: 0, 1/3, 2/3, 1
            torch.tensor([[-10.0, -10.0], [-10.0, 10.0]]),  # two levels: 0 and 1
            torch.full((2, 2), 7.0),  # constant: drawn mid-grey
        ]
    )
    image = prior_to_color(prior, size=(4, 6), percentile=0.0)
    assert image.shape == (3, 4, 6) and image.dtype == torch.float32
    expected_red = torch.tensor([[0.0, 1 / 3], [2 / 3, 1.0]])
    torch.testing.assert_close(image[0, ::2, ::3], expected_red)
    torch.testing.assert_close(image[0, 1::2, 2::3], expected_red)  # each cell a 2x3 block
    torch.testing.assert_close(image[1, ::2, ::3], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert torch.all(image[2] == 0.5)
    # Percentile clipping: one outlier does not squash the rest of the channel.
    spiky = torch.zeros(3, 10, 10)
    spiky[:, :, :5] = 1.0
    spiky[:, 0, 0] = 1000.0
    clipped = prior_to_color(spiky, percentile=2.0)
    assert float(clipped[0, 5, 0]) == 1.0 and float(clipped[0, 5, 9]) == 0.0


def test_prior_to_color_draws_the_model_aux_and_refuses_other_shapes():
    net = LFDiff(
        "full",
        channels=16,
        heads=2,
        low_band_blocks=1,
        frms_per_group=1,
        prior_width=16,
        denoiser_width=16,
    ).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 3, 32, 32), torch.tensor([[1.0, 4.0, 16.0]]), torch.tensor([1]))
    image = prior_to_color(out.aux["z_hat"], size=(32, 32))
    assert image.shape == (3, 32, 32)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert float(image.std()) > 0.05  # a non-constant prior gives a picture, not a flat field
    with pytest.raises(HDRZooError, match="prior"):
        prior_to_color(torch.zeros(2, 3, 4, 4))
    with pytest.raises(HDRZooError, match="percentile"):
        prior_to_color(torch.zeros(3, 4, 4), percentile=60.0)
