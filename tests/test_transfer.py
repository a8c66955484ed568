"""The transfer evaluation (``benchmarks/transfer.py``, issue 22) and the reference-preserving
property (``tests/_reference_preserving.py``)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _reference_preserving import (
    assert_preserves_reference,
    reference_preservation,
    static_unsaturated_bracket,
)

from hdrzoo.data.synthetic import ASSETS_DIR, SyntheticConfig, procedural_radiance, synthesize
from hdrzoo.errors import HDRZooError
from hdrzoo.hub import load
from hdrzoo.io import write_hdr
from hdrzoo.ops.tonemap import linearize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def transfer():
    """``benchmarks/transfer.py`` as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "hdrzoo_benchmark_transfer", ROOT / "benchmarks" / "transfer.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def map_folder(tmp_path_factory) -> Path:
    """Three small procedural radiance maps, and a renamed copy of a packaged asset."""
    folder = tmp_path_factory.mktemp("maps")
    for i, name in enumerate(("alpha", "beta", "gamma")):
        radiance = procedural_radiance(96, 160, torch.Generator().manual_seed(100 + i))
        write_hdr(folder / f"{name}.exr", radiance)
    shutil.copyfile(ASSETS_DIR / "city.exr", folder / "city_again.exr")
    return folder


# ----------------------------------------------------------------------------- simulator


def test_a_folder_of_maps_is_a_radiance_source_and_only_its_maps_are_used(map_folder):
    sources = {
        synthesize(seed, size=32, radiance=str(map_folder)).meta["source"] for seed in range(12)
    }
    assert sources <= {"alpha.exr", "beta.exr", "gamma.exr", "city_again.exr"}
    assert len(sources) >= 2  # drawn per sample, not always the first
    only = [str(map_folder / "beta.exr")]
    assert {synthesize(s, size=32, radiance=only).meta["source"] for s in range(4)} == {"beta.exr"}


def test_a_folder_without_maps_is_an_error(tmp_path):
    with pytest.raises(HDRZooError, match="no .hdr / .exr"):
        SyntheticConfig(radiance=str(tmp_path))


# ----------------------------------------------------------------------------- protocol


def test_maps_are_identified_by_content_and_held_out_scenes_never_use_held_in_maps(
    transfer, map_folder
):
    maps = transfer.discover_maps([ASSETS_DIR, map_folder])
    assert sorted(maps) == ["alpha", "beta", "city", "gamma", "sunset"]  # the copy of city is city
    (fold,) = transfer.make_folds(maps)
    assert sorted(fold.held_in) == ["city", "sunset"]  # the default simulator's maps
    assert sorted(fold.held_out) == ["alpha", "beta", "gamma"]
    held_in_bytes = {transfer.map_digest(maps[m]) for m in fold.held_in}
    scenes = transfer.held_out_scenes(maps, fold.held_out, per_map=1, size=(48, 48))
    for scene in scenes:
        source = map_folder / scene.meta["source"]
        assert scene.meta["source"] in {"alpha.exr", "beta.exr", "gamma.exr"}
        assert transfer.map_digest(source) not in held_in_bytes

    folds = transfer.make_folds(maps, leave_one_out=True)
    assert len(folds) == 5
    for fold in folds:
        assert fold.held_out[0] not in fold.held_in and len(fold.held_in) == 4
    with pytest.raises(HDRZooError, match="held-in"):
        transfer.make_folds(maps, held_in=["city", "alpha"], held_out=["alpha"])
    with pytest.raises(HDRZooError, match="unknown map"):
        transfer.make_folds(maps, held_in=["nowhere"])


