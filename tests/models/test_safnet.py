"""SAFNet / SAFNet-S: architecture, input contract, official-checkpoint loading and parity
with the official outputs stored in ``../shared/reference/safnet_s`` and ``.../safnet``."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import hdrzoo
from hdrzoo.errors import BracketError, HDRZooError, InputSizeError, ModelError, WeightsError
from hdrzoo.io import read_hdr
from hdrzoo.models.base import NetOutput
from hdrzoo.models.classic import ClassicMerge
from hdrzoo.models.safnet import SAFNet, channel_shuffle, convert_official_state_dict, merge_hdr
from hdrzoo.ops import rowconv

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
    return load_official("safnet_s", safnet_s_fixture / "SAFNet_S_siggraph17.pth")


def load_official(name: str, path: Path) -> SAFNet:
    """The network of ``hdrzoo.load(name, weights=path)`` (an official ``.pth``), in eval mode."""
    return hdrzoo.load(name, weights=path, perceptual_weight=0.0).net.eval()


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


@pytest.mark.parametrize(
    "variant,size", [("s", (37, 53)), ("s", (16, 16)), ("s", (1, 5)), ("full", (37, 53))]
)
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
    # Tiny blocks (one row; a few rows) exercise the halo and border handling of the row blocks.
    monkeypatch.setattr(rowconv, "BLOCK_BYTES", block_bytes)
    torch.manual_seed(2)
    net = SAFNet(variant).eval()
    # PyTorch's default init for the zero-initialised heads: the refine net's layers must
    # reach the output for the row blocks to be tested.
    refine_head = net.refinenet.conv7 if variant == "s" else net.refinenet.conv3
    for head in (net.decoder.conv6, refine_head):
        head.reset_parameters()
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
    net = load_official("safnet_s", path)
    for name, value in net.state_dict().items():
        assert torch.equal(value, raw[name])
    assert convert_official_state_dict(raw).keys() == raw.keys()
    assert convert_official_state_dict({"model": wrapped["state_dict"]}).keys() == raw.keys()


def test_loading_the_wrong_variant_names_the_file_and_the_keys(safnet_s_fixture):
    path = safnet_s_fixture / "SAFNet_S_siggraph17.pth"
    full_keys, s_keys = SAFNet("full").state_dict().keys(), SAFNet("s").state_dict().keys()
    with pytest.raises(WeightsError) as info:
        load_official("safnet", path)
    message = str(info.value)
    assert str(path) in message
    assert f"missing {len(full_keys - s_keys)}" in message
    assert sorted(full_keys - s_keys)[0] in message
    assert f"unexpected {len(s_keys - full_keys)}" in message
    assert sorted(s_keys - full_keys)[0] in message
    assert "variant" in message


def test_unreadable_or_missing_weights_raise_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_official("safnet_s", tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pth"):
        load_official("safnet_s", garbage)
    with pytest.raises(WeightsError, match="not a tensor"):
        convert_official_state_dict({"encoder.x": 3}, source="f.pth")
    with pytest.raises(WeightsError, match="expected a SAFNet state_dict"):
        convert_official_state_dict([1, 2], source="f.pth")


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
    # The child runs this file's numpy-only helpers (not the module: no torch import).
    helpers = "\n\n".join(
        inspect.getsource(f) for f in (official_input_arrays, input_hashes, lin_pow_table)
    )
    code = (
        "import hashlib, json, sys\nfrom pathlib import Path\nimport numpy as np, tifffile\n"
        f"{helpers}\n"
        "root = Path(sys.argv[1])\n"
        "print(json.dumps({'table': hashlib.sha256(lin_pow_table().tobytes()).hexdigest(),"
        f" 'hashes': {{s: input_hashes(root / 'scenes' / s) for s in {SCENES!r}}}}}))\n"
    )
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX2_FEATURES_OFF}
    run = subprocess.run(
        [sys.executable, "-c", code, str(safnet_s_fixture)],
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
    net = load_official("safnet", folder / "SAFNet_random_seed0.pth")
    assert net.variant == "full"
    inputs = official_input_tensors(safnet_s_fixture / "scenes" / "courtyard")
    with torch.no_grad():
        out = net.forward_images(*inputs)
    assert_outputs_close(out, dict(np.load(folder / "courtyard.npz")), "full SAFNet courtyard")


# ---------------------------------------------------------- LightningModule -----------
def static_batch(batch: int = 2, size: int = 64, seed: int = 0) -> dict:
    """Brackets of a static scene with known linear ground truth (t = 1, 4, 16)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, size // 8, size // 8, generator=g)
    radiance = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear") * 0.3
    t = torch.tensor([1.0, 4.0, 16.0])
    ldr = (radiance[:, None] * t[None, :, None, None, None]).clamp(0, 1) ** (1 / 2.2)
    return {
        "ldr": ldr,
        "exposures": t.expand(batch, 3).clone(),
        "ref": torch.ones(batch, dtype=torch.long),
        "gt": radiance,
    }


