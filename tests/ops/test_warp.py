import numpy as np
import pytest
import torch

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.warp import base_grid, warp


def bilinear_border_reference(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(p) = x(p + flow(p)), bilinear, coordinates clamped to the image (float64 loops)."""
    batch, channels, height, width = x.shape
    out = np.zeros_like(x, dtype=np.float64)
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                cx = min(max(j + flow[b, 0, i, j], 0.0), width - 1.0)
                cy = min(max(i + flow[b, 1, i, j], 0.0), height - 1.0)
                x0, y0 = int(np.floor(cx)), int(np.floor(cy))
                x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
                ax, ay = cx - x0, cy - y0
                out[b, :, i, j] = (
                    x[b, :, y0, x0] * (1 - ax) * (1 - ay)
                    + x[b, :, y0, x1] * ax * (1 - ay)
                    + x[b, :, y1, x0] * (1 - ax) * ay
                    + x[b, :, y1, x1] * ax * ay
                )
    return out


def test_warp_matches_float64_bilinear_formula_with_border_clamping():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 9))
    # Flows up to +-6 px push many samples past the borders.
    flow = rng.uniform(-6, 6, size=(2, 2, 7, 9))
    got = warp(torch.from_numpy(x), torch.from_numpy(flow)).numpy()
    np.testing.assert_allclose(got, bilinear_border_reference(x, flow), rtol=0, atol=1e-12)


def test_warp_float32_close_to_float64_formula():
    rng = np.random.default_rng(1)
    x = rng.random((1, 4, 11, 6))
    flow = rng.uniform(-3, 3, size=(1, 2, 11, 6))
    got = warp(torch.from_numpy(x).float(), torch.from_numpy(flow).float()).double().numpy()
    np.testing.assert_allclose(got, bilinear_border_reference(x, flow), rtol=0, atol=2e-6)


@pytest.mark.parametrize("dx,dy", [(0, 0), (1, 0), (0, -2), (3, 2), (-4, 1)])
def test_integer_flow_is_an_exact_shift_with_edge_replication(dx, dy):
    x = torch.rand(2, 3, 8, 10)
    flow = torch.zeros(2, 2, 8, 10)
    flow[:, 0], flow[:, 1] = dx, dy
    rows = torch.arange(8).add(dy).clamp(0, 7)
    cols = torch.arange(10).add(dx).clamp(0, 9)
    expected = x[:, :, rows][:, :, :, cols]
    # Exact up to float32 rounding of the normalised grid coordinates.
    torch.testing.assert_close(warp(x, flow), expected, rtol=0, atol=1e-6)
    x64, flow64 = x.double(), flow.double()
    torch.testing.assert_close(warp(x64, flow64), expected.double(), rtol=0, atol=1e-12)


def test_warp_gradcheck():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # Keep samples away from integer coordinates and borders, where bilinear is not smooth.
    flow = (torch.rand(1, 2, 4, 5, dtype=torch.float64) * 0.6 + 0.2).requires_grad_(True)
    assert torch.autograd.gradcheck(warp, (x, flow), eps=1e-6, atol=1e-6)


def test_base_grid_is_cached_per_size_device_dtype_and_matches_linspace():
    g = base_grid(5, 7, "cpu", torch.float32)
    assert g is base_grid(5, 7, "cpu", torch.float32)
    assert g is not base_grid(5, 7, "cpu", torch.float64)
    assert g is not base_grid(7, 5, "cpu", torch.float32)
    assert g.shape == (1, 5, 7, 2)
    assert torch.equal(g[0, 2, :, 0], torch.linspace(-1, 1, 7))
    assert torch.equal(g[0, :, 3, 1], torch.linspace(-1, 1, 5))


def test_grid_built_under_inference_mode_is_usable_for_training():
    x = torch.rand(1, 1, 13, 17)
    flow = torch.rand(1, 2, 13, 17)
    with torch.inference_mode():
        warp(x, flow)
    flow.requires_grad_(True)
    warp(x, flow).sum().backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0


def test_single_pixel_axes_do_not_produce_nan():
    x = torch.rand(1, 3, 1, 5)
    flow = torch.zeros(1, 2, 1, 5)
    flow[:, 0] = 1.0
    out = warp(x, flow)
    torch.testing.assert_close(out[..., :4], x[..., 1:], rtol=0, atol=1e-6)


def test_warp_rejects_mismatched_shapes():
    with pytest.raises(InputSizeError, match="spatial size"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 4, 4))
    with pytest.raises(InputSizeError, match="flow"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize(
    "top,left,rows,cols", [(0, 0, 9, 11), (2, 3, 4, 5), (8, 10, 1, 1), (0, 6, 9, 5)]
)
def test_warp_of_a_window_is_that_window_of_the_whole_warp_bit_for_bit(top, left, rows, cols):
    torch.manual_seed(top + left)
    x = torch.randn(2, 3, 9, 11)
    # Flows up to +-6 px: the window samples far outside itself and past the borders.
    flow = torch.empty(2, 2, 9, 11).uniform_(-6, 6)
    window = (..., slice(top, top + rows), slice(left, left + cols))
    got = warp(x, flow[window].clone(), origin=(top, left))
    assert torch.equal(got, warp(x, flow)[window])


def test_warp_window_must_lie_inside_the_grid():
    x = torch.rand(1, 1, 6, 6)
    with pytest.raises(InputSizeError, match="origin"):
        warp(x, torch.zeros(1, 2, 4, 4), origin=(3, 0))
    with pytest.raises(InputSizeError, match="origin"):
        warp(x, torch.zeros(1, 2, 2, 2), origin=(-1, 0))
    with pytest.raises(InputSizeError, match="spatial size"):
        warp(x, torch.zeros(1, 2, 4, 4))