def test_region_masks_match_a_direct_numpy_computation(transfer):
    values = np.array(
        [  # (H=2, W=4) pixels, 3 channels each
            [[0.50, 0.50, 0.50], [0.10, 0.90, 0.50], [0.09, 0.50, 0.50], [0.99, 0.20, 0.20]],
            [[0.95, 0.50, 0.50], [1.00, 1.00, 1.00], [0.30, 0.91, 0.40], [0.00, 0.00, 0.00]],
        ]
    )
    reference = torch.from_numpy(values).permute(2, 0, 1).float()
    masks = transfer.region_masks(reference)
    well = np.zeros((2, 4), dtype=bool)
    saturated = np.zeros((2, 4), dtype=bool)
    for y in range(2):
        for x in range(4):
            well[y, x] = all(0.1 <= np.float32(c) <= 0.9 for c in values[y, x])
            saturated[y, x] = any(np.float32(c) >= np.float32(0.99) for c in values[y, x])
    np.testing.assert_array_equal(masks["well_exposed"].numpy(), well)
    np.testing.assert_array_equal(masks["saturated"].numpy(), saturated)
    assert well.tolist() == [[True, True, False, False], [False, False, False, False]]
    assert saturated.tolist() == [[False, False, False, True], [False, True, False, False]]

    pred = torch.rand(3, 2, 4, dtype=torch.float64)
    target = torch.rand(3, 2, 4, dtype=torch.float64)
    expected = 10 * np.log10(1 / np.mean((pred.numpy() - target.numpy())[:, well] ** 2))
    assert transfer.masked_psnr(pred, target, masks["well_exposed"]) == pytest.approx(expected)
    assert math.isnan(transfer.masked_psnr(pred, target, torch.zeros(2, 4, dtype=torch.bool)))


def test_held_out_capture_is_poisson_gaussian_through_its_own_camera_response(transfer):
    recipe = transfer.CaptureRecipe(curve="gamma", shoulder=None)  # decodable by gamma 2.2
    signal = torch.full((1, 3, 128, 128), 0.05)
    ldr = transfer.capture(signal, recipe, torch.Generator().manual_seed(0))
    electrons = ldr.double().pow(2.2) * recipe.full_well
    expected_variance = 0.05 * recipe.full_well + recipe.read_noise**2  # Poisson + read
    assert float(electrons.mean()) == pytest.approx(0.05 * recipe.full_well, rel=0.01)
    assert float(electrons.var()) == pytest.approx(expected_variance, rel=0.05)

    x = torch.linspace(0, 1, 1001)
    curve = transfer.camera_response(x, shoulder=6.0)
    assert float(curve[0]) == 0.0 and float(curve[-1]) == pytest.approx(1.0)
    assert bool((curve[1:] > curve[:-1]).all())
    # not the gamma the models assume: decoding it with gamma 2.2 is off by > 20 % in places
    decoded = curve[1:].pow(2.2)
    assert float((decoded / x[1:] - 1).abs().max()) > 0.2


