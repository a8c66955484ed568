"""The synthetic bracket simulator: contract, capture model, geometry and its guarantees.

Independent references: float64 numpy formulas for the capture (gamma, quantisation,
noise statistics) and for PSNR-mu, torch's grid_sample for the flow (the generator warps
with kornia and computes the flow in closed form), and the classic merge from
hdrzoo.ops.tonemap for the "hard in the right way" guarantees of DATA.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hdrzoo.bracket import Bracket
from hdrzoo.data import synthetic
from hdrzoo.data.synthetic import (
    ASSETS_DIR,
    SyntheticConfig,
    SyntheticDataset,
    procedural_radiance,
    synthesize,
)
from hdrzoo.errors import HDRZooError, ReadError
from hdrzoo.io import write_hdr
from hdrzoo.ops.tonemap import classic_weights, linearize

MU = 5000.0
STILL_CAMERA = dict(
    camera_translation=(0.0, 0.0), camera_rotation=0.0, camera_scale=0.0, camera_perspective=0.0
)
NOISELESS = dict(shot_noise=0.0, read_noise=0.0)


def mu_law64(x: np.ndarray) -> np.ndarray:
    return np.log1p(MU * np.clip(x, 0.0, None)) / np.log1p(MU)


def psnr_mu64(prediction: np.ndarray, target: np.ndarray) -> float:
    mse = np.mean(
        (mu_law64(prediction.astype(np.float64)) - mu_law64(target.astype(np.float64))) ** 2
    )
    return float(10.0 * np.log10(1.0 / mse))


def classic_merge(bracket: Bracket) -> torch.Tensor:
    """Kalantari-17 triangle merge of the unaligned frames (frames are sorted by exposure)."""
    ldr, exposures = bracket.ldr[None].double(), bracket.exposures[None].double()
    weights = classic_weights(ldr, bracket.ref)
    linear = linearize(ldr, exposures)
    return ((weights * linear).sum(1) / (weights.sum(1) + 1e-9))[0]


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image(p + flow(p))`` with bilinear grid_sample, pixel-centre convention (align_corners)."""
    _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    x = xs + flow[0].double()
    y = ys + flow[1].double()
    grid = torch.stack([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1)
    return F.grid_sample(image[None].double(), grid[None], align_corners=True)[0], (x, y)


# ----------------------------------------------------------------------------- contract


def test_same_seed_gives_identical_bytes_and_other_seeds_differ():
    a = synthesize(7, size=(64, 80))
    b = synthesize(7, size=(64, 80))
    c = synthesize(8, size=(64, 80))
    assert a.ldr.numpy().tobytes() == b.ldr.numpy().tobytes()
    assert a.gt.numpy().tobytes() == b.gt.numpy().tobytes()
    assert torch.equal(a.meta["flow"], b.meta["flow"])
    assert torch.equal(a.meta["object_masks"], b.meta["object_masks"])
    assert a.meta["k"] == b.meta["k"]
    assert not torch.equal(a.ldr, c.ldr)
    assert not torch.equal(a.gt, c.gt)


def test_determinism_does_not_depend_on_global_rng():
    torch.manual_seed(123)
    np.random.seed(123)
    a = synthesize(3, size=48)
    torch.manual_seed(999)
    np.random.seed(999)
    torch.rand(10)
    b = synthesize(3, size=48)
    assert torch.equal(a.ldr, b.ldr) and torch.equal(a.gt, b.gt)


def test_output_does_not_depend_on_the_callers_thread_count_which_is_restored():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a = synthesize(4, size=64)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        b = synthesize(4, size=64)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert a.ldr.numpy().tobytes() == b.ldr.numpy().tobytes()


def test_bracket_contract_shapes_dtypes_ranges():
    b = synthesize(1, size=(64, 96), evs=(-2, 0, 2))
    assert isinstance(b, Bracket)
    assert b.ldr.shape == (3, 3, 64, 96) and b.ldr.dtype == torch.float32
    assert b.gt.shape == (3, 64, 96) and b.gt.dtype == torch.float32
    assert float(b.ldr.min()) >= 0.0 and float(b.ldr.max()) <= 1.0
    assert float(b.gt.min()) >= 0.0 and float(b.gt.max()) <= 1.0
    assert b.exposures.tolist() == [1.0, 4.0, 16.0]
    assert b.ref == 1
    assert b.meta["flow"].shape == (3, 2, 64, 96) and b.meta["flow"].dtype == torch.float32
    assert b.meta["object_masks"].shape == (3, 1, 64, 96)
    assert b.meta["seed"] == 1 and b.meta["evs"] == [-2.0, 0.0, 2.0]
    assert b.meta["config"]["size"] == (64, 96)
    assert b.meta["k"] > 0
    sample = b.sample()
    assert set(sample) == {"ldr", "exposures", "ref", "name", "gt"}
    assert sample["ref"].dtype == torch.long


@pytest.mark.parametrize(
    ("n", "ref"), [(2, None), (2, 0), (3, 0), (3, 2), (4, None), (4, 1), (5, None), (5, 4)]
)
def test_any_frame_count_and_reference(n, ref):
    b = synthesize(11, size=40, n_frames=n, ref=ref, ev_steps=(3.0,))
    expected_ref = n // 2 if ref is None else ref
    assert b.ldr.shape == (n, 3, 40, 40)
    assert b.ref == expected_ref
    np.testing.assert_allclose(b.exposures.numpy(), 2.0 ** (3.0 * np.arange(n)))
    assert b.meta["evs"][expected_ref] == 0.0
    # the reference geometry is the identity: zero flow there, non-zero elsewhere
    flow = b.meta["flow"]
    assert float(flow[expected_ref].abs().max()) == 0.0
    for i in range(n):
        if i != expected_ref:
            assert float(flow[i].abs().max()) > 0.5


def test_ev_step_is_drawn_from_the_configured_spacings():
    steps = {synthesize(s, size=32).meta["evs"][-1] for s in range(12)}
    assert steps == {2.0, 3.0}


@pytest.mark.parametrize("bits", [8, 16])
def test_frames_are_quantised_codes(bits):
    b = synthesize(5, size=48, bit_depth=bits)
    levels = 2**bits - 1
    ldr = b.ldr.numpy()
    codes = np.round(ldr.astype(np.float64) * levels)
    # every value is exactly code / (2**bits - 1) in float32
    np.testing.assert_array_equal(codes.astype(np.float32) / np.float32(levels), ldr)
    assert codes.min() >= 0 and codes.max() <= levels
    assert len(np.unique(codes)) > 50


# ----------------------------------------------------------------------------- capture model


def test_gt_is_clipped_reference_radiance_scaled_to_its_999th_percentile():
    b = synthesize(2, size=64, keep_radiance=True)
    radiance = b.meta["radiance"]
    assert radiance.shape == (3, 3, 64, 64)
    assert torch.equal(b.gt, radiance[b.ref].clamp(max=1.0))
    assert np.percentile(radiance[b.ref].double().numpy(), 99.9) == pytest.approx(1.0, rel=1e-5)
    assert float(radiance.min()) >= 0.0


@pytest.mark.parametrize("crf", ["gamma", "s-curve"])
def test_noiseless_capture_matches_float64_camera(crf):
    b = synthesize(4, size=48, keep_radiance=True, crf=crf, **NOISELESS)
    signal = b.meta["radiance"].double().numpy() * b.exposures.double().numpy()[:, None, None, None]
    encoded = np.clip(signal, 0, 1) ** (1 / 2.2)
    if crf == "s-curve":
        encoded = 0.65 * encoded + 0.35 * (3 * encoded**2 - 2 * encoded**3)
    expected = np.round(encoded * 65535)
    got = np.round(b.ldr.double().numpy() * 65535)
    assert np.abs(got - expected).max() <= 1.0  # float32 vs float64 at .5 boundaries
    assert np.mean(got == expected) > 0.99


def test_s_curve_is_a_different_monotone_crf():
    gamma = synthesize(4, size=48, **NOISELESS)
    s_curve = synthesize(4, size=48, crf="s-curve", **NOISELESS)
    x, y = gamma.ldr.flatten().numpy(), s_curve.ldr.flatten().numpy()
    assert not np.array_equal(x, y)
    order = np.lexsort((y, x))  # by x, ties by y: a monotone map keeps y sorted too
    assert np.all(np.diff(y[order]) >= 0)
    assert y[x == 0].max(initial=0) == 0 and y[x == 1].min(initial=1) == 1


def test_noise_follows_the_poisson_gaussian_model():
    # frames minus the clean signal, in linear units, standardised by the model's std:
    # variance = 1e-4 * signal + (2e-4)^2
    b = synthesize(6, size=128, bit_depth=16, keep_radiance=True)
    signal = b.meta["radiance"].double().numpy() * b.exposures.double().numpy()[:, None, None, None]
    measured = b.ldr.double().numpy() ** 2.2
    usable = (signal > 0.02) & (signal < 0.8)
    z = (measured - signal)[usable] / np.sqrt(1e-4 * signal[usable] + 2e-4**2)
    assert usable.sum() > 20000
    assert abs(z.mean()) < 0.03
    assert z.std() == pytest.approx(1.0, abs=0.05)
    # dark pixels: read noise dominates (std about 2e-4 at signal ~1e-5 .. 1e-4)
    quiet = synthesize(6, size=128, keep_radiance=True, shot_noise=0.0, read_noise=2e-4)
    s = (
        quiet.meta["radiance"].double().numpy()
        * quiet.exposures.double().numpy()[:, None, None, None]
    )
    mid = (s > 0.05) & (s < 0.8)
    residual = quiet.ldr.double().numpy() ** 2.2 - s
    assert residual[mid].std() == pytest.approx(2e-4, rel=0.1)


def test_reference_has_a_clearly_saturated_region_by_default():
    for seed in range(8):
        b = synthesize(seed)
        saturated = (b.ldr[b.ref].amax(dim=0) >= 0.99).float().mean().item()
        assert saturated >= 0.03, (seed, saturated)
        assert b.meta["saturated"][b.ref] == pytest.approx(saturated)
        # and the shortest frame recovers most of it
        assert b.meta["saturated"][0] < 0.5 * saturated


# ----------------------------------------------------------------------------- geometry


@pytest.fixture(scope="module")
def smooth_radiance_file(tmp_path_factory):
    """A smooth, non-panoramic radiance map (sinusoids spanning ~6 stops) written as EXR."""
    height, width = 220, 300
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    log2 = 3 * np.sin(x / 17.0) * np.cos(y / 23.0) + 2 * np.sin((x + y) / 41.0)
    image = np.stack([np.exp2(log2), np.exp2(0.8 * log2 + 0.3), np.exp2(0.6 * log2 - 0.2)])
    path = tmp_path_factory.mktemp("radiance") / "smooth.exr"
    write_hdr(path, image.astype(np.float32))
    return path


def test_background_flow_maps_reference_pixels_onto_each_frame(smooth_radiance_file):
    config = dict(
        size=(96, 128),
        radiance=str(smooth_radiance_file),
        n_objects=(0, 0),
        keep_radiance=True,
        camera_translation=(6.0, 10.0),
        camera_rotation=2.0,
        camera_perspective=2.0,
        n_frames=4,
        ref=1,
    )
    for seed in range(3):
        b = synthesize(seed, **config)
        radiance, flow, ref = b.meta["radiance"], b.meta["flow"], b.ref
        for i in range(4):
            if i == ref:
                continue
            warped, (x, y) = backward_warp(radiance[i], flow[i])
            inside = (x > 1) & (x < 126) & (y > 1) & (y < 94)
            assert inside.float().mean() > 0.7
            target = radiance[ref].double()
            relative = ((warped - target).abs() / target.clamp(min=1e-6))[:, inside]
            unaligned = ((radiance[i].double() - target).abs() / target.clamp(min=1e-6))[:, inside]
            assert float(relative.max()) < 2e-2, (seed, i)
            assert float(relative.mean()) < 2e-3
            assert float(unaligned.mean()) > 20 * float(relative.mean())


def test_background_flow_on_real_radiance_beats_no_flow():
    b = synthesize(12, size=128, n_objects=(0, 0), keep_radiance=True, camera_translation=(5, 8))
    radiance, flow = b.meta["radiance"], b.meta["flow"]
    target = mu_law64(radiance[b.ref].double().numpy())
    for i in (0, 2):
        warped, (x, y) = backward_warp(radiance[i], flow[i])
        inside = ((x > 1) & (x < 126) & (y > 1) & (y < 126)).numpy()
        aligned_err = np.abs(mu_law64(warped.numpy()) - target)[:, inside].mean()
        unaligned_err = np.abs(mu_law64(radiance[i].double().numpy()) - target)[:, inside].mean()
        # residual from interpolating twice, far below the misalignment
        assert aligned_err < 0.25 * unaligned_err


def test_pure_translation_gives_uniform_flow_of_the_drawn_length():
    b = synthesize(
        9,
        size=64,
        camera_translation=(4.0, 4.0),
        camera_rotation=0.0,
        camera_scale=0.0,
        camera_perspective=0.0,
    )
    for i in (0, 2):
        flow = b.meta["flow"][i].double()
        length = torch.sqrt(flow[0] ** 2 + flow[1] ** 2)
        torch.testing.assert_close(length, torch.full_like(length, 4.0), rtol=0, atol=1e-4)
        assert float((flow - flow[:, :1, :1]).abs().max()) < 1e-4


def test_sprites_move_at_their_drawn_speed():
    b = synthesize(
        21,
        size=256,
        n_objects=(1, 1),
        object_radius=(0.05, 0.06),
        object_speed=(12.0, 20.0),
        object_on_clipped=0.0,
        **STILL_CAMERA,
    )
    masks = b.meta["object_masks"][:, 0].double()
    ys, xs = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    centroids = [
        ((m * xs.double()).sum() / m.sum(), (m * ys.double()).sum() / m.sum()) for m in masks
    ]
    speed = b.meta["objects"][0]["speed_px"]
    for i in (0, 2):
        dx = float(centroids[i][0] - centroids[1][0])
        dy = float(centroids[i][1] - centroids[1][1])
        assert math.hypot(dx, dy) == pytest.approx(speed, abs=0.3)


def test_object_masks_mark_where_sprites_change_the_frame():
    # objects are drawn after the camera and the crop, so the same seed without objects
    # renders the same background: radiance / k differs exactly under the masks
    scene = synthesize(3, size=96, keep_radiance=True)
    plain = synthesize(3, size=96, keep_radiance=True, n_objects=(0, 0))
    masks = scene.meta["object_masks"][:, 0]
    assert float(plain.meta["object_masks"].max()) == 0.0
    assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0
    assert float(masks[scene.ref].mean()) > 0.005  # objects are in the reference view
    assert not torch.equal(masks[0], masks[1])  # and they move
    with_objects = scene.meta["radiance"].double() / scene.meta["k"]
    background = plain.meta["radiance"].double() / plain.meta["k"]
    difference = ((with_objects - background).abs() / background.clamp(min=1e-6)).amax(dim=1)
    assert float(difference[masks == 0].max()) < 1e-4
    assert float((difference[masks > 0.99] > 0.05).float().mean()) > 0.9


# ----------------------------------------------------------------------------- guarantees


def test_hard_in_the_right_way():
    """Reference alone and unaligned merge score clearly below perfect; ghosts where objects move."""
    pooled = np.zeros(4)
    for seed in range(6):
        b = synthesize(seed)
        gt = b.gt.double().numpy()
        reference_alone = (b.ldr[b.ref].double() ** 2.2 / b.exposures[b.ref].double()).numpy()
        merge = classic_merge(b).numpy()
        assert psnr_mu64(reference_alone, gt) < 40.0, seed
        assert psnr_mu64(merge, gt) < 40.0, seed
        error = np.abs(mu_law64(merge) - mu_law64(gt)).mean(axis=0)
        masks = b.meta["object_masks"][:, 0].numpy()
        moving = (masks.max(axis=0) - masks.min(axis=0)) > 0.5
        assert 0.005 < moving.mean() < 0.95
        ratio = error[moving].mean() / error[~moving].mean()
        assert ratio > 1.5, (seed, ratio)
        pooled += [error[moving].sum(), moving.sum(), error[~moving].sum(), (~moving).sum()]
    assert (pooled[0] / pooled[1]) / (pooled[2] / pooled[3]) >= 3.0


def test_procedural_scene_spans_more_than_12_stops():
    for seed in range(4):
        radiance = procedural_radiance(96, 128, torch.Generator().manual_seed(seed)).double()
        assert float(radiance.min()) >= 0.0
        luminance = (0.2126 * radiance[0] + 0.7152 * radiance[1] + 0.0722 * radiance[2]).numpy()
        assert math.log2(luminance.max() / np.percentile(luminance, 0.1)) >= 12.0
        # lamps stay under the 99.9th percentile's share of pixels: k is set by the scene
        assert np.mean(luminance > 2.0**9) < 1e-3


def test_procedural_radiance_brackets():
    a = synthesize(5, size=64, radiance="procedural")
    b = synthesize(5, size=64, radiance="procedural")
    assert a.meta["source"] == "procedural"
    assert torch.equal(a.ldr, b.ldr)
    assert (a.ldr[a.ref].amax(dim=0) >= 0.99).any()


# ----------------------------------------------------------------------------- radiance sources


def test_packaged_assets_are_small_licensed_and_used():
    files = sorted(p.name for p in ASSETS_DIR.iterdir())
    assert "LICENSE-hdri.txt" in files
    assert "CC0" in (ASSETS_DIR / "LICENSE-hdri.txt").read_text()
    exrs = [p for p in ASSETS_DIR.glob("*.exr")]
    assert 1 <= len(exrs) <= 2
    assert sum(p.stat().st_size for p in ASSETS_DIR.iterdir()) < 600_000
    sources = {synthesize(s, size=32).meta["source"] for s in range(12)}
    assert sources == {p.name for p in exrs}


def test_radiance_maps_are_read_once():
    synthesize(0, size=32)
    before = synthetic._load_map.cache_info()
    for seed in range(1, 6):
        synthesize(seed, size=32)
    after = synthetic._load_map.cache_info()
    assert after.misses == before.misses
    assert after.hits >= before.hits + 5


def test_user_radiance_path_and_list(smooth_radiance_file):
    b = synthesize(0, size=48, radiance=str(smooth_radiance_file))
    assert b.meta["source"] == "smooth.exr"
    mixed = {
        synthesize(s, size=32, radiance=[str(smooth_radiance_file), "procedural"]).meta["source"]
        for s in range(10)
    }
    assert mixed == {"smooth.exr", "procedural"}


def test_user_radiance_smaller_than_the_frames_is_upscaled(smooth_radiance_file):
    b = synthesize(1, size=(300, 400), radiance=str(smooth_radiance_file), n_objects=(0, 0))
    assert b.ldr.shape == (3, 3, 300, 400)


def test_shared_panorama_as_radiance(shared):
    path = shared / "data" / "hdri" / "studio.exr"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    b = synthesize(2, size=64, radiance=[str(path)])
    assert b.meta["source"] == "studio.exr"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (dict(radiance="/nonexistent/map.exr"), ReadError),
        (dict(radiance="scene.png"), HDRZooError),
        (dict(radiance=[]), HDRZooError),
        (dict(bit_depth=12), HDRZooError),
        (dict(crf="linear"), HDRZooError),
        (dict(n_frames=1), HDRZooError),
        (dict(ref=3), HDRZooError),
        (dict(evs=(0, 0, 2)), HDRZooError),
        (dict(size=(4, 64)), HDRZooError),
        (dict(object_speed=(20, 10)), HDRZooError),
        (dict(wobble=3), HDRZooError),
    ],
)
def test_bad_options_raise_clear_errors(overrides, error):
    with pytest.raises(error):
        synthesize(0, **overrides)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(HDRZooError, match="seed"):
        synthesize(seed)