def test_registry_entries_weight_tags_and_licence():
    import hdrzoo
    from hdrzoo.hub import model_name_of
    from hdrzoo.models.registry import get_entry

    assert {"safnet", "safnet_s"} <= set(hdrzoo.list_models())
    small, full = get_entry("safnet_s"), get_entry("safnet")
    assert small.kwargs == {"variant": "s"} and full.kwargs == {"variant": "full"}
    assert list(small.weights) == ["kalantari17"] and full.weights == {}
    tag = small.default_tag
    assert "academic research only" in tag.licence and "no commercial use" in tag.licence
    assert tag.conventions["divisor"] == 65536
    assert model_name_of(hdrzoo.load("safnet_s")) == "safnet_s"
    assert model_name_of(hdrzoo.load("safnet")) == "safnet"
    with pytest.raises(WeightsError, match="not on the Hugging Face Hub.*SAFNet_S_siggraph17"):
        hdrzoo.load("safnet_s.kalantari17")


def test_load_official_pth_and_merge_a_scene_from_disk_matches_official(safnet_s_fixture):
    import hdrzoo

    model = hdrzoo.load("safnet_s", weights=str(safnet_s_fixture / "SAFNet_S_siggraph17.pth"))
    assert model.conventions["divisor"] == 65536
    bracket = hdrzoo.read_bracket(safnet_s_fixture / "scenes" / "forest", divisor=65536)
    hdr = model.merge(bracket)
    expected = np.load(safnet_s_fixture / "expected" / "forest.npz")["hdr_r"]
    assert float(np.abs(hdr.numpy() - expected).max()) <= TOLERANCE["hdr_r"]


def test_window_partition_cropping_refines_each_window_on_its_own():
    from hdrzoo.models.safnet import SAFNetModule

    module = SAFNetModule(window_size=32, perceptual_weight=0.0)
    batch = static_batch(batch=1, size=64)
    out = module.training_forward(batch)
    net = module.net
    imgs = net.encode_inputs(batch["ldr"], batch["exposures"], batch["ref"])
    stage1 = net.forward_merge(*imgs)
    inputs = net.refine_inputs(*imgs, stage1)
    for i in range(2):
        for j in range(2):
            rows, cols = slice(32 * i, 32 * i + 32), slice(32 * j, 32 * j + 32)
            window = net.refinenet(*(t[:, :, rows, cols] for t in inputs))
            torch.testing.assert_close(out.hdr[:, :, rows, cols], window, rtol=0, atol=1e-6)
            torch.testing.assert_close(
                out.aux["hdr_r_windows"][2 * i + j], window[0], rtol=0, atol=1e-6
            )
    # window_size=None refines whole crops: the same as the inference forward.
    whole = SAFNetModule(window_size=None, perceptual_weight=0.0)
    whole.net.load_state_dict(net.state_dict())
    full_out = whole.training_forward(batch)
    torch.testing.assert_close(
        full_out.hdr, net(batch["ldr"], batch["exposures"], batch["ref"]).hdr
    )
    torch.testing.assert_close(full_out.aux["hdr_m"], out.aux["hdr_m"], rtol=0, atol=0)


