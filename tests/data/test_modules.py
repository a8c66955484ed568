"""LightningDataModules: contract batches, seeds, workers, on-device augmentation in training
only, the real-data layouts on tiny fake trees (written with tifffile / OpenCV here, checked
against those files), the patch cache, and Challenge123's Hub download path."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import lightning as L
import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from hdrzoo.bracket import Bracket
from hdrzoo.data.modules import (
    TEST_SEED_OFFSET,
    VAL_SEED_OFFSET,
    Challenge123DataModule,
    Kalantari17DataModule,
    NTIREDataModule,
    SyntheticDataModule,
    Tel23DataModule,
)
from hdrzoo.data.synthetic import synthesize
from hdrzoo.errors import HDRZooError
from hdrzoo.io import write_hdr

CONTRACT_KEYS = {"ldr", "exposures", "ref", "gt", "name"}

SYMMETRIES = [
    lambda x: x,
    lambda x: torch.rot90(x, 1, (-2, -1)),
    lambda x: torch.rot90(x, 2, (-2, -1)),
    lambda x: torch.rot90(x, 3, (-2, -1)),
    lambda x: torch.flip(x, (-1,)),
    lambda x: torch.flip(x, (-2,)),
    lambda x: x.transpose(-2, -1),
    lambda x: torch.rot90(x, 2, (-2, -1)).transpose(-2, -1),
]


def check_contract(batch, b, n, size):
    assert set(batch) == CONTRACT_KEYS
    assert batch["ldr"].shape == (b, n, 3, size, size) and batch["ldr"].dtype == torch.float32
    assert batch["gt"].shape == (b, 3, size, size) and batch["gt"].dtype == torch.float32
    assert batch["exposures"].shape == (b, n)
    assert batch["ref"].shape == (b,) and batch["ref"].dtype == torch.long
    assert isinstance(batch["name"], list) and len(batch["name"]) == b
    assert float(batch["ldr"].min()) >= 0 and float(batch["ldr"].max()) <= 1


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_datamodule_without_arguments_gives_contract_batches():
    dm = SyntheticDataModule()
    dm.setup("fit")
    assert len(dm.train_set) == 2000 and len(dm.val_set) == 8
    check_contract(next(iter(dm.train_dataloader())), 4, 3, 128)
    val = next(iter(dm.val_dataloader()))
    check_contract(val, 4, 3, 256)
    # validation items are the disjoint held-out seeds, independent of the training seed
    expected = synthesize(VAL_SEED_OFFSET + 2, size=256)
    assert torch.equal(val["ldr"][2], expected.ldr) and torch.equal(val["gt"][2], expected.gt)
    dm.setup("test")
    assert torch.equal(dm.test_set[0]["ldr"], synthesize(TEST_SEED_OFFSET, size=256).ldr)


def test_synthetic_datamodule_with_two_workers_matches_the_main_process():
    kwargs = dict(train_size=4, val_size=4, crop_size=48, eval_size=64, batch_size=2)
    serial, parallel = SyntheticDataModule(**kwargs), SyntheticDataModule(num_workers=2, **kwargs)
    serial.setup("fit")
    parallel.setup("fit")
    for a, b in zip(serial.val_dataloader(), parallel.val_dataloader()):
        assert torch.equal(a["ldr"], b["ldr"]) and torch.equal(a["gt"], b["gt"])
        assert a["name"] == b["name"]
    train = list(parallel.train_dataloader())
    assert len(train) == 2
    names = sorted(n for batch in train for n in batch["name"])
    assert names == sorted(f"synthetic-{i}" for i in range(4))
    check_contract(train[0], 2, 3, 48)


def test_synthetic_datamodule_options_reach_the_generator():
    dm = SyntheticDataModule(
        train_size=2,
        crop_size=32,
        seed=50,
        evs=[-3, 0, 3],
        n_frames=5,
        bit_depth=8,
        radiance="procedural",
        synthetic={"n_objects": [0, 0], "crf": "s-curve"},
    )
    dm.setup("fit")
    item = dm.train_set[1]
    expected = synthesize(
        51,
        size=32,
        evs=(-3, 0, 3),
        bit_depth=8,
        radiance="procedural",
        n_objects=(0, 0),
        crf="s-curve",
    )
    assert torch.equal(item["ldr"], expected.ldr)
    assert item["exposures"].tolist() == [1.0, 8.0, 64.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(train_size=VAL_SEED_OFFSET + 1),
        dict(seed=VAL_SEED_OFFSET - 5),
        dict(val_seed=TEST_SEED_OFFSET),
        dict(batch_size=0),
        dict(crop_size=-1),
        dict(bit_depth=10),
        dict(synthetic={"no_such_option": 1}),
    ],
)
def test_synthetic_datamodule_rejects_bad_arguments(kwargs):
    with pytest.raises(HDRZooError):
        SyntheticDataModule(**kwargs)


def test_loaders_need_setup():
    with pytest.raises(HDRZooError, match="setup"):
        SyntheticDataModule().train_dataloader()


def test_augmentation_runs_after_transfer_in_training_only():
    dm = SyntheticDataModule(crop_size=16)
    ldr = torch.rand(6, 3, 3, 16, 16)
    batch = {
        "ldr": ldr,
        "gt": ldr[:, 1].clone(),
        "exposures": torch.ones(6, 3),
        "ref": torch.ones(6).long(),
    }
    dm.trainer = SimpleNamespace(training=False)
    assert dm.on_after_batch_transfer(batch, 0) is batch
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    out = dm.on_after_batch_transfer(batch, 0)
    assert torch.equal(out["gt"], out["ldr"][:, 1])  # one transform for frames and GT
    assert not torch.equal(out["ldr"], ldr)
    assert SyntheticDataModule(augment=False).augmentation is None


class _Recorder(L.LightningModule):
    """Records what the Trainer hands to the steps (after on_after_batch_transfer)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.train_batches, self.val_batches = [], []

    def training_step(self, batch, batch_idx):
        self.train_batches.append({k: v for k, v in batch.items()})
        return (self.weight * batch["ldr"].mean()).sum()

    def validation_step(self, batch, batch_idx):
        self.val_batches.append({k: v for k, v in batch.items()})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_trainer_sees_augmented_training_and_plain_validation_batches(tmp_path):
    dm = SyntheticDataModule(
        train_size=2, val_size=2, crop_size=24, eval_size=24, batch_size=2, eval_batch_size=2
    )
    model = _Recorder()
    L.seed_everything(0)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=8,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    originals = {dm.train_set[i]["name"]: dm.train_set[i] for i in range(2)}
    transformed = 0
    for batch in model.train_batches:
        for j, name in enumerate(batch["name"]):
            source = originals[name]
            matches = [
                k
                for k, f in enumerate(SYMMETRIES)
                if torch.equal(f(source["ldr"]), batch["ldr"][j])
                and torch.equal(f(source["gt"]), batch["gt"][j])
            ]
            assert matches, (
                "training batch is not a symmetry of its item applied to all frames and GT"
            )
            transformed += matches[0] != 0
    assert len(model.train_batches) == 8 and transformed >= 3
    val_items = [dm.val_set[i] for i in range(2)]
    for batch in model.val_batches:
        for j in range(2):
            assert torch.equal(batch["ldr"][j], val_items[j]["ldr"])