def test_config_is_json_able_and_reusable():
    import json

    config = SyntheticConfig(size=48, evs=(-3, 0, 3), radiance=["assets", "procedural"])
    text = json.dumps(config.to_dict())
    again = SyntheticConfig(**json.loads(text))
    assert synthesize(2, again).ldr.numpy().tobytes() == synthesize(2, config).ldr.numpy().tobytes()


# ----------------------------------------------------------------------------- dataset


def test_dataset_items_are_synthesize_samples():
    ds = SyntheticDataset(5, config={"evs": (-2, 0, 2)}, seed=100, crop_size=40)
    assert len(ds) == 5
    item = ds[3]
    expected = synthesize(103, size=40, evs=(-2, 0, 2)).sample()
    assert set(item) == set(expected)
    for key in ("ldr", "exposures", "ref", "gt"):
        assert torch.equal(item[key], expected[key])
    assert torch.equal(ds[-1]["ldr"], ds[4]["ldr"])
    with pytest.raises(IndexError):
        ds[5]


def test_dataset_batches_through_a_dataloader():
    ds = SyntheticDataset(4, seed=0, crop_size=32)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["ldr"].shape == (4, 3, 3, 32, 32)
    assert batch["gt"].shape == (4, 3, 32, 32)
    assert batch["exposures"].shape == (4, 3)
    assert batch["ref"].tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("layout", "bit_depth"),
    [("kalantari17", 16), ("challenge123", 16), ("generic", 16), ("ntire", 8)],
)
def test_synthetic_scene_written_in_every_layout_reads_back_identically(
    tmp_path, layout, bit_depth
):
    from hdrzoo.io import read_bracket, write_bracket

    bracket = synthesize(5, size=(48, 64), bit_depth=bit_depth)
    gt_format = ".exr" if layout != "ntire" else ".hdr"  # NTIRE stores its own 16-bit PNG
    scene = write_bracket(tmp_path / layout, bracket, layout=layout, gt_format=gt_format)
    back = read_bracket(scene)
    assert back.meta["layout"] == layout
    torch.testing.assert_close(back.ldr, bracket.ldr, rtol=0, atol=0)
    torch.testing.assert_close(back.exposures, bracket.exposures, rtol=0, atol=0)
    assert back.ref == bracket.ref
    if layout == "ntire":  # 16-bit PNG of gt * alignratio: its own quantisation step
        assert (back.gt - bracket.gt).abs().max() <= 1.0 / 65535 * 2
    else:
        torch.testing.assert_close(back.gt, bracket.gt, rtol=0, atol=0)
