"""SAFNet / SAFNet-S: architecture, input contract, official-checkpoint loading and parity
with the official outputs stored in ``../shared/reference/safnet_s`` and ``.../safnet``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from hdrzoo.errors import BracketError, HDRZooError, InputSizeError, ModelError, WeightsError
from hdrzoo.io import read_hdr
from hdrzoo.models import safnet as safnet_module
from hdrzoo.models.base import NetOutput
from hdrzoo.models.classic import ClassicMerge
from hdrzoo.models.safnet import (
    SAFNet,
    channel_shuffle,
    convert_official_state_dict,
    load_official_weights,
    merge_hdr,
)

SCENES = ("courtyard", "forest")
AUX_KEYS = ("hdr_m", "flow0", "flow2", "mask0", "mask2")
# Fixture README: max |diff| allowed per output.
TOLERANCE = {
    "hdr_r": 1e-4,
    "hdr_m": 1e-4,
    "flow0": 1e-3,
    "flow2": 1e-3,
    "mask0": 1e-4,
    "mask2": 1e-4,
}
NUMPY_AVX2_FEATURES_OFF = "X86_V4 AVX512_ICL AVX512_SPR"


# --------------------------------------------------------------------- helpers ---------
def official_input_arrays(scene_dir: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The official evaluation's inputs as H x W x 6 float32 arrays (fixture README, 1-5)."""
    paths = sorted(scene_dir.glob("*.tif"))
    evs = np.loadtxt(scene_dir / "exposure.txt", dtype=np.float64)
    times = (2.0 ** (evs - evs.min())).astype(np.float32)
    frames = []
    for path, t in zip(paths, times):
        ldr = np.clip(tifffile.imread(path) / 2**16, 0, 1).astype(np.float32)
        linear = ldr**2.2 / t  # numpy float32 power, as the official script
        frames.append(np.concatenate([linear, ldr], axis=2))
    return frames, times


def official_input_tensors(scene_dir: Path) -> list[torch.Tensor]:
    """1 x 6 x H x W channels-last views, exactly as the official script permutes them."""
    frames, _ = official_input_arrays(scene_dir)
    return [torch.from_numpy(f).permute(2, 0, 1).unsqueeze(0) for f in frames]


def input_hashes(scene_dir: Path) -> list[str]:
    frames, _ = official_input_arrays(scene_dir)
    return [
        hashlib.sha256(np.ascontiguousarray(f.transpose(2, 0, 1)[None]).tobytes()).hexdigest()
        for f in frames
    ]


def lin_pow_table() -> np.ndarray:
    return (np.arange(65536) / 2**16).astype(np.float32) ** 2.2