def test_synthetic_datamodule_is_configurable_from_yaml_arguments():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(SyntheticDataModule, "data")
    config = parser.parse_args(
        [
            "--data.train_size=3",
            "--data.crop_size=40",
            "--data.radiance=procedural",
            "--data.evs=[-2, 0, 2]",
            '--data.synthetic={"n_objects": [1, 1]}',
        ]
    )
    dm = parser.instantiate(config).data
    assert isinstance(dm, SyntheticDataModule)
    assert dm.config.radiance == "procedural" and dm.config.n_objects == (1, 1)
    assert dm.hparams["train_size"] == 3


def test_dataloaders_carry_no_sampler_so_lightning_can_distribute():
    dm = SyntheticDataModule(train_size=4, val_size=2, crop_size=16, eval_size=16)
    dm.setup("fit")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert isinstance(train.sampler, torch.utils.data.RandomSampler)
    assert isinstance(val.sampler, torch.utils.data.SequentialSampler)


# ----------------------------------------------------------------------------- real datasets


def write_kalantari_scene(folder: Path, rng: np.random.Generator, h=40, w=56, n=3) -> None:
    """Kalantari layout by hand: {a,b,c}.tif (16-bit RGB), exposure.txt, HDRImg.hdr."""
    folder.mkdir(parents=True)
    for name in "abc"[:n]:
        tifffile.imwrite(folder / f"{name}.tif", rng.integers(0, 65536, (h, w, 3), dtype=np.uint16))
    (folder / "exposure.txt").write_text("-2\n0\n2\n")
    write_hdr(folder / "HDRImg.hdr", rng.random((3, h, w)).astype(np.float32))