def test_evaluation_runs_for_classic_and_an_untrained_model_and_writes_json(
    transfer, map_folder, tmp_path, capsys
):
    out = tmp_path / "transfer.json"
    argv = ["--model", "safnet_s", "--maps", str(map_folder), "--held-in", "alpha",
            "--held-out", "beta", "gamma", "--per-map", "1", "--size", "64", "64",
            "--json", str(out)]  # fmt: skip
    transfer.main(argv)
    printed = capsys.readouterr().out
    assert "| **mean** | classic |" in printed and "safnet_s vs reference" in printed
    record = json.loads(out.read_text())
    assert set(record) >= {"protocol", "model", "folds", "scenes", "mean", "margins"}
    assert record["folds"][0]["held_in"] == ["alpha"]
    assert record["folds"][0]["held_out"] == ["beta", "gamma"]
    assert [s["source"] for s in record["scenes"]] == ["beta.exr", "gamma.exr"]
    keys = {"psnr_mu", "psnr_l", "psnr_mu_well_exposed", "psnr_mu_saturated"}
    for scene in record["scenes"]:
        assert set(scene["methods"]) == {"reference", "classic", "safnet_s"}
        for scores in scene["methods"].values():
            assert set(scores) == keys
            assert math.isfinite(scores["psnr_mu"]) and math.isfinite(scores["psnr_l"])
    assert set(record["mean"]) == {"reference", "classic", "safnet_s"}
    assert set(record["margins"]) == {"safnet_s"}
    margin = record["margins"]["safnet_s"]["psnr_mu_vs_classic"]
    means = record["mean"]
    assert margin == pytest.approx(means["safnet_s"]["psnr_mu"] - means["classic"]["psnr_mu"])

    # the reference row really is the linearised reference frame, scored independently
    maps = transfer.discover_maps([map_folder])
    scene = transfer.held_out_scenes(maps, ["beta"], per_map=1, size=(64, 64))[0]
    alone = linearize(scene.ldr[scene.ref], scene.exposures[scene.ref : scene.ref + 1])[0]
    mu = lambda x: np.log1p(5000 * np.clip(x, 0, 1)) / np.log1p(5000)  # noqa: E731
    mse = np.mean((mu(alone.double().numpy()) - mu(scene.gt.double().numpy())) ** 2)
    assert record["scenes"][0]["methods"]["reference"]["psnr_mu"] == pytest.approx(
        10 * np.log10(1 / mse), rel=1e-9
    )


def test_leave_one_out_needs_a_training_budget(transfer, map_folder):
    with pytest.raises(HDRZooError, match="--train-steps"):
        transfer.run(map_folders=[map_folder], leave_one_out=True)
    with pytest.raises(HDRZooError, match="registry model"):
        transfer.run(model="weights.ckpt", map_folders=[map_folder], train_steps=1)


def test_training_before_evaluation_uses_only_the_held_in_maps(transfer, map_folder):
    record = transfer.run(
        model="safnet_s",
        map_folders=[map_folder],
        held_in=["alpha", "beta"],
        held_out=["gamma"],
        per_map=1,
        size=(64, 64),
        train_steps=1,
    )
    (fold,) = record["folds"]
    assert fold["training"]["steps"] == 1
    assert fold["training"]["radiance"] == ["alpha.exr", "beta.exr"]
    assert [s["source"] for s in record["scenes"]] == ["gamma.exr"]
    assert math.isfinite(record["mean"]["safnet_s"]["psnr_mu"])


# ----------------------------------------------------------------------------- reference preserving


def test_classic_preserves_the_reference_on_a_still_unsaturated_bracket():
    bracket = static_unsaturated_bracket(0)
    assert float(bracket.ldr[bracket.ref].max()) < 0.99  # nothing saturated in the reference
    assert float(bracket.ldr[-1].max()) >= 0.99  # while the longest frame does clip
    assert_preserves_reference(load("classic").merge)


def test_the_reference_preserving_check_rejects_merges_that_damage_the_reference():
    classic = load("classic")

    def brighter(bracket):  # a 3 % gain: a colour / exposure bias
        return classic.merge(bracket) * 1.03

    def blurred(bracket):  # a 3 x 3 box blur: lost detail
        hdr = classic.merge(bracket)[None]
        return torch.nn.functional.avg_pool2d(hdr, 3, 1, 1, count_include_pad=False)[0]

    def longest_frame(bracket):  # the longest frame alone: clipped highlights
        return linearize(bracket.ldr[-1], bracket.exposures[-1:])[0]

    for merge in (brighter, blurred, longest_frame):
        with pytest.raises(AssertionError):
            assert_preserves_reference(merge, seeds=(0,))
    # Doing nothing passes: the tolerances are the reference frame's own noise.
    assert_preserves_reference(lambda b: linearize(b.ldr[b.ref], b.exposures[b.ref : b.ref + 1])[0])
    scores = reference_preservation(classic.merge, static_unsaturated_bracket(1))
    assert abs(scores["bias"]) < 0.005 and scores["psnr_mu"] > scores["psnr_mu_reference_alone"]
