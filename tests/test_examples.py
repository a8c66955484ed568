"""The examples cannot rot: the quickstart notebook is executed and every script runs at
tiny settings, checked by what it writes and prints."""

from __future__ import annotations

import importlib.util
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import hdrzoo
from hdrzoo import metrics

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ("simulate_brackets", "merge_camera_bracket", "evaluate", "finetune")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"hdrzoo_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name: str, argv: list[str], capsys) -> tuple[int, str, str]:
    code = _script(name).main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    """A tiny dataset written by the simulation script: 2 training and 1 test scene."""
    root = tmp_path_factory.mktemp("sim")
    code = _script("simulate_brackets").main(
        ["assets", "--out", str(root), "--split", "2", "1", "--size", "48", "64"]
    )
    assert code == 0
    return root


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script(name).main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "Example:" in out


def test_simulate_writes_readable_scenes_with_ground_truth(simulated):
    scenes = sorted((simulated / "Training").iterdir()) + sorted((simulated / "Test").iterdir())
    assert len(scenes) == 3
    for scene in scenes:
        bracket = hdrzoo.read_bracket(scene)
        assert bracket.exposures.tolist() == [1.0, 4.0, 16.0]
        assert bracket.size == (48, 64) and bracket.ref == 1
        assert bracket.gt is not None and 0 < float(bracket.gt.max()) <= 1.0
        # the long frame is brighter than the short one, as exposure.txt says
        assert bracket.ldr[2].mean() > bracket.ldr[0].mean()


def test_simulate_refuses_a_missing_radiance_file(tmp_path, capsys):
    code, _, err = _run(
        "simulate_brackets", [str(tmp_path / "no.exr"), "--out", str(tmp_path)], capsys
    )
    assert code == 2 and "is not a file" in err