@pytest.fixture
def kalantari_root(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "Kalantari17"
    for scene in ("001", "002", "003"):
        write_kalantari_scene(root / "Training" / scene, rng)
    for scene in ("EXTRA/001", "PAPER/ManStanding"):
        write_kalantari_scene(root / "Test" / scene, rng)
    return root


@pytest.mark.parametrize("divisor", [65535, 65536])
def test_kalantari_module_reads_the_files_it_was_given(kalantari_root, divisor):
    dm = Kalantari17DataModule(str(kalantari_root), crop_size=32, batch_size=2, divisor=divisor)
    dm.setup("fit")
    assert len(dm.train_set) == 3 and len(dm.val_set) == 2  # no val folder: test validates
    check_contract(next(iter(dm.train_dataloader())), 2, 3, 32)
    val = next(iter(dm.val_dataloader()))
    scene = kalantari_root / "Test" / "EXTRA" / "001"
    frames = np.stack([tifffile.imread(scene / f"{c}.tif") for c in "abc"]).astype(np.float64)
    expected = torch.from_numpy((frames / divisor).transpose(0, 3, 1, 2).astype(np.float32))
    assert torch.equal(val["ldr"][0], expected)
    gt = cv2.imread(str(scene / "HDRImg.hdr"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert torch.equal(val["gt"][0], torch.from_numpy(gt.transpose(2, 0, 1).copy()))
    assert val["exposures"][0].tolist() == [1.0, 4.0, 16.0] and int(val["ref"][0]) == 1
    dm.setup("test")
    assert len(dm.test_set) == 2


def test_kalantari_module_eval_crops_and_patch_cache(kalantari_root, tmp_path):
    cache = tmp_path / "patches"
    dm = Kalantari17DataModule(
        str(kalantari_root),
        patch_cache=str(cache),
        patch_size=16,
        patch_stride=8,
        eval_crop_size=24,
    )
    dm.prepare_data()
    dm.setup("fit")
    # 3 scenes of 40 x 56: ((40 - 16) // 8 + 1) x ((56 - 16) // 8 + 1) patches each
    assert len(dm.train_set) == 3 * 4 * 6
    check_contract(next(iter(dm.train_dataloader())), 4, 3, 16)
    val = dm.val_set[0]
    assert val["ldr"].shape == (3, 3, 24, 24)
    full = Kalantari17DataModule(str(kalantari_root))
    full.setup("validate")
    assert torch.equal(val["ldr"], full.val_set[0]["ldr"][..., 8:32, 16:40])  # centre crop


def test_whole_frame_training_turns_quarter_turns_off(kalantari_root):
    dm = Kalantari17DataModule(str(kalantari_root), crop_size=None, batch_size=1)
    assert dm.augmentation is not None and not dm.augmentation.rot90
    assert Kalantari17DataModule(str(kalantari_root)).augmentation.rot90


def test_missing_root_names_the_folder_and_the_layout(tmp_path):
    missing = tmp_path / "nowhere"
    dm = Kalantari17DataModule(str(missing))
    with pytest.raises(HDRZooError, match="nowhere") as info:
        dm.setup("fit")
    assert "HDRImg.hdr" in str(info.value)


def _bracket(seed: int, size: int = 32) -> Bracket:
    return synthesize(seed, size=size, evs=(-2, 0, 2))


def test_challenge123_tel23_and_ntire_modules(tmp_path):
    from hdrzoo.io import write_bracket

    challenge = tmp_path / "Challenge123"
    for split, ids in (("Training", ("001", "002")), ("Test", ("003",))):
        for i in ids:
            write_bracket(challenge / split, _bracket(int(i)), layout="challenge123", name=i)
    dm = Challenge123DataModule(str(challenge), crop_size=16, batch_size=2)
    dm.prepare_data()  # download=False: nothing to fetch
    dm.setup("fit")
    assert len(dm.train_set) == 2 and len(dm.val_set) == 1
    check_contract(next(iter(dm.train_dataloader())), 2, 3, 16)

    tel = tmp_path / "Tel23"
    write_bracket(tel / "Training" / "scene_a", _bracket(4))
    write_bracket(tel / "Test" / "scene_b", _bracket(5))
    dm = Tel23DataModule(str(tel), crop_size=16, batch_size=1)
    dm.setup("fit")
    check_contract(next(iter(dm.train_dataloader())), 1, 3, 16)

    ntire = tmp_path / "NTIRE"
    write_bracket(ntire / "Training", _bracket(6), layout="ntire", name="0001")
    write_bracket(ntire / "Training", _bracket(7), layout="ntire", name="0002")
    write_bracket(ntire / "Validation", _bracket(8), layout="ntire", name="0003")
    dm = NTIREDataModule(str(ntire), crop_size=16, batch_size=2)
    dm.setup("fit")
    assert len(dm.train_set) == 2 and len(dm.val_set) == 1
    batch = next(iter(dm.train_dataloader()))
    check_contract(batch, 2, 3, 16)
    codes = batch["ldr"].double() * 255
    assert float((codes - codes.round()).abs().max()) < 1e-3  # NTIRE frames are 8-bit


def test_challenge123_download_fetches_from_the_hub_into_root(tmp_path, monkeypatch):
    import huggingface_hub

    from hdrzoo.io import write_bracket

    calls = []

    def fake_snapshot_download(**kwargs):
        calls.append(kwargs)
        local = Path(kwargs["local_dir"])
        write_bracket(local / "Training", _bracket(1), layout="challenge123", name="001")
        write_bracket(local / "Test", _bracket(2), layout="challenge123", name="002")
        return str(local)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    root = tmp_path / "c123"
    dm = Challenge123DataModule(
        str(root), download=True, repo_id="someone/challenge123", revision="abc"
    )
    dm.prepare_data()
    assert calls == [
        {
            "repo_id": "someone/challenge123",
            "repo_type": "dataset",
            "revision": "abc",
            "local_dir": str(root),
        }
    ]
    dm.prepare_data()  # already there: no second download
    assert len(calls) == 1
    dm.setup("fit")
    assert len(dm.train_set) == 1


def test_challenge123_download_offline_says_where_to_put_the_data(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    root = tmp_path / "c123"
    dm = Challenge123DataModule(str(root), download=True, repo_id="someone/challenge123")
    with pytest.raises(HDRZooError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert str(root) in message and "xxx_2" in message and "download=False" in message


def test_challenge123_download_needs_a_repository():
    with pytest.raises(HDRZooError, match="repo_id"):
        Challenge123DataModule("/tmp/anywhere", download=True)


def test_scene_modules_are_configurable_from_yaml_arguments(kalantari_root):
    from jsonargparse import ArgumentParser

    for cls in (Kalantari17DataModule, Tel23DataModule, NTIREDataModule, Challenge123DataModule):
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, "data")
        config = parser.parse_args(
            [f"--data.root={kalantari_root}", "--data.divisor=65536", "--data.patch_cache=null"]
        )
        dm = parser.instantiate(config).data
        assert isinstance(dm, cls) and dm.divisor == 65536 and dm.patch_cache is None
        assert dm.hparams["root"] == str(kalantari_root)


def test_synthetic_defaults_are_square_multiples_of_model_sizes():
    dm = SyntheticDataModule()
    # STHDR needs multiples of 64, LF-Diff 16: both default sizes qualify
    assert dm.crop_size % 64 == 0 and dm.eval_size % 64 == 0
    assert math.isclose(dm.config.reference, 1)


class _NameWriter(L.LightningModule):
    """Writes the names of the training items each DDP rank receives to a file per rank."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder
        self.weight = nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        with open(Path(self.folder) / f"rank{self.global_rank}.txt", "a") as handle:
            handle.write("\n".join(batch["name"]) + "\n")
        return (self.weight * batch["ldr"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.slow
def test_ddp_ranks_get_disjoint_halves_of_the_synthetic_training_set(tmp_path):
    dm = SyntheticDataModule(train_size=8, val_size=0, crop_size=16, batch_size=2, augment=False)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(_NameWriter(str(tmp_path)), datamodule=dm)
    ranks = [set((tmp_path / f"rank{r}.txt").read_text().split()) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 4
    assert ranks[0].isdisjoint(ranks[1])
    assert ranks[0] | ranks[1] == {f"synthetic-{i}" for i in range(8)}