def test_training_loss_is_the_paper_combination_of_its_terms():
    from hdrzoo.losses import VGGPerceptual
    from hdrzoo.models.safnet import SAFNetModule
    from hdrzoo.ops.windows import window_partition

    torch.manual_seed(0)
    module = SAFNetModule(window_size=32)
    module.perceptual = VGGPerceptual(pretrained=False)  # no download in tests
    batch = static_batch(batch=1, size=64)
    out = module.training_forward(batch)
    loss, terms = module.compute_loss(out, batch)
    loss, terms = loss.detach(), {k: v.detach() for k, v in terms.items()}

    def t(x):
        x = np.maximum(x.detach().double().numpy(), 0)
        return np.log1p(5000 * x) / np.log1p(5000)

    gt = batch["gt"]
    assert float(terms["mulaw_r"]) == pytest.approx(np.mean(np.abs(t(out.hdr) - t(gt))), abs=1e-6)
    assert float(terms["mulaw_m"]) == pytest.approx(
        np.mean(np.abs(t(out.aux["hdr_m"]) - t(gt))), abs=1e-6
    )
    tm = lambda x: torch.from_numpy(t(x)).float()  # noqa: E731
    with torch.no_grad():
        vgg = module.perceptual(window_partition(tm(out.hdr), 32), window_partition(tm(gt), 32))
        census = module.census(tm(out.aux["hdr_m"]), tm(gt))
    assert float(terms["vgg_r"]) == pytest.approx(float(vgg), rel=1e-4)
    assert float(terms["census_m"]) == pytest.approx(float(census), rel=1e-4)
    expected = (
        terms["mulaw_r"] + 0.01 * terms["vgg_r"] + 0.1 * (terms["mulaw_m"] + terms["census_m"])
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(terms["vgg_r"]) > 0 and float(terms["census_m"]) > 0


def test_fit_steps_on_a_tiny_batch_reduce_the_loss():
    import lightning as L
    from torch.utils.data import DataLoader

    from hdrzoo.models.safnet import SAFNetModule

    torch.manual_seed(0)
    module = SAFNetModule(
        window_size=32,
        perceptual_weight=0.0,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    )
    # Brackets with motion and saturation: a static scene would leave nothing to learn, as
    # the untrained net's explicit merge (zero refine head) already reproduces it.
    from hdrzoo.data.synthetic import synthesize

    samples = [synthesize(seed, size=64).sample() for seed in (1, 2)]
    samples = [{k: v for k, v in sample.items() if k != "name"} for sample in samples]
    batch = {k: torch.stack([sample[k] for sample in samples]) for k in samples[0]}
    with torch.no_grad():
        before, _ = module.compute_loss(module.training_forward(batch), batch)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=10,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(samples, batch_size=2))
    with torch.no_grad():
        after, _ = module.compute_loss(module.training_forward(batch), batch)
    assert float(after) < 0.8 * float(before), (float(before), float(after))


def test_init_weights_load_once_when_a_trainer_sets_up(safnet_s_fixture, tmp_path):
    from safetensors.torch import save_file

    import hdrzoo
    from hdrzoo.models.safnet import SAFNetModule

    path = safnet_s_fixture / "SAFNet_S_siggraph17.pth"
    official = torch.load(path, map_location="cpu", weights_only=True)
    module = SAFNetModule(init_weights=str(path), perceptual_weight=0.0)
    assert not torch.equal(
        module.net.state_dict()["decoder.conv1.0.weight"], official["decoder.conv1.0.weight"]
    )
    module.setup("fit")
    for name, value in module.net.state_dict().items():
        assert torch.equal(value, official[name])
    # Only once: a later stage (fit then test) must not reset the trained weights.
    with torch.no_grad():
        module.net.decoder.conv1[0].weight.add_(1.0)
    module.setup("test")
    assert not torch.equal(module.net.decoder.conv1[0].weight, official["decoder.conv1.0.weight"])

    wrong = SAFNetModule(variant="full", init_weights=str(path), perceptual_weight=0.0)
    with pytest.raises(WeightsError, match="SAFNet_S_siggraph17.pth"):
        wrong.setup("fit")

    exported = tmp_path / "net.safetensors"
    save_file(module.net.state_dict(), str(exported))
    again = SAFNetModule(init_weights=str(exported), perceptual_weight=0.0)
    again.setup("validate")
    assert torch.equal(again.net.decoder.conv1[0].weight, module.net.decoder.conv1[0].weight)

    # Weights loaded by another route (hdrzoo.load, checkpoint restore) win over init_weights.
    reloaded = hdrzoo.load("safnet_s", weights=str(exported), init_weights=str(path))
    reloaded.setup("test")
    assert torch.equal(reloaded.net.decoder.conv1[0].weight, module.net.decoder.conv1[0].weight)


