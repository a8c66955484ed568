"""Tests of hdrzoo.data.datasets: split discovery, cropping datasets, the offline patch cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch.utils.data import DataLoader, default_collate

import hdrzoo.data.datasets as datasets
from hdrzoo.bracket import Bracket
from hdrzoo.data.datasets import BracketDataset, PatchDataset, discover_scenes, extract_patches
from hdrzoo.errors import HDRZooError
from hdrzoo.io import read_bracket, write_bracket


def make_bracket(h: int = 12, w: int = 16, seed: int = 0) -> Bracket:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 65536, (3, 3, h, w))
    ldr = torch.from_numpy((codes / 65535.0).astype(np.float32))
    gt = torch.from_numpy(rng.random((3, h, w)).astype(np.float32))
    return Bracket(ldr, torch.tensor([1.0, 4.0, 16.0]), 1, gt, f"s{seed}")


def rel(root: Path, paths: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


@pytest.fixture
def kalantari_root(tmp_path) -> Path:
    """Training/001..003, a nested test set (Test/EXTRA, Test/PAPER) and no Val folder."""
    root = tmp_path / "kalantari"
    small = make_bracket(4, 5)
    for scene in ("Training/003", "Training/001", "Training/002"):
        write_bracket(root / scene, small)
    for scene in ("Test/PAPER/ManStanding", "Test/EXTRA/001", "Test/PAPER/BarbequeDay"):
        write_bracket(root / scene, small)
    return root


def test_discover_kalantari_nested_test_set_and_val_falls_back_to_test(kalantari_root):
    assert rel(kalantari_root, discover_scenes(kalantari_root, "kalantari17", "train")) == [
        "Training/001",
        "Training/002",
        "Training/003",
    ]
    test = discover_scenes(kalantari_root, "kalantari17", "test")
    assert rel(kalantari_root, test) == [
        "Test/EXTRA/001",
        "Test/PAPER/BarbequeDay",
        "Test/PAPER/ManStanding",
    ]
    assert discover_scenes(kalantari_root, "kalantari17", "val") == test


def test_discover_kalantari_flat_test_set_and_explicit_val(tmp_path):
    small = make_bracket(4, 5)
    for scene in ("Training/001", "Test/002", "Test/001", "Val/009"):
        write_bracket(tmp_path / scene, small)
    assert rel(tmp_path, discover_scenes(tmp_path, "kalantari17", "test")) == [
        "Test/001",
        "Test/002",
    ]
    assert rel(tmp_path, discover_scenes(tmp_path, "kalantari17", "val")) == ["Val/009"]


def test_discover_challenge123_triples_in_lower_case_split_folders(tmp_path):
    small = make_bracket(4, 5)
    for split, ids in (("train", ("002", "001")), ("test", ("096",))):
        for scene_id in ids:
            write_bracket(tmp_path / split, small, layout="challenge123", name=scene_id)
    train = discover_scenes(tmp_path, "challenge123", "train")
    assert rel(tmp_path, train) == ["train/001_2", "train/002_2"]
    assert rel(tmp_path, discover_scenes(tmp_path, "challenge123", "test")) == ["test/096_2"]
    assert read_bracket(train[0]).name == "001"


def test_discover_ntire_ids(tmp_path):
    rng = np.random.default_rng(0)
    ldr = torch.from_numpy((rng.integers(0, 256, (3, 3, 4, 5)) / 255.0).astype(np.float32))
    bracket = Bracket(ldr, torch.tensor([1.0, 4.0, 16.0]), 1)
    for scene_id in ("0101", "0100"):
        write_bracket(tmp_path / "Train", bracket, layout="ntire", name=scene_id)
    assert rel(tmp_path, discover_scenes(tmp_path, "ntire", "train")) == [
        "Train/0100_medium.png",
        "Train/0101_medium.png",
    ]


def test_missing_split_lists_what_was_found(kalantari_root, tmp_path):
    (kalantari_root / "Training").rename(kalantari_root / "Extras")
    with pytest.raises(HDRZooError, match="no train folder.*Extras, Test"):
        discover_scenes(kalantari_root, "kalantari17", "train")
    with pytest.raises(HDRZooError, match="no kalantari17 scenes"):
        empty = tmp_path / "empty"
        (empty / "Test").mkdir(parents=True)
        discover_scenes(empty, "kalantari17", "test")
    with pytest.raises(HDRZooError, match="unknown dataset"):
        discover_scenes(kalantari_root, "kalantari", "test")
    with pytest.raises(HDRZooError, match="unknown split"):
        discover_scenes(kalantari_root, "kalantari17", "training")
    with pytest.raises(HDRZooError, match="not a folder"):
        discover_scenes(tmp_path / "nope", "kalantari17", "test")


def test_discover_layout_filter_skips_other_layouts(tmp_path):
    write_bracket(tmp_path / "Test" / "a", make_bracket(4, 5), layout="challenge123")
    with pytest.raises(HDRZooError, match="no kalantari17 scenes"):
        discover_scenes(tmp_path, "kalantari17", "test")


# --------------------------------------------------------------------------------------------
# BracketDataset
# --------------------------------------------------------------------------------------------


@pytest.fixture
def scene_paths(tmp_path) -> list[Path]:
    return [write_bracket(tmp_path / f"s{i}", make_bracket(12, 16, seed=i)) for i in range(2)]


def test_full_frames_equal_read_bracket(scene_paths):
    dataset = BracketDataset(scene_paths)
    assert len(dataset) == 2
    sample = dataset[1]
    expected = read_bracket(scene_paths[1])
    assert torch.equal(sample["ldr"], expected.ldr) and torch.equal(sample["gt"], expected.gt)
    assert int(sample["ref"]) == 1 and sample["name"] == "s1"


def test_centre_crop_is_the_middle_window(scene_paths):
    full = read_bracket(scene_paths[0])
    sample = BracketDataset(scene_paths, crop_size=(6, 8))[0]
    # (12 - 6) // 2 = 3 rows and (16 - 8) // 2 = 4 columns from the top-left corner
    assert torch.equal(sample["ldr"], full.ldr[:, :, 3:9, 4:12])
    assert torch.equal(sample["gt"], full.gt[:, 3:9, 4:12])
    assert (
        sample["ldr"].is_contiguous()
        and sample["ldr"].untyped_storage().nbytes() == 3 * 3 * 6 * 8 * 4
    )


def _crop_origin(full: torch.Tensor, crop: torch.Tensor) -> tuple[int, int]:
    h, w = crop.shape[-2:]
    for top in range(full.shape[-2] - h + 1):
        for left in range(full.shape[-1] - w + 1):
            if torch.equal(full[..., top : top + h, left : left + w], crop):
                return top, left
    raise AssertionError("crop not found in the frames")


def test_random_crops_are_windows_of_the_scene_and_repeat_with_the_seed(scene_paths):
    full = read_bracket(scene_paths[0])
    a = BracketDataset(scene_paths, crop_size=5, train=True, seed=7)
    b = BracketDataset(scene_paths, crop_size=5, train=True, seed=7)
    c = BracketDataset(scene_paths, crop_size=5, train=True, seed=8)
    origins_a = [_crop_origin(full.ldr, a[0]["ldr"]) for _ in range(6)]
    origins_b = [_crop_origin(full.ldr, b[0]["ldr"]) for _ in range(6)]
    origins_c = [_crop_origin(full.ldr, c[0]["ldr"]) for _ in range(6)]
    assert origins_a == origins_b
    assert origins_a != origins_c
    assert len(set(origins_a)) > 1  # successive draws move
    sample = a[0]
    top, left = _crop_origin(full.ldr, sample["ldr"])
    assert torch.equal(sample["gt"], full.gt[:, top : top + 5, left : left + 5])


def test_worker_crops_repeat_with_the_global_seed_and_change_with_it(scene_paths):
    dataset = BracketDataset(scene_paths * 2, crop_size=5, train=True, seed=3)

    def crops(torch_seed: int) -> torch.Tensor:
        torch.manual_seed(torch_seed)
        loader = DataLoader(dataset, batch_size=4, num_workers=1)
        return next(iter(loader))["ldr"]

    first = crops(11)
    assert torch.equal(first, crops(11))
    assert not torch.equal(first, crops(12))


def test_crop_larger_than_the_scene_is_an_error(scene_paths):
    with pytest.raises(HDRZooError, match="larger than scene"):
        BracketDataset(scene_paths, crop_size=(13, 4))[0]
    with pytest.raises(HDRZooError, match="crop_size"):
        BracketDataset(scene_paths, crop_size=0)
    with pytest.raises(HDRZooError, match="no scenes"):
        BracketDataset([])


def test_dataloader_batches_follow_the_contract(scene_paths):
    dataset = BracketDataset(scene_paths, crop_size=8, train=True, cache_in_memory=True)
    batch = next(iter(DataLoader(dataset, batch_size=2, shuffle=False)))
    assert batch["ldr"].shape == (2, 3, 3, 8, 8) and batch["gt"].shape == (2, 3, 8, 8)
    assert batch["exposures"].tolist() == [[1.0, 4.0, 16.0]] * 2
    assert batch["ref"].tolist() == [1, 1] and batch["name"] == ["s0", "s1"]
    assert set(dataset._cache) == {0, 1}


def test_brackets_in_memory_are_accepted(scene_paths):
    bracket = make_bracket(10, 10, seed=3)
    sample = BracketDataset([bracket], crop_size=4)[0]
    assert torch.equal(sample["ldr"], bracket.ldr[:, :, 3:7, 3:7])


# --------------------------------------------------------------------------------------------
# Patch cache
# --------------------------------------------------------------------------------------------


@pytest.fixture
def big_scenes(tmp_path) -> list[Path]:
    return [
        write_bracket(tmp_path / "a", make_bracket(200, 300, seed=1)),
        write_bracket(tmp_path / "b", make_bracket(192, 256, seed=2)),
    ]


def test_extract_patches_counts_positions_and_content(big_scenes, tmp_path):
    cache = extract_patches(big_scenes, tmp_path / "cache")
    # 200 x 300: tops {0, 64} x lefts {0, 64, 128} = 6; 192 x 256: {0, 64} x {0, 64, 128} = 6
    dataset = PatchDataset(cache)
    assert len(dataset) == 12
    index = json.loads((cache / "index.json").read_text())
    assert [tuple(p) for p in index["patches"][:6]] == [
        (0, 0, 0),
        (0, 0, 64),
        (0, 0, 128),
        (0, 64, 0),
        (0, 64, 64),
        (0, 64, 128),
    ]
    full = read_bracket(big_scenes[1])
    sample = dataset[10]  # scene 1, top 64, left 64
    assert sample["name"] == "b_y64_x64"
    assert torch.equal(sample["ldr"], full.ldr[:, :, 64:192, 64:192])
    assert torch.equal(sample["gt"], full.gt[:, 64:192, 64:192])
    assert torch.equal(sample["exposures"], full.exposures) and int(sample["ref"]) == 1
    batch = default_collate([dataset[0], dataset[11]])
    assert batch["ldr"].shape == (2, 3, 3, 128, 128)


def test_extract_patches_is_idempotent_and_rebuilds_on_new_parameters(
    big_scenes, tmp_path, monkeypatch
):
    cache = extract_patches(big_scenes, tmp_path / "cache")
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache should not be rebuilt")

    with monkeypatch.context() as patch:
        patch.setattr(datasets, "read_bracket", no_reading)
        assert extract_patches(big_scenes, tmp_path / "cache") == cache
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == stamps

    extract_patches(big_scenes, cache, stride=128)
    # 200 x 300: {0} x {0, 128} = 2; 192 x 256: {0} x {0, 128} = 2
    assert len(PatchDataset(cache)) == 4
    extract_patches(big_scenes[:1], cache, size=100, stride=100)
    # 200 x 300: {0, 100} x {0, 100, 200} = 6; the second scene's arrays are removed
    assert len(PatchDataset(cache)) == 6
    assert sorted(p.name for p in (cache / "scenes").iterdir()) == ["00000"]


def test_patch_dataset_without_cache_and_too_small_scenes(tmp_path, scene_paths):
    with pytest.raises(HDRZooError, match="extract_patches"):
        PatchDataset(tmp_path / "nothing")
    with pytest.raises(HDRZooError, match="smaller than the patch size"):
        extract_patches(scene_paths, tmp_path / "cache")
    assert not (tmp_path / "cache" / "index.json").exists()


def test_patch_dataset_in_dataloader_workers(big_scenes, tmp_path):
    dataset = PatchDataset(extract_patches(big_scenes, tmp_path / "cache", size=64, stride=64))
    loader = DataLoader(dataset, batch_size=4, num_workers=1)
    total = sum(batch["ldr"].shape[0] for batch in loader)
    # 200 x 300: 3 x 4; 192 x 256: 3 x 4
    assert total == len(dataset) == 24


def test_written_tiffs_are_what_the_cache_stores(big_scenes, tmp_path):
    cache = extract_patches(big_scenes, tmp_path / "cache")
    stored = np.load(cache / "scenes" / "00000" / "ldr.npy")
    codes = tifffile.imread(big_scenes[0] / "ldr_2.tif")
    np.testing.assert_array_equal(
        stored[2], (codes / 65535.0).astype(np.float32).transpose(2, 0, 1)
    )
