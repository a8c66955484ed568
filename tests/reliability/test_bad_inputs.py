"""Bad inputs, end to end: through ``read_bracket`` + ``merge`` and through ``hdrzoo merge``.

Every case ends in an :class:`~hdrzoo.errors.HDRZooError` whose message names the input
and says what to do (or in a documented warning), never in an exception from inside torch,
and never leaves a partial or temporary file in the output folder. The readers' errors in
isolation are covered by ``tests/test_io.py``; here each damaged scene goes through the
whole pipeline beside a good one, which must still be written, complete and correct.

The bugs these tests found are fixed. Each was first pinned by an ``xfail(strict=True)``
test, whose marker the fix removed; they are grouped at the end of this file and listed in
``docs/reliability.md`` ("Bugs found by these tests, now fixed"), and now guard against
the bug coming back.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
import tifffile
import torch
from _rel_helpers import (
    hidden_or_temporary,
    listing,
    make_bracket,
    run_cli,
    squash,
    static_scene,
)
from _tiny_model import TinyModule, TinyNet, use_tiny_registry
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import hdrzoo
import hdrzoo.hub
from hdrzoo.bracket import Bracket
from hdrzoo.errors import BracketError, HDRZooError, InputSizeError, ReadError, WriteError
from hdrzoo.io import read_bracket, read_hdr, write_bracket, write_hdr
from hdrzoo.models.registry import register_model

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# --------------------------------------------------------------------------------------------
# Test models with the constraints real networks declare
# --------------------------------------------------------------------------------------------


def saved_weights(name: str, folder: Path) -> Path:
    """A test model's (untrained) network saved as safetensors: `hdrzoo merge` wants to be
    told where a learned model's weights come from."""
    from safetensors.torch import save_file

    path = folder / f"{name}.safetensors"
    save_file(hdrzoo.hub.create_model(name).net.state_dict(), str(path))
    return path


class ThreeFrameNet(TinyNet):
    """TinyNet that, like SAFNet, takes exactly three frames."""

    frames = 3

    def forward(self, ldr, exposures, ref):
        assert ldr.shape[1] == 3, "merge() must refuse other frame counts before the network"
        return super().forward(ldr, exposures, ref)


class ThreeFrameModule(TinyModule):
    """Tiny three-frame test network."""

    def __init__(self, channels: int = 4, optimizer=None, lr_scheduler=None) -> None:
        super().__init__(channels, optimizer, lr_scheduler)
        self.net = ThreeFrameNet(channels)


class Multiple16Net(TinyNet):
    """TinyNet that only accepts sizes that are multiples of 16 (like window attention)."""

    size_multiple = 16

    def forward(self, ldr, exposures, ref):
        assert ldr.shape[-2] % 16 == 0 and ldr.shape[-1] % 16 == 0, "merge() must pad first"
        return super().forward(ldr, exposures, ref)


class Multiple16Module(TinyModule):
    """Tiny test network with size multiple 16."""

    def __init__(self, channels: int = 4, optimizer=None, lr_scheduler=None) -> None:
        super().__init__(channels, optimizer, lr_scheduler)
        self.net = Multiple16Net(channels)


class NanNet(TinyNet):
    """A diverged network: every output pixel is NaN."""

    def forward(self, ldr, exposures, ref):
        return super().forward(ldr, exposures, ref) * float("nan")


class NanModule(TinyModule):
    """Tiny test network returning NaN."""

    def __init__(self, channels: int = 4, optimizer=None, lr_scheduler=None) -> None:
        super().__init__(channels, optimizer, lr_scheduler)
        self.net = NanNet(channels)


class GreedyNet(TinyNet):
    """Needs 40 TB of activations: the CPU allocator refuses at once (no memory is touched)."""

    def forward(self, ldr, exposures, ref):
        workspace = torch.empty(10**13, dtype=torch.float32)
        return super().forward(ldr, exposures, ref) + workspace[0] * 0