def psnr_mu_float64(prediction: np.ndarray, target: np.ndarray, mu: float = 5000.0) -> float:
    """PSNR of mu-law tone-mapped images, float64, all pixels and channels, nothing clipped."""

    def tonemap(x: np.ndarray) -> np.ndarray:
        return np.log1p(mu * x.astype(np.float64)) / np.log1p(mu)

    mse = np.mean((tonemap(prediction) - tonemap(target)) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


def assert_outputs_close(out: NetOutput, expected: dict[str, np.ndarray], what: str) -> None:
    got = {"hdr_r": out.hdr, **out.aux}
    for key, tol in TOLERANCE.items():
        diff = float(np.abs(got[key][0].detach().numpy() - expected[key]).max())
        assert diff <= tol, f"{what}: {key} differs by {diff:.3g} > {tol:g}"


@pytest.fixture(autouse=True)
def two_threads():
    # The fixtures were made with 2 threads; the tolerances also cover 1 vs 2 threads.
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def safnet_s_official(safnet_s_fixture: Path) -> SAFNet:
    return SAFNet.from_official(safnet_s_fixture / "SAFNet_S_siggraph17.pth").eval()


def state_dict_shapes(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    data = json.loads(path.read_text())
    tensors = data["tensors"] if isinstance(data, dict) else data
    return [(name, tuple(shape)) for name, shape in tensors]


# ---------------------------------------------------------------- architecture --------
@pytest.mark.parametrize("variant,expected", [("s", 566_713), ("full", 1_120_849)])
def test_parameter_count_matches_the_official_modules(variant, expected):
    net = SAFNet(variant)
    assert sum(p.numel() for p in net.parameters()) == expected


@pytest.mark.parametrize("variant,folder", [("s", "safnet_s"), ("full", "safnet")])
def test_state_dict_names_and_shapes_are_the_official_ones_in_order(shared, variant, folder):
    expected = state_dict_shapes(shared / "reference" / folder / "state_dict_shapes.json")
    got = [(k, tuple(v.shape)) for k, v in SAFNet(variant).state_dict().items()]
    assert got == expected


def test_channel_shuffle_moves_channel_40g_plus_i_to_3i_plus_g():
    x = torch.arange(120.0).view(1, 120, 1, 1).expand(2, 120, 2, 3)
    shuffled = channel_shuffle(x, 3)
    for g in range(3):
        for i in range(40):
            assert torch.equal(shuffled[:, 3 * i + g], x[:, 40 * g + i])


def test_merge_with_masks_one_equals_the_classic_triangle_merge():
    torch.manual_seed(0)
    ldr = torch.rand(2, 3, 3, 9, 11, dtype=torch.float64)
    t = torch.tensor([[1.0, 4.0, 16.0], [1.0, 8.0, 64.0]], dtype=torch.float64)
    linear = ldr**2.2 / t[:, :, None, None, None]
    imgs = torch.cat([linear, ldr], dim=2)
    ones = torch.ones(2, 1, 9, 11, dtype=torch.float64)
    got = merge_hdr(imgs[:, 0], imgs[:, 1], imgs[:, 2], ones, ones)
    expected = ClassicMerge()(ldr, t, torch.tensor([1, 1]))
    # The classic merge divides by (sum of weights + 1e-9) = 1 + 1e-9; SAFNet's merge uses
    # that the weights sum to exactly 1.
    torch.testing.assert_close(got, expected, rtol=2e-9, atol=1e-15)


def test_merge_with_masks_zero_returns_the_reference_linear_frame():
    imgs = torch.rand(3, 1, 6, 5, 7, dtype=torch.float64)
    zeros = torch.zeros(1, 1, 5, 7, dtype=torch.float64)
    got = merge_hdr(imgs[0], imgs[1], imgs[2], zeros, zeros)
    # Only the 1e-9 guard of the denominator separates them.
    torch.testing.assert_close(got, imgs[1][:, :3], rtol=2e-9, atol=0)


@pytest.mark.parametrize("variant", ["s", "full"])
@pytest.mark.parametrize("size", [(37, 53), (16, 16), (1, 5)])
def test_any_input_size_runs_and_keeps_the_shape(variant, size):
    net = SAFNet(variant).eval()
    ldr = torch.rand(2, 3, 3, *size)
    with torch.no_grad():
        out = net(ldr, torch.tensor([[1.0, 4.0, 16.0]] * 2), torch.tensor([1, 1]))
    assert out.hdr.shape == (2, 3, *size)
    assert out.aux["flow0"].shape == out.aux["flow2"].shape == (2, 2, *size)
    assert out.aux["mask0"].shape == (2, 1, *size)
    assert torch.isfinite(out.hdr).all()
    assert out.hdr.min() >= 0 and out.hdr.max() <= 1
    assert ((out.aux["mask0"] > 0) & (out.aux["mask0"] < 1)).all()


def test_merge_matches_the_normalised_weight_formula_for_any_masks():
    torch.manual_seed(1)
    imgs = torch.rand(3, 2, 6, 5, 7, dtype=torch.float64)
    mask0, mask2 = torch.rand(2, 2, 1, 5, 7, dtype=torch.float64)
    x = imgs[1][:, 3:6]
    hi, lo, mid = (2 * x - 1).clamp(min=0), (1 - 2 * x).clamp(min=0), 1 - (2 * x - 1).abs()
    w0, w2 = hi * mask0, lo * mask2
    w1 = mid + hi * (1 - mask0) + lo * (1 - mask2)
    expected = (w0 * imgs[0][:, :3] + w1 * imgs[1][:, :3] + w2 * imgs[2][:, :3]) / (
        w0 + w1 + w2 + 1e-9
    )
    got = merge_hdr(imgs[0], imgs[1], imgs[2], mask0, mask2)
    torch.testing.assert_close(got, expected, rtol=2e-9, atol=1e-15)


@pytest.mark.parametrize("variant", ["s", "full"])
@pytest.mark.parametrize("block_bytes", [1, 20_000])
def test_cpu_row_block_inference_equals_the_autograd_path(monkeypatch, variant, block_bytes):
    # Tiny blocks (one row; a few rows) exercise the halo and border handling of _conv_rows.
    monkeypatch.setattr(safnet_module, "_BLOCK_BYTES", block_bytes)
    torch.manual_seed(2)
    net = SAFNet(variant).eval()
    for p in net.parameters():  # random non-trivial PReLU slopes, negative ones included
        if p.ndim == 1:
            p.data.uniform_(-0.5, 1.5)
    ldr = torch.rand(2, 3, 3, 29, 35)
    t = torch.tensor([[1.0, 4.0, 16.0]] * 2)
    with torch.no_grad():
        rows = net(ldr, t, torch.tensor([1, 1]))
    plain = net(ldr, t, torch.tensor([1, 1]))  # grad enabled: the plain layer-by-layer path
    assert plain.hdr.requires_grad
    torch.testing.assert_close(rows.hdr, plain.hdr.detach(), rtol=0, atol=1e-5)
    # Something must differ from the merge, or the refine nets would not be tested.
    assert (rows.hdr - rows.aux["hdr_m"]).abs().max() > 1e-3


def test_refine_false_returns_the_explicit_merge():
    net = SAFNet("s").eval()
    ldr = torch.rand(1, 3, 3, 20, 24)
    t = torch.tensor([[1.0, 4.0, 16.0]])
    with torch.no_grad():
        merged = net(ldr, t, torch.tensor([1]), refine=False)
        refined = net(ldr, t, torch.tensor([1]))
    torch.testing.assert_close(merged.hdr, merged.aux["hdr_m"], rtol=0, atol=0)
    torch.testing.assert_close(refined.aux["hdr_m"], merged.hdr, rtol=0, atol=0)


def test_frames_are_sorted_by_exposure_and_reference_reindexed():
    net = SAFNet("s").eval()
    ldr = torch.rand(1, 3, 3, 24, 20)
    t = torch.tensor([[1.0, 4.0, 16.0]])
    order = [2, 0, 1]  # long, short, reference
    with torch.no_grad():
        sorted_out = net(ldr, t, torch.tensor([1]))
        shuffled_out = net(ldr[:, order], t[:, order], torch.tensor([2]))
    torch.testing.assert_close(shuffled_out.hdr, sorted_out.hdr, rtol=0, atol=0)


def test_inputs_are_linear_first_then_ldr_and_exposures_are_normalised():
    net = SAFNet("s")
    ldr = torch.rand(1, 3, 3, 4, 5)
    img0, img1, img2 = net.encode_inputs(ldr, torch.tensor([[2.0, 8.0, 32.0]]), 1)
    for k, (img, t) in enumerate(zip((img0, img1, img2), (1.0, 4.0, 16.0))):
        torch.testing.assert_close(img[:, 3:], ldr[:, k], rtol=0, atol=0)
        torch.testing.assert_close(img[:, :3], ldr[:, k] ** 2.2 / t, rtol=1e-6, atol=0)


def test_wrong_frame_count_or_reference_raise_clear_errors():
    net = SAFNet("s")
    t3 = torch.tensor([[1.0, 4.0, 16.0]])
    with pytest.raises(InputSizeError, match="exactly 3 frames"):
        net(torch.rand(1, 2, 3, 8, 8), torch.tensor([[1.0, 4.0]]), torch.tensor([0]))
    with pytest.raises(HDRZooError, match="middle exposure"):
        net(torch.rand(1, 3, 3, 8, 8), t3, torch.tensor([0]))
    with pytest.raises(HDRZooError, match="middle exposure"):
        # Reference given in the middle position but it is the longest exposure.
        net(torch.rand(1, 3, 3, 8, 8), torch.tensor([[1.0, 16.0, 4.0]]), torch.tensor([1]))
    with pytest.raises(BracketError, match="positive"):
        net(torch.rand(1, 3, 3, 8, 8), torch.tensor([[0.0, 4.0, 16.0]]), torch.tensor([1]))
    with pytest.raises(BracketError, match="ref"):
        net(torch.rand(1, 3, 3, 8, 8), t3, torch.tensor([3]))
    with pytest.raises(InputSizeError, match=r"\(B, 3, 3, H, W\)"):
        net(torch.rand(3, 3, 8, 8), t3, torch.tensor([1]))
    with pytest.raises(ModelError, match="variant"):
        SAFNet("xl")


# ------------------------------------------------------------------- weights ----------
def test_official_checkpoint_wrappers_and_module_prefix_are_accepted(safnet_s_fixture, tmp_path):
    raw = torch.load(
        safnet_s_fixture / "SAFNet_S_siggraph17.pth", map_location="cpu", weights_only=True
    )
    wrapped = {"state_dict": {f"module.{k}": v for k, v in raw.items()}, "epoch": 3}
    path = tmp_path / "wrapped.pth"
    torch.save(wrapped, path)
    net = load_official_weights(SAFNet("s"), path)
    for name, value in net.state_dict().items():
        assert torch.equal(value, raw[name])
    assert convert_official_state_dict(raw).keys() == raw.keys()


def test_loading_the_wrong_variant_names_the_file_and_the_keys(safnet_s_fixture):
    path = safnet_s_fixture / "SAFNet_S_siggraph17.pth"
    with pytest.raises(WeightsError) as info:
        load_official_weights(SAFNet("full"), path)
    message = str(info.value)
    assert str(path) in message
    assert "refinenet.resblock1.conv1.0.weight" in message  # missing
    assert "refinenet.conv7.weight" in message  # unexpected


def test_unreadable_or_missing_weights_raise_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_official_weights(SAFNet("s"), tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pth"):
        load_official_weights(SAFNet("s"), garbage)
    with pytest.raises(WeightsError, match="not a tensor"):
        convert_official_state_dict({"encoder.x": 3}, source="f.pth")


# -------------------------------------------------------------------- parity ----------
def test_official_inputs_are_rebuilt_bit_exactly(safnet_s_fixture):
    meta = json.loads((safnet_s_fixture / "expected" / "metrics.json").read_text())
    fingerprint = meta["_meta"]["lin_pow_table"]["sha256"]
    table = lin_pow_table()
    if hashlib.sha256(table.tobytes()).hexdigest() == fingerprint:
        for scene in SCENES:
            assert input_hashes(safnet_s_fixture / "scenes" / scene) == meta[scene]["inputs_sha256"]
        return
    # numpy's AVX-512 float32 power differs by 1 ulp in some codes; rebuild the inputs in a
    # process with those kernels disabled, where numpy must reproduce the official table.
    code = (
        "import importlib.util, json, sys, hashlib\n"
        "spec = importlib.util.spec_from_file_location('t', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "from pathlib import Path\n"
        "root = Path(sys.argv[2])\n"
        "print(json.dumps({'table': hashlib.sha256(m.lin_pow_table().tobytes()).hexdigest(),"
        " 'hashes': {s: m.input_hashes(root / 'scenes' / s) for s in m.SCENES}}))\n"
    )
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX2_FEATURES_OFF}
    run = subprocess.run(
        [sys.executable, "-c", code, __file__, str(safnet_s_fixture)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if result["table"] == fingerprint:
        for scene in SCENES:
            assert result["hashes"][scene] == meta[scene]["inputs_sha256"]
        return
    # Neither kernel reproduces the official table here: check ours is a faithful float32
    # power (within 1 ulp of the correctly rounded value) and skip only the hash check.
    exact = ((np.arange(65536) / 2**16) ** np.float64(np.float32(2.2))).astype(np.float32)
    ulps = np.abs(table.view(np.int32).astype(np.int64) - exact.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1
    pytest.skip(
        "numpy's float32 power on this CPU does not reproduce the official lin table even with "
        f"NPY_DISABLE_CPU_FEATURES={NUMPY_AVX2_FEATURES_OFF!r}; input hashes not comparable"
    )


@pytest.mark.parametrize("scene", SCENES)
def test_safnet_s_matches_official_outputs(safnet_s_fixture, safnet_s_official, scene):
    expected = dict(np.load(safnet_s_fixture / "expected" / f"{scene}.npz"))
    inputs = official_input_tensors(safnet_s_fixture / "scenes" / scene)
    with torch.no_grad():
        out = safnet_s_official.forward_images(*inputs)
    assert_outputs_close(out, expected, f"{scene} (official inputs)")
    gt = read_hdr(safnet_s_fixture / "scenes" / scene / "HDRImg.hdr").numpy()
    meta = json.loads((safnet_s_fixture / "expected" / "metrics.json").read_text())[scene]
    assert psnr_mu_float64(out.hdr[0].numpy(), gt) == pytest.approx(
        meta["safnet_s"]["psnr_mu"], abs=0.01
    )
    assert psnr_mu_float64(out.aux["hdr_m"][0].numpy(), gt) == pytest.approx(
        meta["safnet_s_hdr_m"]["psnr_mu"], abs=0.01
    )


@pytest.mark.parametrize("scene", SCENES)
def test_safnet_s_contract_forward_matches_official_outputs(
    safnet_s_fixture, safnet_s_official, scene
):
    scene_dir = safnet_s_fixture / "scenes" / scene
    # The raw data contract: u16 / 65536 frames, contiguous NCHW, EVs -> relative times,
    # frames deliberately out of exposure order; the network builds its own inputs.
    ldr = np.stack([tifffile.imread(p) / 2**16 for p in sorted(scene_dir.glob("*.tif"))]).astype(
        np.float32
    )
    ldr = torch.from_numpy(np.ascontiguousarray(ldr.transpose(0, 3, 1, 2)))
    evs = torch.from_numpy(np.loadtxt(scene_dir / "exposure.txt")).float()
    exposures = 2.0 ** (evs - evs.min())
    order = [1, 2, 0]
    with torch.no_grad():
        out = safnet_s_official(
            ldr[order].unsqueeze(0), exposures[order].unsqueeze(0), torch.tensor([0])
        )
    expected = dict(np.load(safnet_s_fixture / "expected" / f"{scene}.npz"))
    assert_outputs_close(out, expected, f"{scene} (contract forward)")


def test_full_safnet_random_weights_match_official_outputs(shared, safnet_s_fixture):
    folder = shared / "reference" / "safnet"
    net = SAFNet.from_official(folder / "SAFNet_random_seed0.pth").eval()
    assert net.variant == "full"
    inputs = official_input_tensors(safnet_s_fixture / "scenes" / "courtyard")
    with torch.no_grad():
        out = net.forward_images(*inputs)
    assert_outputs_close(out, dict(np.load(folder / "courtyard.npz")), "full SAFNet courtyard")
