"""The simulator's variety options (``synthetic.VARIETY``): each does what it says, and
the defaults still give the bytes they always gave.

References: float64 numpy formulas for the capture, direct mirror / ratio / gradient checks
on noise-free brackets for the radiance options.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrzoo.data import synthetic
from hdrzoo.data.synthetic import VARIETY, SyntheticConfig, synthesize
from hdrzoo.errors import HDRZooError

NOISELESS = dict(shot_noise=0.0, read_noise=0.0)
STILL = dict(still=1.0, **NOISELESS)


def test_default_brackets_draw_nothing_new():
    # The options draw random numbers only when enabled: a default bracket equals one made
    # with every option explicitly at its default.
    explicit = synthesize(
        7,
        size=(48, 64),
        still=0.0,
        radiance_zoom=(1.0, 1.0),
        radiance_flip=False,
        white_balance=0.0,
        noise_gain=(1.0, 1.0),
        crf="gamma",
    )
    assert torch.equal(synthesize(7, size=(48, 64)).ldr, explicit.ldr)


def test_still_brackets_have_no_motion_and_agree_with_the_reference():
    b = synthesize(3, size=(48, 64), keep_radiance=True, **STILL)
    assert b.meta["still"] is True
    assert b.meta["objects"] == []
    assert float(b.meta["flow"].abs().max()) == 0.0
    assert float(b.meta["object_masks"].abs().max()) == 0.0
    radiance = b.meta["radiance"]
    for frame in radiance:  # every frame is the reference's radiance, same geometry
        assert torch.equal(frame, radiance[b.ref])


def test_still_is_drawn_with_its_probability():
    drawn = [
        synthesize(s, size=16, still=0.3, radiance="procedural").meta["still"] for s in range(200)
    ]
    assert 0.2 < np.mean(drawn) < 0.4  # binomial(200, 0.3): 0.3 +- 3.3 sigma


def test_radiance_flip_mirrors_the_scene():
    seeds_flipped = 0
    for seed in range(8):
        plain = synthesize(seed, size=(32, 48), radiance_flip=False, **STILL)
        maybe = synthesize(seed, size=(32, 48), radiance_flip=True, **STILL)
        if torch.equal(maybe.gt, plain.gt):
            continue
        # the same crop, mirrored left-right (k is a percentile: mirror-invariant)
        torch.testing.assert_close(maybe.gt, plain.gt.flip(-1), rtol=1e-5, atol=1e-6)
        seeds_flipped += 1
    assert 1 <= seeds_flipped <= 7


def test_white_balance_scales_each_channel_by_one_gain_within_its_range():
    stops = 0.5
    for seed in range(4):
        plain = synthesize(seed, size=(32, 48), keep_radiance=True, **STILL)
        lit = synthesize(seed, size=(32, 48), keep_radiance=True, white_balance=stops, **STILL)
        a = plain.meta["radiance"][plain.ref].double() / plain.meta["k"]
        b = lit.meta["radiance"][lit.ref].double() / lit.meta["k"]
        bright = a > 1e-3 * float(a.max())
        gains = []
        for c in range(3):
            ratio = (b[c] / a[c])[bright[c]]
            assert float(ratio.std() / ratio.mean()) < 1e-4  # one gain per channel
            gains.append(float(ratio.mean()))
        gains = np.array(gains)
        assert np.log2(gains.max() / gains.min()) <= 2 * stops + 1e-6
        # luminance kept: the gains' luminance is 1
        assert gains @ np.array([0.2126, 0.7152, 0.0722]) == pytest.approx(1.0, rel=1e-5)


def _mean_gradient(image: torch.Tensor) -> float:
    log = torch.log2(image.clamp(min=1e-4))
    return float(
        (log[..., 1:] - log[..., :-1]).abs().mean()
        + (log[..., 1:, :] - log[..., :-1, :]).abs().mean()
    )


def test_radiance_zoom_changes_the_scale_of_the_texture():
    # Reading a 4x larger region (magnification 0.5) packs more edges into the frame than
    # enlarging a small one (magnification 2).
    wide = [
        _mean_gradient(synthesize(s, size=64, radiance_zoom=(0.5, 0.5), **STILL).gt)
        for s in range(6)
    ]
    close = [
        _mean_gradient(synthesize(s, size=64, radiance_zoom=(2.0, 2.0), **STILL).gt)
        for s in range(6)
    ]
    assert np.mean(wide) > 1.5 * np.mean(close), (wide, close)


def test_random_crf_matches_the_float64_camera_it_records():
    b = synthesize(4, size=48, keep_radiance=True, crf="random", **NOISELESS)
    response = b.meta["camera_response"]
    assert synthetic.CRF_GAMMA[0] <= response["gamma"] <= synthetic.CRF_GAMMA[1]
    assert synthetic.CRF_S_STRENGTH[0] <= response["s_strength"] <= synthetic.CRF_S_STRENGTH[1]
    signal = b.meta["radiance"].double().numpy() * b.exposures.double().numpy()[:, None, None, None]
    encoded = np.clip(signal, 0, 1) ** (1 / response["gamma"])
    s = response["s_strength"]
    encoded = (1 - s) * encoded + s * (3 * encoded**2 - 2 * encoded**3)
    got = np.round(b.ldr.double().numpy() * 65535)
    expected = np.round(encoded * 65535)
    assert np.abs(got - expected).max() <= 1.0
    assert np.mean(got == expected) > 0.99


def test_random_crf_and_noise_differ_between_brackets():
    brackets = [
        synthesize(s, size=16, radiance="procedural", crf="random", noise_gain=(0.5, 8.0))
        for s in range(6)
    ]
    gammas = {round(b.meta["camera_response"]["gamma"], 6) for b in brackets}
    assert len(gammas) == 6
    base = SyntheticConfig()
    for b in brackets:
        shot, read = b.meta["noise"]["shot"], b.meta["noise"]["read"]
        assert 0.5 * base.shot_noise <= shot <= 8.0 * base.shot_noise
        assert 0.5 * base.read_noise <= read <= 8.0 * base.read_noise


def test_noise_gain_scales_the_measured_noise():
    # A flat grey scene: the frame's spread is the noise alone.
    quiet = synthesize(1, size=64, radiance="procedural", noise_gain=(1.0, 1.0))
    loud = synthesize(1, size=64, radiance="procedural", noise_gain=(16.0, 16.0))
    assert loud.meta["noise"]["shot"] == pytest.approx(16 * quiet.meta["noise"]["shot"])
    assert loud.meta["noise"]["read"] == pytest.approx(16 * quiet.meta["noise"]["read"])
    residual_quiet = (
        quiet.ldr - synthesize(1, size=64, radiance="procedural", **NOISELESS).ldr
    ).std()
    residual_loud = (
        loud.ldr - synthesize(1, size=64, radiance="procedural", **NOISELESS).ldr
    ).std()
    assert float(residual_loud) > 2.0 * float(residual_quiet)


def test_variety_brackets_keep_the_contract():
    for seed in range(6):
        b = synthesize(seed, size=(48, 64), **VARIETY)
        assert b.ldr.shape == (3, 3, 48, 64)
        assert float(b.ldr.min()) >= 0.0 and float(b.ldr.max()) <= 1.0
        assert float(b.gt.max()) <= 1.0 and torch.isfinite(b.gt).all()
        assert b.meta["source"] in ("procedural", "city.exr", "sunset.exr")
        assert b.meta["camera_response"]["gamma"] == 2.2  # the models' linearisation


@pytest.mark.parametrize(
    "overrides",
    [
        dict(still=1.5),
        dict(still=-0.1),
        dict(radiance_zoom=(0.0, 2.0)),
        dict(radiance_zoom=(2.0, 1.0)),
        dict(noise_gain=(0.0, 1.0)),
        dict(white_balance=-1.0),
        dict(crf="log"),
    ],
)
def test_bad_variety_options_raise_clear_errors(overrides):
    with pytest.raises(HDRZooError, match="SyntheticConfig"):
        synthesize(0, size=16, **overrides)