class GreedyModule(TinyModule):
    """Tiny test network that runs out of memory."""

    def __init__(self, channels: int = 4, optimizer=None, lr_scheduler=None) -> None:
        super().__init__(channels, optimizer, lr_scheduler)
        self.net = GreedyNet(channels)


@pytest.fixture
def models(monkeypatch):
    """``tiny3``, ``tiny16``, ``tinynan`` and ``tinyoom`` in a throw-away copy of the registry."""
    use_tiny_registry(monkeypatch)
    register_model("tiny3")(ThreeFrameModule)
    register_model("tiny16")(Multiple16Module)
    register_model("tinynan")(NanModule)
    register_model("tinyoom")(GreedyModule)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    # Rich reads the width from COLUMNS; a wide console keeps paths on one line.
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture(scope="module")
def classic():
    return hdrzoo.load("classic")


# --------------------------------------------------------------------------------------------
# Damaged scenes: each function damages a good Kalantari-layout scene and returns the file the
# error must name, the error class and a pattern of the advice it must give.
# --------------------------------------------------------------------------------------------

Damage = Callable[[Path], tuple[Path, type[HDRZooError], str]]


def truncated_tiff(scene: Path):
    frame = scene / "ldr_1.tif"
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    return frame, ReadError, "truncated or corrupt.*re-export"


def garbage_tiff(scene: Path):
    frame = scene / "ldr_0.tif"
    frame.write_bytes(b"II*\x00" + np.random.default_rng(0).bytes(300))
    return frame, ReadError, "not a readable TIFF.*re-export"


def float32_tiff(scene: Path):
    frame = scene / "ldr_2.tif"
    tifffile.imwrite(frame, np.full((6, 8, 3), 0.5, np.float32), photometric="rgb")
    return frame, ReadError, "8- or 16-bit.*re-export"


def uint32_tiff(scene: Path):
    frame = scene / "ldr_2.tif"
    tifffile.imwrite(frame, np.full((6, 8, 3), 7, np.uint32), photometric="rgb")
    return frame, ReadError, "8- or 16-bit"


def grey_alpha_tiff(scene: Path):
    frame = scene / "ldr_1.tif"
    tifffile.imwrite(
        frame, np.zeros((6, 8, 2), np.uint16), photometric="minisblack", planarconfig="contig"
    )
    return frame, ReadError, "grey image with alpha.*convert it to RGB"


def rgba_tiff(scene: Path):
    frame = scene / "ldr_1.tif"
    tifffile.imwrite(frame, np.zeros((6, 8, 4), np.uint16), photometric="rgb", extrasamples=[2])
    return frame, ReadError, "4 channels.*drop the alpha"


def five_channel_tiff(scene: Path):
    frame = scene / "ldr_1.tif"
    tifffile.imwrite(frame, np.zeros((6, 8, 5), np.uint16), photometric="rgb")
    return frame, ReadError, "expected an RGB image"


def smaller_frame(scene: Path):
    frame = scene / "ldr_2.tif"
    tifffile.imwrite(frame, np.zeros((5, 8, 3), np.uint16), photometric="rgb")
    return frame, ReadError, "same size"


