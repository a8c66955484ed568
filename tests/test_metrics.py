"""Metrics against independent float64 numpy formulas, hand-computed cases and the
SAFNet-S reference table."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import tifffile
import torch

from hdrzoo.errors import HDRZooError
from hdrzoo.metrics import (
    cvvdp,
    evaluate,
    psnr_l,
    psnr_mu,
    pu21_encode,
    pu21_psnr,
    ssim_l,
    ssim_mu,
)

MU = 5000.0


# ---- independent numpy references (float64) ----------------------------------------------


def np_mu_law(x: np.ndarray) -> np.ndarray:
    return np.log(1.0 + MU * x) / np.log(1.0 + MU)


def np_psnr(pred: np.ndarray, target: np.ndarray, peak: float = 1.0) -> float:
    mse = np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2)
    return 10.0 * np.log10(peak**2 / mse)


def np_gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return g / g.sum()


def np_blur_valid(image: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D image with the 1-D window ``g`` (rows, then columns)."""
    k = g.size
    h, w = image.shape
    rows = sum(g[i] * image[i : h - k + 1 + i, :] for i in range(k))
    return sum(g[j] * rows[:, j : w - k + 1 + j] for j in range(k))


def np_ssim(pred: np.ndarray, target: np.ndarray, padding: str = "reflect") -> float:
    """SSIM of one (C, H, W) image pair: 11 x 11 Gaussian (sigma 1.5), C1 = 0.01^2,
    C2 = 0.03^2, mean over channels and positions. ``padding="reflect"``: pad by 5 (no edge
    repeat) and score all H x W positions; ``"valid"``: only positions the window fits."""
    g = np_gaussian_window()
    pad = (g.size - 1) // 2
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for x, y in zip(pred.astype(np.float64), target.astype(np.float64)):
        if padding == "reflect":
            x = np.pad(x, pad, mode="reflect")
            y = np.pad(y, pad, mode="reflect")
        mx, my = np_blur_valid(x, g), np_blur_valid(y, g)
        vx = np_blur_valid(x * x, g) - mx**2
        vy = np_blur_valid(y * y, g) - my**2
        cxy = np_blur_valid(x * y, g) - mx * my
        maps.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    ssim_map = np.stack(maps)
    if padding == "reflect":
        assert ssim_map.shape == pred.shape
    return float(ssim_map.mean())


PU21_BANDING_GLARE = (
    0.353487901,
    0.3734658629,
    8.277049286e-05,
    0.9062562627,
    0.09150303166,
    0.9099517204,
    596.3148142,
)


def np_pu21(y: np.ndarray) -> np.ndarray:
    p = PU21_BANDING_GLARE
    y = np.clip(y, 0.005, 10000.0)
    return p[6] * (((p[0] + p[1] * y ** p[3]) / (1.0 + p[2] * y ** p[3])) ** p[4] - p[5])


