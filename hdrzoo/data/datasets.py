"""Scene discovery per dataset layout, a bracket dataset with crops, and an offline patch cache.

Everything yields the data contract of :class:`hdrzoo.Bracket`: ``Bracket.sample()`` dicts
(``ldr`` ``(N, 3, H, W)``, ``exposures`` ``(N,)``, ``ref`` long, ``name``, ``gt`` if known),
which ``torch.utils.data.default_collate`` batches into the dict models take.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from hdrzoo.bracket import Bracket
from hdrzoo.errors import BracketError, HDRZooError
from hdrzoo.io import DEFAULT_DIVISOR, LAYOUTS, atomic_path, find_scenes, read_bracket

__all__ = ["BracketDataset", "PatchDataset", "discover_scenes", "extract_patches"]

SPLITS = ("train", "val", "test")

# Folder names accepted for each split, compared case-insensitively, first match wins.
SPLIT_FOLDERS = {
    "train": ("training", "train"),
    "val": ("validation", "val", "valid"),
    "test": ("test", "testing"),
}

_INDEX = "index.json"
_CACHE_VERSION = 1


def _split_folder(root: Path, split: str) -> Path | None:
    folders = {}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.is_dir() and not entry.name.startswith("."):
            folders.setdefault(entry.name.lower(), entry)
    for candidate in SPLIT_FOLDERS[split]:
        if candidate in folders:
            return folders[candidate]
    return None


def discover_scenes(root: str | os.PathLike, dataset: str, split: str) -> list[Path]:
    """The scenes of one split of a dataset, sorted, as paths :func:`hdrzoo.read_bracket` takes.

    Split folders are looked up under ``root`` case-insensitively: train = ``Training`` or
    ``train``; val = ``Validation``, ``Val`` or ``valid``; test = ``Test`` or ``testing``.
    Kalantari 17 and Challenge123 have no validation split: when no val folder exists, val is
    the test split (the papers validate on it). Scenes are searched recursively, so the
    Kalantari test set may be flat (``Test/001..``) or nested (``Test/EXTRA/001..010``,
    ``Test/PAPER/BarbequeDay..``). A Challenge123 scene is named by its ``xxx_2`` folder, an
    NTIRE scene by ``{id}_medium.png``; Tel 23 and generic accept any folder their readers read.

    Args:
        root: dataset root folder.
        dataset: ``"kalantari17"``, ``"challenge123"``, ``"tel23"``, ``"ntire"`` or ``"generic"``.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        Sorted scene paths; never empty (an empty or missing split raises ``HDRZooError``
        listing what was found).
    """
    if dataset not in LAYOUTS:
        raise HDRZooError(f"unknown dataset {dataset!r}; choose one of {', '.join(LAYOUTS)}")
    if split not in SPLITS:
        raise HDRZooError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise HDRZooError(f"dataset root {root} is not a folder; point it at the {dataset} dataset")
    folder = _split_folder(root, split)
    if folder is None and split == "val":
        folder = _split_folder(root, "test")
    if folder is None:
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        wanted = " or ".join(name.capitalize() for name in SPLIT_FOLDERS[split])
        raise HDRZooError(
            f"{root} has no {split} folder (expected {wanted}); found folders: "
            f"{', '.join(found) or 'none'}"
        )
    scenes = find_scenes(folder, layout=dataset)
    if not scenes:
        entries = sorted(p.name for p in folder.iterdir())[:10]
        raise HDRZooError(
            f"no {dataset} scenes under {folder} (found: {', '.join(entries) or 'nothing'}); "
            "check the dataset name and its layout"
        )
    return scenes


def _crop_hw(crop_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if crop_size is None:
        return None
    size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if len(size) != 2 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size
    ):
        raise HDRZooError(f"crop_size must be a positive int or (height, width), got {crop_size!r}")
    return int(size[0]), int(size[1])


class BracketDataset(Dataset):
    """Brackets read from scene paths, optionally cropped; yields ``Bracket.sample()`` dicts.

    Args:
        scenes: scene paths (as from :func:`discover_scenes`) or :class:`~hdrzoo.Bracket`
            objects.
        divisor: 16-bit divisor passed to :func:`hdrzoo.read_bracket`.
        crop_size: None (whole frames), an int or ``(height, width)``.
        train: random crops when True, centre crops when False.
        ref: reference index override passed to the reader.
        seed: seed of the crop positions. In the main process the crops are a fixed sequence
            for a seed; in DataLoader workers the seed is mixed with the worker's seed (which
            the DataLoader draws from torch's global RNG each epoch), so epochs differ and a
            run seeded with ``torch.manual_seed`` repeats.
        cache_in_memory: keep every bracket read in memory (per process; Kalantari 17 takes
            about 75 MB per scene).
    """

    def __init__(
        self,
        scenes: Sequence[str | os.PathLike | Bracket],
        divisor: int = DEFAULT_DIVISOR,
        crop_size: int | Sequence[int] | None = None,
        train: bool = False,
        ref: int | None = None,
        seed: int = 0,
        cache_in_memory: bool = False,
    ) -> None:
        self.scenes = [s if isinstance(s, Bracket) else Path(s) for s in scenes]
        if not self.scenes:
            raise HDRZooError("BracketDataset: no scenes given; check the dataset root and split")
        self.divisor = divisor
        self.crop_size = _crop_hw(crop_size)
        self.train = bool(train)
        self.ref = ref
        self.seed = int(seed)
        self.cache_in_memory = bool(cache_in_memory)
        self._cache: dict[int, Bracket] = {}
        self._generator: torch.Generator | None = None
        self._generator_key: Any = None

    def __len__(self) -> int:
        return len(self.scenes)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_generator"] = None
        state["_generator_key"] = None
        return state

    def bracket(self, index: int) -> Bracket:
        """The whole (uncropped) bracket of scene ``index``."""
        scene = self.scenes[index]
        if isinstance(scene, Bracket):
            return scene
        if index in self._cache:
            return self._cache[index]
        bracket = read_bracket(scene, divisor=self.divisor, ref=self.ref)
        if self.cache_in_memory:
            self._cache[index] = bracket
        return bracket

    def _rng(self) -> torch.Generator:
        info = get_worker_info()
        key = None if info is None else (info.id, info.seed)
        if self._generator is None or key != self._generator_key:
            seed = self.seed if info is None else hash((self.seed, info.seed)) % (2**63)
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_key = key
        return self._generator

    def crop_box(self, index: int, height: int, width: int) -> tuple[int, int]:
        """``(top, left)`` of the next crop of a ``height x width`` bracket (random when training)."""
        assert self.crop_size is not None
        ch, cw = self.crop_size
        if ch > height or cw > width:
            raise BracketError(
                f"crop_size {ch} x {cw} is larger than scene {self.scenes[index]} "
                f"({height} x {width}); choose a smaller crop_size"
            )
        if not self.train:
            return (height - ch) // 2, (width - cw) // 2
        rng = self._rng()
        top = int(torch.randint(0, height - ch + 1, (1,), generator=rng))
        left = int(torch.randint(0, width - cw + 1, (1,), generator=rng))
        return top, left

    def __getitem__(self, index: int) -> dict[str, Any]:
        bracket = self.bracket(index)
        if self.crop_size is not None:
            top, left = self.crop_box(index, *bracket.size)
            bracket = bracket.crop(top, left, *self.crop_size)
        sample = bracket.sample()
        # Own the memory: a view would pin (and ship to the main process) the whole frames.
        sample["ldr"] = sample["ldr"].clone()
        if "gt" in sample:
            sample["gt"] = sample["gt"].clone()
        return sample


def _patch_signature(scenes: list[Path], size: int, stride: int, divisor: float) -> dict[str, Any]:
    return {
        "version": _CACHE_VERSION,
        "size": size,
        "stride": stride,
        "divisor": divisor,
        "scenes": [str(p.resolve()) for p in scenes],
    }


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def extract_patches(
    scenes: Sequence[str | os.PathLike],
    cache_dir: str | os.PathLike,
    size: int = 128,
    stride: int = 64,
    divisor: int = DEFAULT_DIVISOR,
) -> Path:
    """Build an on-disk patch cache of ``size x size`` crops every ``stride`` pixels.

    Each scene is decoded once and stored as float32 ``.npy`` arrays (``scenes/KKKKK/ldr.npy``
    ``(N, 3, H, W)`` and ``gt.npy`` ``(3, H, W)``) that :class:`PatchDataset` memory-maps;
    ``index.json`` lists the patches ``[scene, top, left]`` with ``top`` in ``range(0, H - size
    + 1, stride)`` (likewise ``left``), so a scene gives ``(floor((H - size) / stride) + 1) x
    (floor((W - size) / stride) + 1)`` patches. Storing scenes rather than patches keeps the
    overlapping pixels once (4x less disk at stride = size / 2).

    Idempotent: when ``index.json`` exists and records the same scenes, size, stride and
    divisor, nothing is read or written. Otherwise the cache is rebuilt, and ``index.json``
    is written last so an interrupted build is never taken for a complete one. Under DDP,
    build it once (rank 0, e.g. in a DataModule's ``prepare_data``) before the ranks read it.

    Args:
        scenes: scene paths (e.g. from :func:`discover_scenes`).
        cache_dir: cache folder (created if missing).
        size: patch side in pixels.
        stride: step between patches in pixels.
        divisor: 16-bit divisor passed to :func:`hdrzoo.read_bracket`.

    Returns:
        ``cache_dir``.
    """
    scenes = [Path(s) for s in scenes]
    if not scenes:
        raise HDRZooError("extract_patches: no scenes given; check the dataset root and split")
    for what, value in (("size", size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise HDRZooError(f"extract_patches: {what} must be a positive int, got {value!r}")
    cache_dir = Path(cache_dir)
    index_path = cache_dir / _INDEX
    signature = _patch_signature(scenes, size, stride, divisor)
    if index_path.is_file():
        try:
            existing = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = None
        if isinstance(existing, dict) and existing.get("signature") == signature:
            return cache_dir
        index_path.unlink()
    try:
        (cache_dir / "scenes").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HDRZooError(f"cannot create patch cache {cache_dir}: {err.strerror}") from err

    entries, patches = [], []
    for k, scene in enumerate(scenes):
        bracket = read_bracket(scene, divisor=divisor)
        height, width = bracket.size
        if height < size or width < size:
            raise HDRZooError(
                f"{scene} is {height} x {width}, smaller than the patch size {size}; "
                "choose a smaller size"
            )
        folder = cache_dir / "scenes" / f"{k:05d}"
        folder.mkdir(exist_ok=True)
        _save_npy_atomic(folder / "ldr.npy", bracket.ldr.numpy())
        if bracket.gt is not None:
            _save_npy_atomic(folder / "gt.npy", bracket.gt.numpy())
        else:
            (folder / "gt.npy").unlink(missing_ok=True)
        entries.append(
            {
                "folder": folder.name,
                "name": bracket.name,
                "exposures": bracket.exposures.tolist(),
                "ref": bracket.ref,
                "height": height,
                "width": width,
                "has_gt": bracket.gt is not None,
            }
        )
        for top in range(0, height - size + 1, stride):
            for left in range(0, width - size + 1, stride):
                patches.append([k, top, left])
    for stale in (cache_dir / "scenes").iterdir():
        if stale.is_dir() and stale.name.isdigit() and int(stale.name) >= len(scenes):
            shutil.rmtree(stale)
    index = {"signature": signature, "scenes": entries, "patches": patches}
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index), encoding="utf-8")
    return cache_dir


class PatchDataset(Dataset):
    """The patches of a cache built by :func:`extract_patches`, as ``Bracket.sample()`` dicts.

    Each sample is ``ldr`` ``(N, 3, size, size)``, the scene's ``exposures`` and ``ref``,
    ``gt`` ``(3, size, size)`` when the scene has one, and ``name`` ``"{scene}_y{top}_x{left}"``.
    Arrays are memory-mapped lazily in each worker.

    Args:
        cache_dir: the folder :func:`extract_patches` returned.
    """

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.cache_dir = Path(cache_dir)
        index_path = self.cache_dir / _INDEX
        if not index_path.is_file():
            raise HDRZooError(
                f"{index_path} does not exist; build the cache with extract_patches(scenes, "
                f"{str(self.cache_dir)!r}) first"
            )
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            self.size = int(index["signature"]["size"])
            self.entries = index["scenes"]
            self.patches = [tuple(p) for p in index["patches"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise HDRZooError(
                f"{index_path} is not a valid patch index ({err}); delete the cache folder and "
                "run extract_patches again"
            ) from err
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def __len__(self) -> int:
        return len(self.patches)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state

    def _scene_arrays(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        if k not in self._arrays:
            folder = self.cache_dir / "scenes" / self.entries[k]["folder"]
            try:
                ldr = np.load(folder / "ldr.npy", mmap_mode="r")
                gt = (
                    np.load(folder / "gt.npy", mmap_mode="r") if self.entries[k]["has_gt"] else None
                )
            except (OSError, ValueError) as err:
                raise HDRZooError(
                    f"patch cache {self.cache_dir} is damaged ({folder}: {err}); delete it and "
                    "run extract_patches again"
                ) from err
            self._arrays[k] = (ldr, gt)
        return self._arrays[k]

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, top, left = self.patches[index]
        ldr, gt = self._scene_arrays(k)
        window = (slice(top, top + self.size), slice(left, left + self.size))
        entry = self.entries[k]
        bracket = Bracket(
            ldr=torch.from_numpy(np.array(ldr[(..., *window)], dtype=np.float32)),
            exposures=torch.tensor(entry["exposures"], dtype=torch.float32),
            ref=entry["ref"],
            gt=None
            if gt is None
            else torch.from_numpy(np.array(gt[(..., *window)], dtype=np.float32)),
            name=f"{entry['name']}_y{top}_x{left}",
        )
        return bracket.sample()