def test_module_rejects_bad_crops_and_arguments():
    from hdrzoo.models.safnet import SAFNetModule

    with pytest.raises(InputSizeError, match="multiples of window_size=32"):
        SAFNetModule(window_size=32, perceptual_weight=0.0).training_forward(
            static_batch(batch=1, size=48)
        )
    with pytest.raises(ModelError, match="merge_weight"):
        SAFNetModule(merge_weight=-1.0)
    with pytest.raises(ModelError, match="window_size"):
        SAFNetModule(window_size=0)


REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(
    str(p.relative_to(REPO))
    for pattern in ("configs/safnet/*.yaml", "configs/safnet_s/*.yaml")
    for p in REPO.glob(pattern)
)


@pytest.mark.parametrize("config", CONFIGS)
def test_configs_resolve_to_the_module_and_variant(config, capsys):
    from hdrzoo.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / config), "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "hdrzoo.models.safnet.SAFNetModule" in out
    variant = "s" if "safnet_s/" in config else "full"
    assert f"variant: {variant}" in out and "window_size: 128" in out
    # The paper's window partition: training crops are multiples of the window.
    crop = int(out.split("crop_size: ")[1].split()[0])
    assert crop % 128 == 0


@pytest.mark.slow
def test_cli_fit_from_the_synthetic_config_then_load_the_checkpoint(tmp_path, monkeypatch):
    import hdrzoo
    from hdrzoo.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(REPO / "configs/safnet_s/synthetic.yaml")]
    args += ["--model.init_args.perceptual_weight", "0", "--model.init_args.window_size", "32"]
    args += ["--data.init_args.crop_size", "64", "--data.init_args.eval_size", "64"]
    args += ["--data.init_args.train_size", "2", "--data.init_args.val_size", "1"]
    args += ["--data.init_args.batch_size", "2", "--data.init_args.eval_batch_size", "1"]
    args += ["--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    assert main(args) == 0
    checkpoints = list(tmp_path.rglob("last.ckpt"))
    assert checkpoints
    model = hdrzoo.load(str(checkpoints[0]))
    assert type(model).__name__ == "SAFNetModule" and model.net.variant == "s"
    assert model.window_size == 32


@pytest.mark.parametrize(("scene", "psnr_mu"), [("courtyard", 33.2079), ("forest", 37.3750)])
def test_hdrzoo_merge_cli_prints_the_official_psnr_on_the_fixture_scenes(
    safnet_s_fixture, tmp_path, capsys, scene, psnr_mu
):
    from hdrzoo.cli import main

    weights = safnet_s_fixture / "SAFNet_S_siggraph17.pth"
    args = ["merge", str(safnet_s_fixture / "scenes" / scene), "--model", "safnet_s"]
    # No --divisor: SAFNet's conventions default it to the official 65536.
    assert main([*args, "--weights", str(weights), "-o", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if scene in line)
    printed = float(row.split("│")[3])  # columns: scene, status, PSNR-mu, PSNR-L, output
    assert printed == pytest.approx(psnr_mu, abs=0.01)


@pytest.mark.parametrize("variant", ["s", "full"])
def test_untrained_network_starts_from_zero_flows_and_half_masks(variant):
    # The zero-initialised flow/mask head (docs/models/safnet.md, "Initialisation"): an
    # untrained SAFNet aligns nothing and weighs every frame as the plain triangle merge / 2.
    torch.manual_seed(0)
    net = SAFNet(variant).eval()
    ldr = torch.rand(1, 3, 3, 40, 56)
    with torch.no_grad():
        out = net(ldr, torch.tensor([[1.0, 4.0, 16.0]]), torch.tensor([1]))
    assert torch.equal(out.aux["flow0"], torch.zeros_like(out.aux["flow0"]))
    assert torch.equal(out.aux["flow2"], torch.zeros_like(out.aux["flow2"]))
    assert torch.equal(out.aux["mask0"], torch.full_like(out.aux["mask0"], 0.5))
    assert torch.equal(out.aux["mask2"], torch.full_like(out.aux["mask2"], 0.5))
    # ... and the zero-initialised residual head of the refine net returns H_m itself.
    assert torch.equal(out.hdr, out.aux["hdr_m"].clamp(0.0, 1.0))
