import math

import numpy as np
import pytest
import torch

from hdrzoo.errors import HDRZooError
from hdrzoo.losses import MaskedPhotometric

MU = 5000.0


def bilinear_border(image: np.ndarray, x: float, y: float) -> np.ndarray:
    """Bilinear sample of (C, H, W) at (x, y), coordinates clamped to the image."""
    _, height, width = image.shape
    x = min(max(x, 0.0), width - 1.0)
    y = min(max(y, 0.0), height - 1.0)
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    ax, ay = x - x0, y - y0
    return (
        image[:, y0, x0] * (1 - ax) * (1 - ay)
        + image[:, y0, x1] * ax * (1 - ay)
        + image[:, y1, x0] * (1 - ax) * ay
        + image[:, y1, x1] * ax * ay
    )


def tonemap(x: np.ndarray) -> np.ndarray:
    return np.log1p(MU * np.maximum(x, 0.0)) / math.log1p(MU)


def loss_by_loops(ref, frame, flow, conf_ref, conf_frame) -> float:
    """MODELS.md 5.7 with explicit loops in float64, averaged over the pairs."""
    pairs, channels, height, width = ref.shape
    per_pair = []
    for b in range(pairs):
        numerator = denominator = 0.0
        for y in range(height):
            for x in range(width):
                px, py = x + flow[b, 0, y, x], y + flow[b, 1, y, x]
                mask = conf_ref[b, 0, y, x] * bilinear_border(conf_frame[b], px, py)[0]
                warped = bilinear_border(frame[b], px, py)
                numerator += mask * np.abs(tonemap(ref[b, :, y, x]) - tonemap(warped)).sum()
                denominator += mask
        per_pair.append(numerator / (channels * denominator + 1e-6))
    return float(np.mean(per_pair))


def test_matches_a_float64_loop_implementation():
    rng = np.random.default_rng(0)
    ref = rng.random((2, 3, 5, 6)) * 0.5
    frame = rng.random((2, 3, 5, 6)) * 0.5 - 0.05  # a few negatives: clamped before the tone map
    flow = rng.uniform(-2, 2, (2, 2, 5, 6))
    conf_ref, conf_frame = rng.random((2, 1, 5, 6)), rng.random((2, 1, 5, 6))
    got = MaskedPhotometric()(
        *(torch.from_numpy(a) for a in (ref, frame, flow, conf_ref, conf_frame))
    )
    assert float(got) == pytest.approx(
        loss_by_loops(ref, frame, flow, conf_ref, conf_frame), abs=1e-10
    )


def test_zero_for_the_true_flow_and_positive_otherwise():
    torch.manual_seed(0)
    frame = torch.rand(1, 3, 8, 10, dtype=torch.float64)
    ref = torch.roll(frame, shifts=-2, dims=-1)  # ref(x) = frame(x + 2) away from the wrap
    flow = torch.zeros(1, 2, 8, 10, dtype=torch.float64)
    flow[:, 0] = 2.0
    conf = torch.ones(1, 1, 8, 10, dtype=torch.float64)
    conf_ref = conf.clone()
    conf_ref[..., -2:] = 0.0  # the wrapped columns are not a match: mask them out
    loss = MaskedPhotometric()
    assert float(loss(ref, frame, flow, conf_ref, conf)) == pytest.approx(0.0, abs=1e-12)
    assert float(loss(ref, frame, torch.zeros_like(flow), conf_ref, conf)) > 0.05


def test_mask_is_detached_and_flow_gets_gradients():
    torch.manual_seed(1)
    ref, frame = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6)
    flow = (torch.rand(2, 2, 6, 6) * 0.6 + 0.2).requires_grad_(True)
    conf_ref = torch.rand(2, 1, 6, 6).requires_grad_(True)
    conf_frame = torch.rand(2, 1, 6, 6).requires_grad_(True)
    MaskedPhotometric()(ref, frame, flow, conf_ref, conf_frame).backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0
    assert conf_ref.grad is None and conf_frame.grad is None


def test_an_empty_mask_gives_zero_not_nan_and_shapes_are_checked():
    ref = torch.rand(1, 3, 4, 4)
    zeros = torch.zeros(1, 1, 4, 4)
    assert (
        float(
            MaskedPhotometric()(ref, torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), zeros, zeros)
        )
        == 0.0
    )
    with pytest.raises(HDRZooError, match="flow"):
        MaskedPhotometric()(ref, ref, torch.zeros(1, 2, 4, 5), zeros, zeros)
