import json
from pathlib import Path

import pytest
import torch

import hdrzoo
from hdrzoo import metrics
from hdrzoo.bracket import Bracket
from hdrzoo.cli import main
from hdrzoo.io import read_hdr, write_bracket


def _scene(seed: int, size=(24, 32)) -> Bracket:
    g = torch.Generator().manual_seed(seed)
    radiance = torch.rand(3, *size, generator=g) * 0.5 + 0.01
    t = torch.tensor([1.0, 4.0, 16.0])
    ldr = (radiance[None] * t[:, None, None, None]).clamp(0, 1) ** (1 / 2.2)
    return Bracket(ldr, t, 1, radiance, name=f"scene{seed}")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "scenes"
    for i in range(3):
        write_bracket(root / f"00{i}", _scene(i), gt_format=".exr")
    broken = root / "001"
    (broken / "ldr_1.tif").write_bytes(b"II*\x00 this is not a tiff")
    return root


def test_merge_writes_every_good_scene_and_reports_the_broken_one(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["merge", str(dataset), "--model", "classic", "-o", str(out), "--preview"])
    captured = capsys.readouterr()
    assert code == 1  # one scene failed
    assert "001" in captured.err and "ldr_1.tif" in captured.err
    written = sorted(p.name for p in out.iterdir())
    assert written == ["000.exr", "000.png", "002.exr", "002.png"]
    for name in ("000", "002"):
        bracket = hdrzoo.read_bracket(dataset / name)
        expected = hdrzoo.load("classic").merge(bracket)
        torch.testing.assert_close(read_hdr(out / f"{name}.exr"), expected, rtol=0, atol=0)
        # Ground truth is present, so the table shows PSNR-mu for the good scenes.
        psnr = float(metrics.psnr_mu(expected, bracket.gt))
        assert f"{psnr:.2f}" in captured.out


def test_merge_skips_existing_outputs_unless_overwrite(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    main(["merge", str(dataset / "000"), "-o", str(out)])
    target = out / "000.exr"
    target.write_bytes(b"placeholder")
    assert main(["merge", str(dataset / "000"), "-o", str(out)]) == 0
    assert "skipped" in capsys.readouterr().out and target.read_bytes() == b"placeholder"
    assert main(["merge", str(dataset / "000"), "-o", str(out), "--overwrite"]) == 0
    assert read_hdr(target).shape == (3, 24, 32)


def test_merge_reports_missing_paths_and_unknown_models(tmp_path, capsys):
    assert main(["merge", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 1
    assert "nope" in capsys.readouterr().err
    assert (
        main(["merge", str(tmp_path), "--model", "no_such_model", "-o", str(tmp_path / "o")]) == 1
    )
    assert "unknown model" in capsys.readouterr().err


def models_table_rows(out: str) -> dict[str, list[str]]:
    """``{name: cells}`` for each model's first line of the printed table."""
    rows = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 6 and cells[0] and cells[0] != "name":
            rows[cells[0]] = cells
    return rows


def test_models_table_lists_classic_with_its_parameter_count(capsys):
    assert main(["models"]) == 0
    rows = models_table_rows(capsys.readouterr().out)
    # Parameter counts of MODELS.md; classic has none and takes any number of frames.
    assert rows["classic"][1:2] + rows["classic"][3:5] == ["0", "any", "none needed"]
    assert rows["safnet_s"][1] == "566,713" and rows["safnet_s"][3] == "3"
    assert rows["safnet"][1] == "1,120,849" and rows["safnet"][3] == "3"
    assert main(["models", "safnet*"]) == 0
    assert set(models_table_rows(capsys.readouterr().out)) == {"safnet", "safnet_s"}


def test_export_command_round_trips_a_checkpoint(tmp_path, monkeypatch, capsys):
    from _tiny_model import TINY, use_tiny_registry

    use_tiny_registry(monkeypatch)
    module = hdrzoo.hub.create_model(TINY)
    ckpt = tmp_path / "m.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in module.net.state_dict().items()},
            "hyper_parameters": dict(module.hparams),
            "hdrzoo": {"model": TINY},
        },
        ckpt,
    )
    assert main(["export", str(ckpt), "--out", str(tmp_path / "exp")]) == 0
    config = json.loads((tmp_path / "exp" / "config.json").read_text())
    assert config["model"] == TINY and (tmp_path / "exp" / "README.md").is_file()
    loaded = hdrzoo.load(f"local-dir:{tmp_path / 'exp'}")
    for k, v in module.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[k], v)


def test_lightning_cli_validates_classic_from_its_config_and_writes_logs(
    tmp_path, monkeypatch, capsys
):
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    args = ["validate", "--config", str(repo / "configs/classic/synthetic.yaml")]
    args += ["--data.init_args.val_size", "2", "--data.init_args.eval_size", "64"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "val/psnr_mu" in out
    assert (tmp_path / "runs" / "csv" / "version_0" / "metrics.csv").is_file()
    assert any((tmp_path / "runs" / "tensorboard").rglob("events.out.tfevents*"))


def test_lightning_cli_print_config_resolves_model_and_data(capsys):
    repo = Path(__file__).resolve().parents[1]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(repo / "configs/classic/synthetic.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "hdrzoo.models.classic.ClassicModule" in out and "SyntheticDataModule" in out
    assert "save_last: true" in out


def test_merge_refuses_a_learned_model_without_weights(dataset, tmp_path, capsys):
    code = main(["merge", str(dataset / "000"), "--model", "safnet_s", "-o", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "random weights" in err and "--weights" in err and "--pretrained" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("model", ["safnet_s", "safnet", "sthdr", "flexhdr"])
def test_synthetic_configs_train_with_the_simulators_variety(model):
    # The configs spell VARIETY out (users read and edit them); they must not drift from it.
    import yaml

    from hdrzoo.data.modules import SyntheticDataModule
    from hdrzoo.data.synthetic import VARIETY, SyntheticConfig

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "configs" / model / "synthetic.yaml").read_text())
    data = SyntheticDataModule(**config["data"]["init_args"]).config
    expected = SyntheticConfig(**{**VARIETY, "evs": data.evs, "n_frames": data.n_frames})
    for field in VARIETY:
        if field == "ev_steps" and data.evs is not None:
            continue  # explicit EVs (FlexHDR's five frames) replace the spacings
        assert getattr(data, field) == getattr(expected, field), field