def truncated_hdr_gt(scene: Path):
    gt = scene / "HDRImg.hdr"
    gt.write_bytes(gt.read_bytes()[: gt.stat().st_size * 2 // 3])
    return gt, ReadError, "truncated.*re-export or re-download"


def garbage_hdr_gt(scene: Path):
    gt = scene / "HDRImg.hdr"
    gt.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 6 +X 8\n" + b"\xff" * 10)
    return gt, ReadError, "truncated or corrupt"


def truncated_exr_gt(scene: Path):
    (scene / "HDRImg.hdr").unlink()
    gt = scene / "HDRImg.exr"
    write_hdr(gt, np.random.default_rng(0).random((3, 6, 8)).astype(np.float32))
    gt.write_bytes(gt.read_bytes()[: gt.stat().st_size // 2])
    return gt, ReadError, "not a readable OpenEXR file.*truncated"


def nan_exr_gt(scene: Path):
    (scene / "HDRImg.hdr").unlink()
    gt = scene / "HDRImg.exr"
    pixels = np.ones((6, 8, 3), np.float32)
    pixels[2, 3, 1] = np.nan
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": pixels}) as exr:
        exr.write(str(gt))
    return gt, ReadError, "NaN or Inf"


def wrong_size_gt(scene: Path):
    gt = scene / "HDRImg.hdr"
    write_hdr(gt, np.ones((3, 8, 6), np.float32))
    return gt, ReadError, "must match the frames"


def exposure_text(content: str | bytes, pattern: str) -> Damage:
    def damage(scene: Path):
        target = scene / "exposure.txt"
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        return target, ReadError, pattern

    damage.__name__ = f"exposure_{pattern.split()[0]}"
    return damage


def bad_sidecar(scene: Path):
    sidecar = scene / "hdrzoo.json"
    sidecar.write_text('{"divisor": ')
    return sidecar, ReadError, "not valid JSON.*fix or delete"


def sidecar_divisor_zero(scene: Path):
    sidecar = scene / "hdrzoo.json"
    sidecar.write_text(json.dumps({"divisor": 0}))
    return sidecar, BracketError, "divisor.*must be a number >= 1"


def sidecar_ref_out_of_range(scene: Path):
    (scene / "hdrzoo.json").write_text(json.dumps({"ref": 7}))
    return scene, BracketError, r"ref = 7 \(sidecar\).*give an index in 0\.\.2"


def missing_frame(scene: Path):
    (scene / "ldr_2.tif").unlink()
    return scene / "exposure.txt", ReadError, "3 exposure.*for 2 frames.*one EV per frame"


def missing_exposures(scene: Path):
    (scene / "exposure.txt").unlink()
    return scene, ReadError, "matches no bracket layout.*Arrange the files"


def single_frame(scene: Path):
    for name in ("ldr_1.tif", "ldr_2.tif"):
        (scene / name).unlink()
    (scene / "exposure.txt").write_text("0\n")
    return scene, ReadError, "matches no bracket layout.*kalantari17:"


def empty_folder(scene: Path):
    for path in scene.iterdir():
        path.unlink()
    return scene, ReadError, "no files.*Arrange the files"


DAMAGES: list[Damage] = [
    truncated_tiff,
    garbage_tiff,
    float32_tiff,
    uint32_tiff,
    grey_alpha_tiff,
    rgba_tiff,
    five_channel_tiff,
    smaller_frame,
    truncated_hdr_gt,
    garbage_hdr_gt,
    truncated_exr_gt,
    nan_exr_gt,
    wrong_size_gt,
    exposure_text("0\n0\n4\n", "duplicate exposures"),
    exposure_text("0\n2\n", "2 exposure.*one EV per frame"),
    exposure_text("0\nbright\n4\n", "line 2: 'bright' is not a number"),
    exposure_text("0\n-inf\n4\n", "finite"),
    exposure_text("0\n2000\n4000\n", "span too many stops"),
    exposure_text(b"\xff\xfe\x00garbage", "not a text file"),
    bad_sidecar,
    sidecar_divisor_zero,
    sidecar_ref_out_of_range,
    missing_frame,
    missing_exposures,
    single_frame,
    empty_folder,
]


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, Path]:
    """A good scene ``data/good`` and a second one ``data/bad`` for a case to damage."""
    good = write_bracket(tmp_path / "data" / "good", make_bracket(seed=1))
    bad = write_bracket(tmp_path / "data" / "bad", make_bracket(seed=2))
    return good, bad


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_damaged_scene_fails_alone_with_a_message_naming_the_file_and_the_fix(
    damage, dataset, tmp_path, capsys, classic
):
    good, bad = dataset
    named, error, advice = damage(bad)

    # Python API
    with pytest.raises(error) as info:
        classic.merge(read_bracket(bad))
    assert str(named) in str(info.value) and re.search(advice, str(info.value), re.S), info.value

    # CLI: the bad scene fails, the good one is written completely, nothing else appears.
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["merge", good, bad, "--out", out], capsys)
    assert code == 1
    assert f"bad: {squash(str(info.value))}" in stderr
    assert "1 of 2 scene(s) failed" in stderr
    assert listing(out) == ["good.exr"]
    expected = classic.merge(read_bracket(good))
    assert torch.equal(read_hdr(out / "good.exr"), expected)


def test_8_bit_frames_in_a_16_bit_layout_warn_and_still_merge(tmp_path, capsys, classic):
    # The documented warning of io.read_bracket: 8-bit quantisation, not an error.
    scene = tmp_path / "scene"
    write_bracket(scene, make_bracket(), bit_depth=8)
    with pytest.warns(UserWarning, match=re.escape(str(scene)) + ".*8-bit"):
        bracket = read_bracket(scene)
    assert bracket.meta["bit_depth"] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        code, _, _ = run_cli(["merge", scene, "--out", tmp_path / "out"], capsys)
    assert code == 0
    assert torch.equal(read_hdr(tmp_path / "out" / "scene.exr"), classic.merge(bracket))


def test_non_existent_scene_path(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "scene"
    code, _, stderr = run_cli(["merge", missing, "--out", tmp_path / "out"], capsys)
    assert code == 1
    assert re.search(re.escape(str(missing)) + " does not exist; pass a scene folder", stderr)
    assert listing(tmp_path / "out") == []


# --------------------------------------------------------------------------------------------
# Output folders that cannot be written
# --------------------------------------------------------------------------------------------


def test_output_folder_that_is_a_regular_file(tmp_path, capsys):
    scene = write_bracket(tmp_path / "scene", make_bracket())
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        code, _, stderr = run_cli(["merge", scene, "--out", out], capsys)
        assert code == 1
        assert f"hdrzoo merge: error: cannot create output folder {out}" in stderr
        assert blocker.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scene"]


def test_unwritable_output_folder(tmp_path, capsys, monkeypatch):
    # Running as root, chmod cannot make a folder read-only: make the temporary file that
    # every atomic write starts with fail as it would there.
    import hdrzoo.io.atomic as hio_atomic

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    scenes = [write_bracket(tmp_path / f"s{i}", make_bracket(seed=i)) for i in range(2)]
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(hio_atomic.tempfile, "mkstemp", denied)
    code, _, stderr = run_cli(["merge", *scenes, "--out", out, "--preview"], capsys)
    assert code == 1
    for scene in ("s0", "s1"):
        # The preview is written before the HDR (the HDR marks a scene done), so it fails first.
        message = (
            f"cannot write {out / scene}.png: Permission denied; choose a writable output folder"
        )
        assert message in stderr
    assert "2 of 2 scene(s) failed" in stderr
    assert listing(out) == []


# --------------------------------------------------------------------------------------------
# Frame counts, sizes and exposures
# --------------------------------------------------------------------------------------------


def test_seven_frames_merge_with_classic_and_recover_the_radiance(tmp_path, capsys, classic):
    # A static scene that no frame saturates: every linearised frame equals the radiance up
    # to 16-bit rounding, so any convex merge must return it, whatever its weights.
    rng = np.random.default_rng(0)
    radiance = np.exp(rng.uniform(np.log(5e-4), np.log(0.015), (3, 10, 12)))
    bracket = static_scene(radiance, [2.0**i for i in range(7)])
    scene = write_bracket(tmp_path / "seven", bracket)
    assert read_bracket(scene).num_frames == 7
    code, _, _ = run_cli(["merge", scene, "--out", tmp_path / "out"], capsys)
    assert code == 0
    merged = read_hdr(tmp_path / "out" / "seven.exr").numpy().astype(np.float64)
    assert np.abs(merged / radiance - 1).max() < 2e-3


def test_seven_frames_with_a_three_frame_model(tmp_path, capsys, models):
    bracket = make_bracket(n=7)
    scene = write_bracket(tmp_path / "seven", bracket)
    model = hdrzoo.load("tiny3")
    with pytest.raises(InputSizeError, match="takes exactly 3 frames, got 7.*classic"):
        model.merge(read_bracket(scene))
    with pytest.raises(InputSizeError, match="takes exactly 3 frames, got 2"):
        model.merge(bracket.ldr[:2], exposures=[1.0, 4.0])
    code, _, stderr = run_cli(
        [
            "merge",
            scene,
            "--model",
            "tiny3",
            "--weights",
            saved_weights("tiny3", tmp_path),
            "--out",
            tmp_path / "o",
        ],
        capsys,
    )
    assert code == 1
    assert "seven: ThreeFrameNet takes exactly 3 frames, got 7" in stderr
    assert listing(tmp_path / "o") == []


def test_one_frame_is_refused_by_every_model(models):
    frame = torch.rand(1, 3, 4, 4)
    for name in ("classic", "tiny_test", "tiny3"):
        with pytest.raises(InputSizeError, match="1 frame|exactly 3 frames, got 1"):
            hdrzoo.load(name).merge(frame, exposures=[1.0])


@pytest.mark.parametrize("name", hdrzoo.list_models())
def test_every_registered_model_takes_its_frame_counts_and_refuses_the_others(name):
    # Picks up each model family as it lands (SAFNet takes exactly 3 frames).
    model = hdrzoo.hub.create_model(name).eval()
    for n in (1, 2, 3, 7):
        bracket = make_bracket(n=n, h=8, w=8, gt=False, step=2.0)
        accepted = n >= 2 if model.frames is None else n == model.frames
        if accepted:
            hdr = model.merge(bracket)
            assert hdr.shape == (3, 8, 8) and torch.isfinite(hdr).all()
        else:
            with pytest.raises(InputSizeError, match=f"{n} frame|got {n}"):
                model.merge(bracket)


@FAST
@given(
    height=st.integers(1, 18),
    width=st.integers(1, 18),
    tile=st.one_of(st.none(), st.integers(2, 24)),
    data=st.data(),
)
def test_any_tiny_size_is_padded_cropped_and_tiled_without_error(models, height, width, tile, data):
    # The network asserts multiples of 16: merge() must pad even a 1 x 1 bracket to 16 x 16.
    overlap = 0 if tile is None else data.draw(st.integers(0, tile - 1), label="overlap")
    bracket = make_bracket(h=height, w=width, gt=False)
    model = hdrzoo.load("tiny16")
    hdr = model.merge(bracket, tile=tile, overlap=overlap)
    assert hdr.shape == (3, height, width) and torch.isfinite(hdr).all()
    # classic is per pixel: tiles blended with weights summing to one change nothing.
    classic = hdrzoo.load("classic")
    whole = classic.merge(bracket)
    torch.testing.assert_close(classic.merge(bracket, tile=tile, overlap=overlap), whole)


def test_tiny_scene_on_disk_through_the_cli(tmp_path, capsys, models):
    scene = write_bracket(tmp_path / "dot", make_bracket(h=1, w=1))
    code, _, _ = run_cli(
        [
            "merge",
            scene,
            "--model",
            "tiny16",
            "--weights",
            saved_weights("tiny16", tmp_path),
            "--out",
            tmp_path / "o",
        ],
        capsys,
    )
    assert code == 0
    assert read_hdr(tmp_path / "o" / "dot.exr").shape == (3, 1, 1)


def test_huge_image_without_tile_suggests_tiling_before_allocating(classic):
    # 3500 x 3500 = 12.25 MP > the default limit of 12 MP. expand() makes a view, so the
    # frames cost no memory; the check comes before the network runs.
    ldr = torch.rand(2, 3, 1, 1).expand(2, 3, 3500, 3500)
    with pytest.raises(
        InputSizeError, match=r"3500x3500 = 12\.2 MP.*tile=1024 \(CLI: --tile 1024\)"
    ):
        classic.merge(ldr, exposures=[1.0, 4.0])


def test_huge_image_through_the_cli_suggests_tile_and_tiling_works(
    tmp_path, capsys, monkeypatch, classic
):
    import hdrzoo.inference as inference

    scene = write_bracket(tmp_path / "wide", make_bracket(h=40, w=60, gt=False))
    # A real 12 MP bracket costs seconds and gigabytes; the limit is what is under test.
    real_merge = inference.merge
    monkeypatch.setattr(
        inference, "merge", lambda *a, **k: real_merge(*a, **{"max_pixels": 1000, **k})
    )
    code, _, stderr = run_cli(["merge", scene, "--out", tmp_path / "o"], capsys)
    assert code == 1
    assert "wide: 40x60 = 0.0 MP is too large to merge in one piece" in stderr
    assert "(CLI: --tile 1024)" in stderr
    assert listing(tmp_path / "o") == []
    code, _, _ = run_cli(
        ["merge", scene, "--out", tmp_path / "o", "--tile", "24", "--overlap", "8"], capsys
    )
    assert code == 0
    expected = classic.merge(read_bracket(scene), max_pixels=None)
    torch.testing.assert_close(read_hdr(tmp_path / "o" / "wide.exr"), expected)


@FAST
@given(permutation=st.permutations(range(4)))
def test_frames_in_any_exposure_order_give_the_same_merge(classic, permutation):
    bracket = make_bracket(n=4, h=5, w=7)
    order = list(permutation)
    shuffled = Bracket(bracket.ldr[order], bracket.exposures[order], order.index(bracket.ref))
    torch.testing.assert_close(classic.merge(shuffled), classic.merge(bracket))


def test_exposure_file_in_descending_order_through_the_cli(tmp_path, capsys, classic):
    bracket = make_bracket(n=3)
    order = [2, 0, 1]
    shuffled = Bracket(bracket.ldr[order], bracket.exposures[order], order.index(1), name="s")
    scene = write_bracket(tmp_path / "shuffled", shuffled)
    assert (scene / "exposure.txt").read_text().split() == ["4.0", "0.0", "2.0"]
    code, _, _ = run_cli(["merge", scene, "--out", tmp_path / "o"], capsys)
    assert code == 0
    torch.testing.assert_close(read_hdr(tmp_path / "o" / "shuffled.exr"), classic.merge(bracket))


finite_or_not = st.one_of(
    st.floats(min_value=-10, max_value=1e6, allow_nan=False),
    st.sampled_from([0.0, -1.0, float("nan"), float("inf"), -float("inf")]),
)


@FAST
@given(
    exposures=st.lists(finite_or_not, min_size=1, max_size=5),
    ref=st.one_of(st.none(), st.integers(-3, 6)),
)
@example(exposures=[1.0, 1.0, 4.0], ref=None)
@example(exposures=[0.0, 1.0, 4.0], ref=None)
@example(exposures=[-1.0, 1.0, 4.0], ref=1)
def test_any_numeric_exposures_and_reference_merge_or_raise_bracket_errors(classic, exposures, ref):
    ldr = make_bracket(n=3, h=4, w=4).ldr
    times = np.asarray(exposures, dtype=np.float64)
    valid = (
        len(exposures) == 3
        and np.isfinite(times).all()
        and (times > 0).all()
        and np.unique(times.astype(np.float32)).size == 3
        and (ref is None or 0 <= ref < 3)
    )
    if not valid:
        with pytest.raises((BracketError, InputSizeError)):
            classic.merge(ldr, exposures=exposures, ref=ref)
        return
    hdr = classic.merge(ldr, exposures=exposures, ref=ref)
    assert hdr.shape == (3, 4, 4) and torch.isfinite(hdr).all()


def test_nan_and_inf_pixels_are_refused_before_the_network(classic):
    for bad in (float("nan"), float("inf"), -float("inf")):
        ldr = torch.rand(3, 3, 4, 4)
        ldr[1, 2, 3, 0] = bad
        with pytest.raises(BracketError, match="NaN or Inf pixels"):
            classic.merge(ldr, exposures=[1.0, 4.0, 16.0])


def test_a_model_that_outputs_nan_leaves_no_file(tmp_path, capsys, models):
    scene = write_bracket(tmp_path / "s", make_bracket())
    code, _, stderr = run_cli(
        [
            "merge",
            scene,
            "--model",
            "tinynan",
            "--weights",
            saved_weights("tinynan", tmp_path),
            "--out",
            tmp_path / "o",
        ],
        capsys,
    )
    assert code == 1
    assert f"{tmp_path / 'o' / 's.exr'}: the image contains NaN or Inf values" in stderr
    assert listing(tmp_path / "o") == []


def test_bad_cli_arguments_are_errors_not_tracebacks(tmp_path, capsys):
    scene = write_bracket(tmp_path / "s", make_bracket())
    out = tmp_path / "o"
    cases = [
        (["--model", "no_such_model"], "unknown model 'no_such_model'; available: classic"),
        (["--device", "nonsense"], "device='nonsense' is not usable here"),
        (["--tile", "0"], "tile must be a positive number of pixels, got 0"),
        (["--tile", "16", "--overlap", "16"], r"overlap \(16\) must be in \[0, tile\)"),
        (["--precision", "fp16", "--device", "cpu"], "fp16 autocast needs a GPU"),
    ]
    for extra, message in cases:
        code, _, stderr = run_cli(["merge", scene, "--out", out, *extra], capsys)
        assert code == 1, extra
        assert re.search(message, stderr), (extra, stderr)
        assert listing(out) == []


# --------------------------------------------------------------------------------------------
# Bugs found by these tests, now fixed: each guards against its bug coming back
# --------------------------------------------------------------------------------------------


def test_evs_overflowing_float32_are_named_in_the_exposure_file(tmp_path):
    scene = write_bracket(tmp_path / "s", make_bracket())
    exposure = scene / "exposure.txt"
    exposure.write_text("0\n100\n200\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from numpy on the way
        with pytest.raises(ReadError, match=re.escape(str(exposure)) + ".*stops"):
            read_bracket(scene)


def test_exposure_ratios_beyond_float32_are_refused():
    with pytest.raises(BracketError, match="exposures"):
        Bracket(torch.rand(3, 3, 2, 2), [1e-30, 1.0, 1e10], 1)


def test_frames_outside_0_1_are_refused(classic):
    ldr = torch.rand(3, 3, 4, 4) - 0.5
    with pytest.raises(BracketError, match=r"\[0, 1\]"):
        classic.merge(ldr, exposures=[1.0, 4.0, 16.0])


@pytest.mark.parametrize("exposures", [["a", "b", "c"], [[1.0, 2.0], [3.0]], {"a": 1}, []], ids=str)
def test_malformed_exposures_raise_bracket_error(classic, exposures):
    with pytest.raises(BracketError, match="exposures"):
        classic.merge(torch.rand(3, 3, 4, 4), exposures=exposures)


@pytest.mark.parametrize(
    "kwargs",
    [{"tile": 4, "overlap": "1"}, {"max_pixels": "5"}, {"device": "nonsense"}],
    ids=["overlap-str", "max_pixels-str", "device-bad"],
)
def test_bad_merge_arguments_raise_hdrzoo_errors(classic, kwargs):
    with pytest.raises(HDRZooError):
        classic.merge(torch.rand(3, 3, 8, 8), exposures=[1.0, 4.0, 16.0], **kwargs)


def test_running_out_of_memory_on_the_cpu_suggests_a_tile(models):
    model = hdrzoo.load("tinyoom")
    with pytest.raises(InputSizeError, match="out of memory.*tile"):
        model.merge(make_bracket(gt=False), max_pixels=None)


def test_cli_divisor_zero_is_an_error(tmp_path, capsys):
    scene = write_bracket(tmp_path / "s", make_bracket())
    code, _, stderr = run_cli(["merge", scene, "--out", tmp_path / "o", "--divisor", "0"], capsys)
    assert code == 1 and "divisor must be a number >= 1" in stderr
    assert listing(tmp_path / "o") == []


@pytest.mark.parametrize("folder", ["take [b]", "odd[/x]"])
def test_paths_with_square_brackets_are_printed_verbatim(tmp_path, capsys, folder):
    good = write_bracket(tmp_path / folder / "good", make_bracket())
    bad = write_bracket(tmp_path / folder / "bad", make_bracket())
    (bad / "exposure.txt").write_text("0\n0\n4\n")
    code, stdout, stderr = run_cli(["merge", good, bad, "--out", tmp_path / "o"], capsys)
    assert code == 1
    assert str(bad / "exposure.txt") in stderr  # the plain-text error line
    assert str(bad / "exposure.txt") in stdout  # the summary table
    assert str(tmp_path / "o" / "good.exr") in stdout


def test_a_scene_whose_preview_fails_leaves_no_output(tmp_path, capsys, monkeypatch):
    import hdrzoo.io as hio

    def disk_full(path, *args, **kwargs):
        raise WriteError(f"could not write {path}: No space left on device")

    scene = write_bracket(tmp_path / "s", make_bracket())
    monkeypatch.setattr(hio, "write_preview", disk_full)
    code, _, stderr = run_cli(["merge", scene, "--out", tmp_path / "o", "--preview"], capsys)
    assert code == 1 and "No space left on device" in stderr
    assert listing(tmp_path / "o") == []


def merged_outputs(out: Path) -> list[torch.Tensor]:
    return [read_hdr(p) for p in sorted(out.glob("*.exr"))]


def test_scenes_with_the_same_folder_name_do_not_collide(tmp_path, capsys, classic):
    first = write_bracket(tmp_path / "a" / "scene", make_bracket(seed=1))
    second = write_bracket(tmp_path / "b" / "scene", make_bracket(seed=2))
    code, _, _ = run_cli(["merge", first, second, "--out", tmp_path / "o"], capsys)
    outputs = merged_outputs(tmp_path / "o")
    assert code == 0 and len(outputs) == 2
    for scene in (first, second):
        assert any(torch.equal(o, classic.merge(read_bracket(scene))) for o in outputs)


def test_three_scenes_sharing_folder_and_parent_names_do_not_collide(tmp_path, capsys, classic):
    scenes = [
        write_bracket(tmp_path / parent / "x" / "scene", make_bracket(seed=i))
        for i, parent in enumerate("abc")
    ]
    code, _, _ = run_cli(["merge", *scenes, "--out", tmp_path / "o"], capsys)
    outputs = merged_outputs(tmp_path / "o")
    assert code == 0 and len(outputs) == 3
    for scene in scenes:
        assert any(torch.equal(o, classic.merge(read_bracket(scene))) for o in outputs)


def test_listings_see_hidden_temporary_files(tmp_path):
    # The failure paths above assert exact listings of the output folder; this checks that
    # those listings include the hidden temporaries atomic writes use, so they could fail.
    out = tmp_path / "out"
    out.mkdir()
    (out / ".scene.abc123.tmp.exr").write_bytes(b"partial")
    assert hidden_or_temporary(out) == [".scene.abc123.tmp.exr"]
    assert listing(out) == [".scene.abc123.tmp.exr"]