def random_pair(batch: int = 2, h: int = 24, w: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    # A wide dynamic range (1e-4 .. 1) as in real HDR, and a noisy, partly overexposed prediction.
    target = np.exp(rng.uniform(np.log(1e-4), 0.0, size=(batch, 3, h, w)))
    pred = target * rng.uniform(0.8, 1.25, size=target.shape) + rng.normal(0, 1e-3, target.shape)
    pred = np.clip(pred, 0.0, None)
    return pred, target


# ---- PSNR ---------------------------------------------------------------------------------


def test_psnr_l_and_psnr_mu_match_float64_numpy_per_image():
    pred, target = random_pair()
    pred_c = np.clip(pred, 0.0, 1.0)
    expect_l = [np_psnr(pred_c[b], target[b]) for b in range(2)]
    expect_mu = [np_psnr(np_mu_law(pred_c[b]), np_mu_law(target[b])) for b in range(2)]
    got_l = psnr_l(torch.from_numpy(pred), torch.from_numpy(target), reduction="none")
    got_mu = psnr_mu(torch.from_numpy(pred), torch.from_numpy(target), reduction="none")
    assert got_l.shape == (2,) and got_mu.shape == (2,)
    np.testing.assert_allclose(got_l.numpy(), expect_l, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_mu.numpy(), expect_mu, rtol=0, atol=1e-9)
    assert float(psnr_mu(pred, target)) == pytest.approx(np.mean(expect_mu), abs=1e-9)


def test_psnr_l_of_a_constant_offset_of_0_1_is_20_db():
    target = torch.rand(3, 16, 16, dtype=torch.float64) * 0.9
    assert float(psnr_l(target + 0.1, target)) == pytest.approx(20.0, abs=1e-9)


def test_psnr_mu_hand_values():
    # mu-law(1) = 1 and mu-law(0) = 0, so an all-black prediction of a white target has MSE 1.
    assert float(psnr_mu(torch.zeros(3, 8, 8), torch.ones(3, 8, 8))) == pytest.approx(
        0.0, abs=1e-12
    )
    x = 0.01
    expected = -20.0 * math.log10(math.log(1 + MU * x) / math.log(1 + MU))
    got = psnr_mu(torch.full((3, 8, 8), x, dtype=torch.float64), torch.zeros(3, 8, 8))
    assert float(got) == pytest.approx(expected, abs=1e-9)


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    target = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    assert math.isinf(float(psnr_l(target, target))) and float(psnr_l(target, target)) > 0
    assert torch.isinf(psnr_mu(target, target, reduction="none")).all()
    assert float(ssim_l(target, target)) == pytest.approx(1.0, abs=1e-12)
    assert float(ssim_mu(target, target)) == pytest.approx(1.0, abs=1e-12)


def test_batch_mean_is_mean_of_per_image_psnr_not_pooled_psnr():
    target = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    pred = target.clone()
    pred[0] += 0.1  # 20 dB
    pred[1] += 0.01  # 40 dB
    pooled = 10.0 * math.log10(1.0 / ((0.1**2 + 0.01**2) / 2))  # 22.97 dB
    got = float(psnr_l(pred, target))
    assert got == pytest.approx(30.0, abs=1e-9)
    assert abs(got - pooled) > 7.0
    torch.testing.assert_close(
        psnr_l(pred, target, reduction="none"),
        torch.tensor([20.0, 40.0], dtype=torch.float64),
        rtol=0,
        atol=1e-9,
    )


def test_predictions_are_clipped_to_unit_range_but_target_is_not():
    target = torch.full((3, 8, 8), 0.9, dtype=torch.float64)
    # 1.2 is clipped to 1.0: error 0.1 -> 20 dB (unclipped it would be 10.46 dB).
    assert float(psnr_l(torch.full_like(target, 1.2), target)) == pytest.approx(20.0, abs=1e-9)
    # Negative predictions are clipped to 0.
    zero = torch.zeros(3, 8, 8, dtype=torch.float64)
    assert math.isinf(float(psnr_l(zero - 0.3, zero)))
    # A target above 1 is kept: a prediction of 1 (the clip) misses it by 0.1.
    bright = torch.full((3, 8, 8), 1.1, dtype=torch.float64)
    assert float(psnr_l(bright, bright)) == pytest.approx(20.0, abs=1e-9)


def test_numpy_float32_inputs_are_accepted_and_scored_in_float64():
    pred, target = random_pair(batch=1, seed=3)
    pred32, target32 = pred[0].astype(np.float32), target[0].astype(np.float32)
    expected = np_psnr(np_mu_law(np.clip(pred32, 0, 1)), np_mu_law(target32.astype(np.float64)))
    got = psnr_mu(pred32, target32)
    assert got.dtype == torch.float64 and got.ndim == 0
    assert float(got) == pytest.approx(expected, abs=1e-6)


# ---- SSIM ---------------------------------------------------------------------------------


def test_ssim_matches_numpy_gaussian_ssim_with_reflect_padding():
    pred, target = random_pair(batch=2, h=23, w=30, seed=1)
    pred_c = np.clip(pred, 0.0, 1.0)
    expect_l = [np_ssim(pred_c[b], target[b]) for b in range(2)]
    expect_mu = [np_ssim(np_mu_law(pred_c[b]), np_mu_law(target[b])) for b in range(2)]
    got_l = ssim_l(pred, target, reduction="none").numpy()
    got_mu = ssim_mu(pred, target, reduction="none").numpy()
    np.testing.assert_allclose(got_l, expect_l, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_mu, expect_mu, rtol=0, atol=1e-6)
    assert float(ssim_mu(pred, target)) == pytest.approx(np.mean(expect_mu), abs=1e-6)
    # The scores are far from 1, so the comparison is not trivially satisfied.
    assert max(got_mu) < 0.99


def test_ssim_scores_the_reflect_padded_border_not_only_the_valid_region():
    # A defect in the outer 3 rows weighs far more when the border pixels are scored
    # (reflect padding, torchmetrics) than when only fully covered windows are (skimage-style
    # valid region); the numpy reference above must side with the padded version.
    target = np.random.default_rng(7).uniform(0.2, 0.8, size=(1, 3, 32, 32))
    pred = target.copy()
    pred[:, :, :3, :] = 0.05
    got = float(ssim_l(pred, target))
    padded = np_ssim(pred[0], target[0])
    valid = np_ssim(pred[0], target[0], padding="valid")
    assert got == pytest.approx(padded, abs=1e-6)
    assert abs(got - valid) > 0.05


# ---- PU21 ---------------------------------------------------------------------------------


def test_pu21_encode_matches_the_published_formula_at_hand_luminances():
    lum = np.array([0.005, 0.1, 1.0, 10.0, 100.0, 1000.0, 4000.0, 10000.0])
    expected = np_pu21(lum)
    got = pu21_encode(torch.from_numpy(lum)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    # The encoding's design anchors: ~0 at 0.005 cd/m^2, ~256 at 100 cd/m^2 (SDR white).
    assert abs(got[0]) < 1e-6
    assert got[4] == pytest.approx(256.0, abs=0.5)


def test_pu21_encode_is_monotonic_and_clamps_outside_its_range():
    lum = torch.logspace(-3, 4.5, 2000, dtype=torch.float64)
    v = pu21_encode(lum)
    inside = (lum > 0.005) & (lum < 10000)
    assert (v[inside][1:] > v[inside][:-1]).all()
    torch.testing.assert_close(
        pu21_encode(torch.tensor([1e-6, 20000.0], dtype=torch.float64)),
        pu21_encode(torch.tensor([0.005, 10000.0], dtype=torch.float64)),
    )


def test_pu21_psnr_matches_numpy_rgb_and_luminance():
    pred, target = random_pair(seed=2)
    pred_c = np.clip(pred, 0.0, 1.0)
    peak = 1000.0
    expect_rgb = [
        np_psnr(np_pu21(pred_c[b] * peak), np_pu21(target[b] * peak), 256.0) for b in range(2)
    ]
    weights = np.array([0.212656, 0.715158, 0.072186])[:, None, None]
    expect_y = [
        np_psnr(
            np_pu21((pred_c[b] * peak * weights).sum(0)),
            np_pu21((target[b] * peak * weights).sum(0)),
            256.0,
        )
        for b in range(2)
    ]
    got_rgb = pu21_psnr(pred, target, reduction="none").numpy()
    got_y = pu21_psnr(pred, target, channels="luminance", reduction="none").numpy()
    np.testing.assert_allclose(got_rgb, expect_rgb, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_y, expect_y, rtol=0, atol=1e-9)
    assert not np.allclose(got_rgb, got_y)


def test_pu21_psnr_depends_on_peak_luminance():
    pred, target = random_pair(seed=4)
    assert float(pu21_psnr(pred, target, peak_luminance=100.0)) != pytest.approx(
        float(pu21_psnr(pred, target, peak_luminance=4000.0)), abs=0.1
    )


# ---- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [psnr_l, psnr_mu, ssim_l, ssim_mu, pu21_psnr])
def test_bad_inputs_raise_hdrzoo_errors_naming_the_argument(metric):
    good = torch.rand(3, 16, 16)
    with pytest.raises(HDRZooError, match="same shape"):
        metric(torch.rand(3, 16, 17), good)
    with pytest.raises(HDRZooError, match="pred"):
        metric(torch.rand(4, 16, 16), torch.rand(4, 16, 16))
    with pytest.raises(HDRZooError, match="target"):
        metric(good, torch.rand(16, 16))
    nan = good.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(HDRZooError, match="pred contains NaN"):
        metric(nan, good)
    with pytest.raises(HDRZooError, match="target contains NaN"):
        metric(good, nan)
    with pytest.raises(HDRZooError, match="negative"):
        metric(good, good - 0.5)
    with pytest.raises(HDRZooError, match="reduction"):
        metric(good, good, reduction="sum")
    with pytest.raises(HDRZooError, match="floating-point"):
        metric((good * 255).to(torch.uint8), good)


def test_ssim_rejects_images_smaller_than_its_window():
    with pytest.raises(HDRZooError, match="11 x 11"):
        ssim_l(torch.rand(3, 8, 32), torch.rand(3, 8, 32))


def test_pu21_rejects_bad_options():
    x = torch.rand(3, 8, 8)
    with pytest.raises(HDRZooError, match="peak_luminance"):
        pu21_psnr(x, x, peak_luminance=0.0)
    with pytest.raises(HDRZooError, match="PU21 parameter set"):
        pu21_psnr(x, x, parameters="nope")
    with pytest.raises(HDRZooError, match="channels"):
        pu21_psnr(x, x, channels="y")


# ---- evaluate -----------------------------------------------------------------------------


def test_evaluate_returns_floats_equal_to_each_metric_in_order():
    pred, target = random_pair(seed=5)
    names = ("ssim_l", "psnr_mu", "pu21_psnr", "psnr_l", "ssim_mu")
    got = evaluate(pred, target, metrics=names)
    assert list(got) == list(names)
    assert all(type(v) is float for v in got.values())
    assert got["psnr_mu"] == pytest.approx(float(psnr_mu(pred, target)), abs=1e-12)
    assert got["ssim_l"] == pytest.approx(float(ssim_l(pred, target)), abs=1e-12)
    assert got["pu21_psnr"] == pytest.approx(float(pu21_psnr(pred, target)), abs=1e-12)
    assert list(evaluate(pred, target)) == ["psnr_mu", "psnr_l", "ssim_mu", "ssim_l"]
    with pytest.raises(HDRZooError, match="unknown metric"):
        evaluate(pred, target, metrics=("psnr_mu", "lpips"))


# ---- cvvdp (optional extra) ----------------------------------------------------------------


def test_cvvdp_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycvvdp", None)  # makes `import pycvvdp` fail
    x = torch.rand(3, 16, 16)
    with pytest.raises(HDRZooError, match=r"pip install hdrzoo\[vdp\]"):
        cvvdp(x, x)


def test_cvvdp_refuses_display_encoded_displays():
    x = torch.rand(3, 16, 16)
    with pytest.raises(HDRZooError, match="standard_hdr_linear"):
        cvvdp(x, x, display="standard_hdr_pq")


def import_pycvvdp():
    """ColorVideoVDP (the ``vdp`` extra): skipped where it is not installed, unless
    ``HDRZOO_REQUIRE_VDP=1`` (``make test-vdp``) makes its absence a failure."""
    if os.environ.get("HDRZOO_REQUIRE_VDP") == "1":
        import pycvvdp

        return pycvvdp
    return pytest.importorskip("pycvvdp", reason="the vdp extra is not installed")


def test_cvvdp_scores_identical_images_highest_and_equals_colorvideovdp_itself(monkeypatch):
    pycvvdp = import_pycvvdp()
    # ColorVideoVDP runs offline: its CSF tables and display models ship with the package.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    target = torch.rand(2, 3, 48, 64, dtype=torch.float64) * 0.5
    noisy = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    same = cvvdp(target, target, device="cpu", reduction="none")
    worse = cvvdp(noisy, target, device="cpu", reduction="none")
    assert same.shape == (2,) and same.dtype == torch.float64
    assert torch.allclose(same, torch.full((2,), 10.0, dtype=torch.float64), atol=0.05)
    assert (worse < same - 0.1).all()
    # The same numbers from ColorVideoVDP called by hand, in cd/m^2 (1.0 -> 400 cd/m^2 here).
    metric = pycvvdp.cvvdp(
        display_name="standard_hdr_linear", quiet=True, device=torch.device("cpu")
    )
    by_hand = [
        float(metric.predict((t * 400).float(), (r * 400).float(), dim_order="CHW")[0])
        for t, r in zip(noisy, target)
    ]
    got = cvvdp(noisy, target, peak_luminance=400.0, device="cpu", reduction="none")
    torch.testing.assert_close(got, torch.tensor(by_hand, dtype=torch.float64), rtol=0, atol=1e-6)
    assert float(cvvdp(noisy, target, peak_luminance=400.0)) == pytest.approx(sum(by_hand) / 2)


# ---- the SAFNet-S reference table ----------------------------------------------------------


@pytest.mark.parametrize(
    ("scene", "expected_mu", "expected_l"),
    [("courtyard", 31.6089, 21.0829), ("forest", 28.7970, 17.1553)],
)
def test_reference_frame_alone_matches_the_reference_table(
    safnet_s_fixture, scene, expected_mu, expected_l
):
    from hdrzoo.io import read_hdr

    folder = safnet_s_fixture / "scenes" / scene
    u16 = tifffile.imread(folder / "ldr_1.tif")
    assert u16.dtype == np.uint16 and u16.shape[-1] == 3
    ldr = (u16 / 65536.0).astype(np.float32)
    lin = ldr**2.2 / np.float32(4.0)  # the official float32 linearisation, t = 4 for EV 0
    pred = np.ascontiguousarray(lin.transpose(2, 0, 1))
    gt = read_hdr(folder / "HDRImg.hdr")
    assert float(psnr_mu(pred, gt)) == pytest.approx(expected_mu, abs=1e-3)
    assert float(psnr_l(pred, gt)) == pytest.approx(expected_l, abs=1e-3)
