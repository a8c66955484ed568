"""Visualisation helpers: colours checked against hand values and HSV geometry, sizes against
the layout arithmetic."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch

from hdrzoo.errors import HDRZooError
from hdrzoo.viz import (
    bracket_strip,
    display,
    error_map,
    flow_to_color,
    flow_wheel,
    mask_to_color,
    side_by_side,
)

# 8-bit colormap end points (RGB) as published for matplotlib's inferno and viridis, which
# OpenCV's maps reproduce.
INFERNO_0 = (0, 0, 4)
INFERNO_1 = (252, 255, 164)
VIRIDIS_0 = (68, 1, 84)


def np_mu_law(x: np.ndarray) -> np.ndarray:
    return np.log1p(5000.0 * x.astype(np.float64)) / np.log1p(5000.0)


def hsv(rgb: torch.Tensor) -> tuple[float, float, float]:
    h, s, v = colorsys.rgb_to_hsv(*[float(c) for c in rgb])
    return h * 360.0, s, v


def one_vector(u: float, v: float) -> torch.Tensor:
    flow = torch.zeros(2, 3, 3)
    flow[0, 1, 1], flow[1, 1, 1] = u, v
    return flow


# ---- display -------------------------------------------------------------------------------


def test_display_mu_and_reinhard_hand_values_and_range():
    hdr = torch.tensor([0.0, 1.0, 0.25, 4.0]).reshape(1, 1, 4).expand(3, 1, 4)
    mu = display(hdr)
    expected = [0.0, 1.0, math.log(1 + 5000 * 0.25) / math.log(1 + 5000), 1.0]
    torch.testing.assert_close(mu[0, 0], torch.tensor(expected), atol=1e-6, rtol=0)
    # exposure 2 brings 0.25 to 0.5 before the curve
    assert float(display(hdr, exposure=2.0)[0, 0, 2]) == pytest.approx(
        math.log(1 + 5000 * 0.5) / math.log(1 + 5000), abs=1e-6
    )
    rh = display(hdr, method="reinhard")
    assert float(rh[0, 0, 1]) == pytest.approx(0.5 ** (1 / 2.2), abs=1e-6)
    assert float(rh[0, 0, 3]) == pytest.approx(0.8 ** (1 / 2.2), abs=1e-6)
    wide = torch.rand(3, 8, 8) * 100.0
    for method in ("mu", "reinhard"):
        out = display(wide, method=method)
        assert out.shape == (3, 8, 8) and out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_display_rejects_bad_input():
    with pytest.raises(HDRZooError, match=r"hdr: expected an RGB image of shape \(3, H, W\)"):
        display(torch.rand(1, 3, 8, 8))
    with pytest.raises(HDRZooError, match="method"):
        display(torch.rand(3, 8, 8), method="aces")
    with pytest.raises(HDRZooError, match="exposure"):
        display(torch.rand(3, 8, 8), exposure=0.0)


# ---- error_map -----------------------------------------------------------------------------


def test_error_map_of_zero_error_is_the_colormaps_zero_colour():
    target = torch.rand(3, 6, 7)
    image, vmax = error_map(target, target)
    assert vmax == 1.0
    expected = torch.tensor(INFERNO_0, dtype=torch.float32) / 255.0
    torch.testing.assert_close(image, expected[:, None, None].expand(3, 6, 7))


def test_error_map_default_vmax_is_the_99th_percentile_error_and_maps_to_the_top_colour():
    rng = np.random.default_rng(1)
    target = torch.full((3, 10, 20), 0.25)
    pred = target + torch.from_numpy(rng.uniform(0, 0.05, size=(1, 10, 20)).astype(np.float32))
    pred[:, 2, 3] += 0.5  # one ghost pixel must not set the scale
    image, vmax = error_map(pred, target, space="linear")
    error = (pred - target).abs().mean(0).numpy().astype(np.float64)
    assert vmax == pytest.approx(np.percentile(error, 99), rel=1e-6)
    assert vmax < 0.1
    top = torch.tensor(INFERNO_1, dtype=torch.float32) / 255.0
    torch.testing.assert_close(image[:, 2, 3], top)  # RGB, not OpenCV's BGR
    assert float(image[:, 0, 0].sum()) < float(top.sum())
    # mu space: the percentile of the mean-over-channels |T(pred) - T(target)|
    _, vmax_mu = error_map(pred, target)
    mu_error = np.abs(np_mu_law(pred.numpy()) - np_mu_law(target.numpy())).mean(0)
    assert vmax_mu == pytest.approx(np.percentile(mu_error, 99), rel=1e-5)
    # an error that is zero almost everywhere falls back to the maximum
    sparse = target.clone()
    sparse[:, 0, 0] += 0.2
    assert error_map(sparse, target, space="linear").vmax == pytest.approx(0.2, abs=1e-6)
    # a fixed vmax saturates larger errors
    clipped, used = error_map(pred, target, space="linear", vmax=0.01)
    assert used == 0.01
    torch.testing.assert_close(clipped[:, 2, 3], top)
    assert (clipped[:, error > 0.01] == top[:, None]).all()


def test_error_map_rejects_bad_input():
    x = torch.rand(3, 4, 4)
    with pytest.raises(HDRZooError, match="same shape"):
        error_map(x, torch.rand(3, 4, 5))
    with pytest.raises(HDRZooError, match="space"):
        error_map(x, x, space="log")
    with pytest.raises(HDRZooError, match="vmax"):
        error_map(x, x, vmax=-1.0)
    with pytest.raises(HDRZooError, match="colormap"):
        error_map(x, x, colormap="rainbow")


# ---- flow ----------------------------------------------------------------------------------


def test_flow_wheel_is_fully_saturated_with_increasing_hue():
    wheel = flow_wheel()
    assert wheel.shape == (55, 3)
    assert torch.allclose(wheel.max(dim=1).values, torch.ones(55))
    assert torch.allclose(wheel.min(dim=1).values, torch.zeros(55))
    hues = [hsv(c)[0] for c in wheel]
    assert hues[0] == 0.0
    assert all(b > a for a, b in zip(hues, hues[1:]))


def test_flow_to_color_directions_have_the_middlebury_hues():
    hue = {}
    for name, (u, v) in {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}.items():
        rgb = flow_to_color(one_vector(u, v))[:, 1, 1]
        h, s, val = hsv(rgb)
        assert s == pytest.approx(1.0, abs=1e-6) and val == pytest.approx(1.0, abs=1e-6)
        hue[name] = h
    assert hue["right"] < 10 or hue["right"] > 350  # red
    assert 30 < hue["down"] < 65  # orange-yellow
    assert 175 < hue["left"] < 210  # cyan-blue
    assert 240 < hue["up"] < 290  # blue-violet


def test_flow_to_color_zero_is_white_and_saturation_is_relative_length():
    flow = torch.zeros(2, 4, 4)
    torch.testing.assert_close(flow_to_color(flow), torch.ones(3, 4, 4))
    # saturation = |flow| / max_magnitude, hue independent of length
    direction = torch.tensor([0.6, -0.8])
    hue_full = hsv(flow_to_color(one_vector(*direction.tolist()), max_magnitude=1.0)[:, 1, 1])[0]
    for length in (0.25, 0.5, 0.9):
        rgb = flow_to_color(one_vector(*(direction * length).tolist()), max_magnitude=1.0)[:, 1, 1]
        h, s, v = hsv(rgb)
        assert s == pytest.approx(length, abs=1e-6)
        assert v == pytest.approx(1.0, abs=1e-6)
        assert h == pytest.approx(hue_full, abs=1e-3)
    # longer than max_magnitude: same hue, darkened to 75 %
    h, s, v = hsv(flow_to_color(one_vector(*(direction * 3).tolist()), max_magnitude=1.0)[:, 1, 1])
    assert v == pytest.approx(0.75, abs=1e-6) and h == pytest.approx(hue_full, abs=1e-3)


def test_flow_to_color_default_normalises_by_the_longest_vector():
    flow = torch.zeros(2, 1, 2)
    flow[0, 0, 0], flow[0, 0, 1] = 4.0, 2.0
    out = flow_to_color(flow)
    assert hsv(out[:, 0, 0])[1] == pytest.approx(1.0, abs=1e-6)
    assert hsv(out[:, 0, 1])[1] == pytest.approx(0.5, abs=1e-6)


def test_flow_to_color_rejects_bad_shapes():
    with pytest.raises(HDRZooError, match=r"flow: expected shape \(2, H, W\)"):
        flow_to_color(torch.zeros(3, 4, 4))
    with pytest.raises(HDRZooError, match="max_magnitude"):
        flow_to_color(torch.zeros(2, 4, 4), max_magnitude=0.0)


# ---- masks and brackets --------------------------------------------------------------------


def test_mask_to_color_gray_and_colormap_end_points():
    mask = torch.tensor([[0.0, 0.5, 1.0, 2.0]]).reshape(1, 1, 4)
    grey = mask_to_color(mask, colormap="gray")
    expected = torch.tensor([0.0, 128 / 255, 1.0, 1.0])
    torch.testing.assert_close(grey, expected.reshape(1, 1, 4).expand(3, 1, 4))
    colour = mask_to_color(mask[0])  # (H, W) also accepted
    torch.testing.assert_close(colour[:, 0, 0], torch.tensor(VIRIDIS_0, dtype=torch.float32) / 255)
    with pytest.raises(HDRZooError, match="mask"):
        mask_to_color(torch.rand(2, 4, 4))


def test_bracket_strip_places_frames_left_to_right_with_gaps():
    ldr = torch.rand(3, 3, 5, 7)
    strip = bracket_strip(ldr, gap=2, gap_value=0.5)
    assert strip.shape == (3, 5, 3 * 7 + 2 * 2)
    for i in range(3):
        start = i * (7 + 2)
        torch.testing.assert_close(strip[:, :, start : start + 7], ldr[i])
    assert (strip[:, :, 7:9] == 0.5).all()
    assert bracket_strip(ldr).shape == (3, 5, 21)
    with pytest.raises(HDRZooError, match=r"ldr: expected frames of shape \(N, 3, H, W\)"):
        bracket_strip(torch.rand(3, 5, 7))


# ---- side_by_side --------------------------------------------------------------------------


def test_side_by_side_one_row_size_titles_and_untouched_panels():
    a, b = torch.rand(3, 20, 30), torch.rand(3, 20, 40)
    out = side_by_side([("input", a), ("ours", b)], label_height=16)
    assert out.shape == (3, 16 + 20, 30 + 40)
    torch.testing.assert_close(out[:, 16:, :30], a)
    torch.testing.assert_close(out[:, 16:, 30:], b)
    label = out[:, :16]
    # the title strip has its grey background and white-ish text pixels
    assert float(label.max()) > 0.6
    assert torch.isclose(label, torch.tensor(38 / 255)).float().mean() > 0.5


def test_side_by_side_grid_pads_short_rows_and_resizes_to_first_height():
    a, b, c = torch.rand(3, 20, 30), torch.rand(3, 10, 15), torch.rand(20, 25)
    out = side_by_side([("a", a), ("b", b), ("c grey", c)], columns=2, label_height=10)
    # b is enlarged to 20 x 30; row 1 = a + b (60 wide), row 2 = c (25 wide) padded to 60
    assert out.shape == (3, 2 * (10 + 20), 60)
    torch.testing.assert_close(out[:, 10:30, :30], a)
    torch.testing.assert_close(out[:, 40:60, :25], c.expand(3, -1, -1))
    assert (out[:, 30:60, 25:] == 0.0).all()
    # an enlarged constant panel stays constant
    flat = side_by_side([("a", a), ("flat", torch.full((3, 10, 15), 0.3))], label_height=0)
    assert flat.shape == (3, 20, 60)
    torch.testing.assert_close(flat[:, :, 30:], torch.full((3, 20, 30), 0.3))


def test_side_by_side_rejects_bad_panels():
    with pytest.raises(HDRZooError, match="at least one"):
        side_by_side([])
    with pytest.raises(HDRZooError, match=r"panels\[1\]"):
        side_by_side([("a", torch.rand(3, 4, 4)), torch.rand(3, 4, 4)])
    with pytest.raises(HDRZooError, match=r"panels\[0\] \('a'\)"):
        side_by_side([("a", torch.rand(4, 4, 4))])
    with pytest.raises(HDRZooError, match="columns"):
        side_by_side([("a", torch.rand(3, 4, 4))], columns=0)
    with pytest.raises(HDRZooError, match="NaN"):
        side_by_side([("a", torch.full((3, 4, 4), float("nan")))])


def test_outputs_accept_numpy_and_are_float32_in_unit_range():
    rng = np.random.default_rng(0)
    hdr = rng.uniform(0, 2, size=(3, 8, 8)).astype(np.float32)
    pictures = [
        display(hdr),
        error_map(hdr, hdr * 0.5).image,
        flow_to_color(rng.normal(size=(2, 8, 8)).astype(np.float32)),
        mask_to_color(rng.uniform(size=(1, 8, 8))),
        bracket_strip(rng.uniform(size=(2, 3, 8, 8))),
    ]
    for picture in pictures:
        assert picture.dtype == torch.float32 and picture.ndim == 3 and picture.shape[0] == 3
        assert float(picture.min()) >= 0.0 and float(picture.max()) <= 1.0