def _write_jpeg_bracket(folder: Path, seconds: list[float]) -> hdrzoo.Bracket:
    from PIL import Image

    from hdrzoo.data.synthetic import synthesize

    bracket = synthesize(5, size=(40, 56), bit_depth=8)
    folder.mkdir()
    for i, t in enumerate(seconds):
        pixels = (bracket.ldr[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[33434] = t  # Exif IFD, ExposureTime
        Image.fromarray(pixels).save(folder / f"IMG_{i}.jpg", exif=exif.tobytes(), quality=95)
    return bracket


def test_merge_camera_bracket_uses_exif_times(tmp_path, capsys):
    _write_jpeg_bracket(tmp_path / "bracket", [1 / 400, 1 / 100, 1 / 25])
    out = tmp_path / "merged.exr"
    code, stdout, err = _run(
        "merge_camera_bracket",
        [str(tmp_path / "bracket"), "--out", str(out), "--preview", str(tmp_path / "m.png")],
        capsys,
    )
    assert code == 0, err
    assert "[1.0, 4.0, 16.0] (from exif)" in stdout
    assert "warning" not in err
    hdr = hdrzoo.read_hdr(out)
    assert hdr.shape == (3, 40, 56) and torch.isfinite(hdr).all()
    assert float(hdr.min()) >= 0 and 0.05 < float(hdr.max()) <= 1.5
    assert (tmp_path / "m.png").stat().st_size > 0


def test_merge_camera_bracket_warns_on_exposures_in_the_wrong_order(tmp_path, capsys):
    _write_jpeg_bracket(tmp_path / "bracket", [1 / 25, 1 / 100, 1 / 400])  # reversed
    code, _, err = _run(
        "merge_camera_bracket",
        [str(tmp_path / "bracket"), "--out", str(tmp_path / "m.exr")],
        capsys,
    )
    assert code == 0
    assert "do not get brighter as the exposure time grows" in err


def test_merge_camera_bracket_explains_missing_exposures(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "noexif"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 60 * (i + 1), np.uint8)).save(folder / f"{i}.png")
    code, _, err = _run(
        "merge_camera_bracket", [str(folder), "--out", str(tmp_path / "x.exr")], capsys
    )
    assert code == 1 and "exposure.txt" in err


def _printed_scores(text: str) -> dict[str, float]:
    line = [row for row in text.splitlines() if row.startswith("mean over")][-1]
    return {k: float(v) for k, v in re.findall(r"(\w+) (-?[\d.]+)", line.split(":", 1)[1])}


def test_evaluate_prints_and_writes_the_metrics(simulated, tmp_path, capsys):
    table = tmp_path / "scores.csv"
    code, out, err = _run(
        "evaluate",
        [str(simulated), "--dataset", "generic", "--model", "classic", "--csv", str(table)],
        capsys,
    )
    assert code == 0, err
    scores = _printed_scores(out)
    bracket = hdrzoo.read_bracket(next((simulated / "Test").iterdir()))
    expected = metrics.evaluate(hdrzoo.load("classic").merge(bracket), bracket.gt)
    for name in ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l"):
        assert scores[name] == pytest.approx(expected[name], abs=1e-4)
    rows = table.read_text().splitlines()
    assert rows[0] == "scene,psnr_mu,psnr_l,ssim_mu,ssim_l" and rows[-1].startswith("mean,")


def test_evaluate_names_a_missing_dataset(tmp_path, capsys):
    code, _, err = _run("evaluate", [str(tmp_path / "none"), "--dataset", "kalantari17"], capsys)
    assert code == 1 and "is not a folder" in err


def test_finetune_trains_exports_and_loads_back(simulated, tmp_path, capsys):
    out = tmp_path / "ft"
    code, stdout, err = _run(
        "finetune",
        [
            str(simulated),
            "--out",
            str(out),
            "--steps",
            "2",
            "--crop-size",
            "32",
            "--batch-size",
            "2",
            "--accelerator",
            "cpu",
        ],  # fmt: skip
        capsys,
    )
    assert code == 0, err
    before, after = map(
        float, re.search(r"PSNR-mu ([\d.]+) dB \(before ([\d.]+)", stdout).groups()[::-1]
    )
    assert math.isfinite(before) and math.isfinite(after) and before != after  # the weights moved
    model = hdrzoo.load(f"local-dir:{out / 'model'}")
    from_ckpt = hdrzoo.load(out / "last.ckpt")
    for a, b in zip(model.net.state_dict().values(), from_ckpt.net.state_dict().values()):
        assert torch.equal(a, b)
    bracket = hdrzoo.read_bracket(next((simulated / "Test").iterdir()))
    score = float(metrics.psnr_mu(model.merge(bracket), bracket.gt))
    assert score == pytest.approx(after, abs=0.01)


def test_finetune_refuses_a_model_without_parameters(simulated, tmp_path, capsys):
    code, _, err = _run(
        "finetune", [str(simulated), "--out", str(tmp_path / "x"), "--model", "classic"], capsys
    )
    assert code == 1 and "nothing to fine-tune" in err


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[dev]' for nbformat")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[dev]' for nbclient")
    pytest.importorskip("matplotlib", reason="pip install -e '.[dev]' for matplotlib")
    pytest.importorskip("ipykernel", reason="pip install -e '.[dev]' for ipykernel")
    monkeypatch.setenv("HDRZOO_QUICKSTART_STEPS", "2")
    # the kernel must import this checkout's hdrzoo, as the tests do
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [str(EXAMPLES.parent), os.environ.get("PYTHONPATH")])),
    )
    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the frames, the results with error maps
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    rows = {
        m.group(1).strip(): float(m.group(2))
        for m in re.finditer(r"^(.+?)\s+psnr_mu\s+([\d.]+)", text, re.M)
    }
    assert set(rows) == {
        "reference frame alone",
        "classic",
        "SAFNet-S (2 steps, NOT a trained model)",
    }
    assert all(10 < v < 60 for v in rows.values())
    assert "wrote ['classic.exr', 'classic.png', 'scene']" in text
