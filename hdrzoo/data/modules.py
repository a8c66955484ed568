"""LightningDataModules: the synthetic default and the public HDR deghosting datasets.

Every module is built from typed, JSON-able arguments (LightningCLI reads them from YAML),
returns plain ``DataLoader`` objects without samplers (so Lightning adds a
``DistributedSampler`` under DDP by itself) and augments training batches on the device,
after the transfer, with one :class:`~hdrzoo.data.augment.BracketAugment` shared by all
frames and the ground truth. Batches follow the data contract: ``ldr (B, N, 3, H, W)``,
``exposures (B, N)``, ``ref (B,)``, ``gt (B, 3, H, W)``, ``name`` (list of str).

Examples:
    >>> dm = SyntheticDataModule(train_size=8, crop_size=32)
    >>> dm.setup("fit")
    >>> next(iter(dm.train_dataloader()))["ldr"].shape
    torch.Size([4, 3, 3, 32, 32])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import lightning as L
from torch.utils.data import DataLoader, Dataset

from hdrzoo.data.augment import BracketAugment
from hdrzoo.data.synthetic import SyntheticConfig, SyntheticDataset
from hdrzoo.errors import HDRZooError

__all__ = [
    "VAL_SEED_OFFSET",
    "TEST_SEED_OFFSET",
    "SyntheticDataModule",
    "Kalantari17DataModule",
    "Challenge123DataModule",
    "Tel23DataModule",
    "NTIREDataModule",
]

VAL_SEED_OFFSET = 1_000_000
"""Seed of the first synthetic validation bracket: disjoint from any training seed below it."""

TEST_SEED_OFFSET = 2_000_000
"""Seed of the first synthetic test bracket (the demo scene uses 10,000,000 + seed)."""


def _positive(name: str, value: int, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise HDRZooError(f"{name} must be an integer {bound}, got {value!r}")
    return value


class _BracketDataModule(L.LightningDataModule):
    """Loaders and the on-device augmentation shared by every hdrzoo DataModule."""

    def __init__(
        self,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int,
        pin_memory: bool,
        augment: bool,
        permute_channels: bool,
        square_crops: bool,
    ) -> None:
        super().__init__()
        self.batch_size = _positive("batch_size", batch_size)
        self.eval_batch_size = _positive("eval_batch_size", eval_batch_size)
        self.num_workers = _positive("num_workers", num_workers, allow_zero=True)
        self.pin_memory = bool(pin_memory)
        # quarter turns only where every training crop is square (BracketAugment requires it)
        self.augmentation = (
            BracketAugment(rot90=square_crops, permute_channels=permute_channels)
            if augment
            else None
        )
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def _loader(self, dataset: Dataset | None, train: bool, stage: str) -> DataLoader:
        if dataset is None:
            raise HDRZooError(
                f"{type(self).__name__}: no {stage} data; call setup() first "
                "(the Trainer does this for you)"
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, "training")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, "validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False, "test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False, "prediction")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device (never validation, test or prediction)."""
        trainer = getattr(self, "trainer", None)
        if self.augmentation is not None and trainer is not None and trainer.training:
            batch = self.augmentation(batch)
        return batch


# ----------------------------------------------------------------------------- synthetic


class SyntheticDataModule(_BracketDataModule):
    """The embedded default: synthetic brackets made on the fly (no download, no disk).

    Training item ``i`` is ``synthesize(seed + i)`` at ``crop_size``; validation and test
    items are ``synthesize(val_seed + i)`` and ``synthesize(test_seed + i)`` at
    ``eval_size``, seeds disjoint from every training seed, and identical whatever
    ``seed`` is, so runs with different seeds are scored on the same brackets. Training
    items are the same every epoch; augmentation (flips, quarter turns) varies them.

    Args:
        train_size: number of (virtual) training brackets.
        val_size: number of validation brackets.
        test_size: number of test (and prediction) brackets.
        crop_size: side of the square training brackets, pixels.
        eval_size: side of the square validation / test brackets, pixels.
        batch_size: training batch size.
        eval_batch_size: validation / test batch size.
        num_workers: DataLoader workers (0: generate in the main process).
        seed: seed of training item 0.
        val_seed: seed of validation item 0.
        test_seed: seed of test item 0.
        radiance: ``"assets"`` (the packaged panoramas), ``"procedural"``, a path to a
            ``.hdr`` / ``.exr`` radiance map, a folder of such maps (e.g. your own
            collection: one is drawn per sample), or a list of these (a list of files
            restricts training to those maps). None: ``synthetic["radiance"]`` if given,
            else ``"assets"``.
        n_frames: frames per bracket (ignored when ``evs`` is given).
        evs: explicit exposure values per frame, ascending (e.g. ``[-2, 0, 2]``).
        ref: reference frame index; None: the middle frame.
        bit_depth: 8 or 16.
        synthetic: any other :class:`~hdrzoo.data.synthetic.SyntheticConfig` fields, e.g.
            ``{"object_speed": [20, 80], "crf": "s-curve"}``.
        augment: random flips and quarter turns of training batches.
        permute_channels: also shuffle RGB in the augmentation.
        pin_memory: pin host memory in the DataLoaders (GPU training).
    """

    def __init__(
        self,
        train_size: int = 2000,
        val_size: int = 8,
        test_size: int = 16,
        crop_size: int = 128,
        eval_size: int = 256,
        batch_size: int = 4,
        eval_batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        val_seed: int = VAL_SEED_OFFSET,
        test_seed: int = TEST_SEED_OFFSET,
        radiance: str | list[str] | None = None,
        n_frames: int = 3,
        evs: list[float] | None = None,
        ref: int | None = None,
        bit_depth: int = 16,
        synthetic: dict[str, Any] | None = None,
        augment: bool = True,
        permute_channels: bool = False,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, num_workers, pin_memory, augment, permute_channels, True
        )
        self.save_hyperparameters()
        self.train_size = _positive("train_size", train_size, allow_zero=True)
        self.val_size = _positive("val_size", val_size, allow_zero=True)
        self.test_size = _positive("test_size", test_size, allow_zero=True)
        self.crop_size = _positive("crop_size", crop_size)
        self.eval_size = _positive("eval_size", eval_size)
        self.seed = _positive("seed", seed, allow_zero=True)
        self.val_seed = _positive("val_seed", val_seed, allow_zero=True)
        self.test_seed = _positive("test_seed", test_seed, allow_zero=True)
        ranges = {
            "training": (self.seed, self.seed + self.train_size),
            "validation": (self.val_seed, self.val_seed + self.val_size),
            "test": (self.test_seed, self.test_seed + self.test_size),
        }
        names = list(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                (a0, a1), (b0, b1) = ranges[a], ranges[b]
                if a0 < b1 and b0 < a1:
                    raise HDRZooError(
                        f"SyntheticDataModule: {a} seeds [{a0}, {a1}) overlap {b} seeds "
                        f"[{b0}, {b1}); move seed / val_seed / test_seed apart"
                    )
        options = dict(synthetic or {})
        options.update(n_frames=n_frames, ref=ref, bit_depth=bit_depth)
        if radiance is not None:
            options["radiance"] = radiance
        if evs is not None:
            options["evs"] = tuple(evs)
        try:
            self.config = SyntheticConfig(**options)
        except TypeError as err:
            raise HDRZooError(
                f"SyntheticDataModule: bad synthetic options {sorted(synthetic or {})} ({err}); "
                "use SyntheticConfig field names"
            ) from err

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_set = SyntheticDataset(
                self.train_size, self.config, self.seed, self.crop_size
            )
        if stage in (None, "fit", "validate"):
            self.val_set = SyntheticDataset(
                self.val_size, self.config, self.val_seed, self.eval_size
            )
        if stage in (None, "test", "predict"):
            self.test_set = SyntheticDataset(
                self.test_size, self.config, self.test_seed, self.eval_size
            )


# ----------------------------------------------------------------------------- real datasets


class _SceneDataModule(_BracketDataModule):
    """A dataset on disk in one of the layouts ``hdrzoo.data.datasets.discover_scenes`` knows.

    Args:
        root: dataset root, holding ``Training`` / ``Test`` (and optionally ``Validation``)
            folders; without a validation folder the test split validates (as the papers do).
        crop_size: side of the random square training crops (None: whole frames, batch 1).
        eval_crop_size: side of the centre crops for validation / test (None: whole frames).
        batch_size: training batch size.
        eval_batch_size: validation / test batch size.
        num_workers: DataLoader workers.
        divisor: 16-bit divisor: 65535 (default) or 65536 (the official SAFNet evaluation).
        patch_cache: folder for an offline cache of training patches (``patch_size``
            every ``patch_stride`` pixels, built once in ``prepare_data``); training then
            reads those patches instead of random crops.
        patch_size: patch side for the cache.
        patch_stride: patch stride for the cache.
        cache_in_memory: keep decoded scenes in memory (per worker process).
        ref: reference frame override (None: the layout's reference).
        seed: seed of the random training crops.
        augment: random flips and quarter turns of training batches (quarter turns only
            with square crops or patches).
        permute_channels: also shuffle RGB in the augmentation.
        pin_memory: pin host memory in the DataLoaders (GPU training).
    """

    dataset: ClassVar[str] = ""
    expected_layout: ClassVar[str] = ""

    def __init__(
        self,
        root: str,
        crop_size: int | None = 128,
        eval_crop_size: int | None = None,
        batch_size: int = 4,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        divisor: int = 65535,
        patch_cache: str | None = None,
        patch_size: int = 128,
        patch_stride: int = 64,
        cache_in_memory: bool = False,
        ref: int | None = None,
        seed: int = 0,
        augment: bool = True,
        permute_channels: bool = False,
        pin_memory: bool = False,
    ) -> None:
        square = patch_cache is not None or crop_size is not None
        super().__init__(
            batch_size, eval_batch_size, num_workers, pin_memory, augment, permute_channels, square
        )
        self.save_hyperparameters()
        self.root = Path(root)
        self.crop_size = None if crop_size is None else _positive("crop_size", crop_size)
        self.eval_crop_size = (
            None if eval_crop_size is None else _positive("eval_crop_size", eval_crop_size)
        )
        self.divisor = _positive("divisor", divisor)
        self.patch_cache = None if patch_cache is None else Path(patch_cache)
        self.patch_size = _positive("patch_size", patch_size)
        self.patch_stride = _positive("patch_stride", patch_stride)
        self.cache_in_memory = bool(cache_in_memory)
        self.ref = ref
        self.seed = _positive("seed", seed, allow_zero=True)

    def _scenes(self, split: str) -> list[Path]:
        from hdrzoo.data.datasets import discover_scenes

        if not self.root.is_dir():
            raise HDRZooError(
                f"{type(self).__name__}: dataset root {self.root} does not exist. Put the "
                f"{self.dataset} data there ({self.expected_layout}), or pass root=<folder>"
            )
        return discover_scenes(self.root, self.dataset, split)

    def _evaluation_set(self, split: str) -> Dataset:
        from hdrzoo.data.datasets import BracketDataset

        return BracketDataset(
            self._scenes(split),
            divisor=self.divisor,
            crop_size=self.eval_crop_size,
            train=False,
            ref=self.ref,
            cache_in_memory=self.cache_in_memory,
        )

    def prepare_data(self) -> None:
        """Build the patch cache once per node (rank 0), if one is configured."""
        if self.patch_cache is not None:
            from hdrzoo.data.datasets import extract_patches

            extract_patches(
                self._scenes("train"),
                self.patch_cache,
                size=self.patch_size,
                stride=self.patch_stride,
                divisor=self.divisor,
            )

    def setup(self, stage: str | None = None) -> None:
        from hdrzoo.data.datasets import BracketDataset, PatchDataset

        if stage in (None, "fit"):
            if self.patch_cache is not None:
                self.train_set = PatchDataset(self.patch_cache)
            else:
                self.train_set = BracketDataset(
                    self._scenes("train"),
                    divisor=self.divisor,
                    crop_size=self.crop_size,
                    train=True,
                    ref=self.ref,
                    seed=self.seed,
                    cache_in_memory=self.cache_in_memory,
                )
        if stage in (None, "fit", "validate"):
            self.val_set = self._evaluation_set("val")
        if stage in (None, "test", "predict"):
            self.test_set = self._evaluation_set("test")


class Kalantari17DataModule(_SceneDataModule):
    """Kalantari & Ramamoorthi 2017 (SIGGRAPH): 74 training and 15 test scenes, 1000 x 1500.

    Layout under ``root``: ``Training/001..074/`` and ``Test/`` (flat ``001..015`` or nested
    ``EXTRA/001..010`` + ``PAPER/...``), each scene 3 x 16-bit ``.tif``, ``exposure.txt``,
    ``HDRImg.hdr``; reference = the middle frame. SAFNet configs set ``divisor: 65536``.
    """

    dataset = "kalantari17"
    expected_layout = (
        "Training/001/ and Test/001/ (or Test/EXTRA, Test/PAPER), each with 3 x 16-bit .tif, "
        "exposure.txt and HDRImg.hdr"
    )


class Tel23DataModule(_SceneDataModule):
    """Tel et al. 2023 (SCTNet, ICCV): Kalantari-like scene folders (tif frames, a .txt of
    EVs, an .hdr / .exr ground truth) under ``Training`` and ``Test``."""

    dataset = "tel23"
    expected_layout = (
        "Training/<scene>/ and Test/<scene>/, each with >= 2 .tif frames, one .txt of EVs "
        "and one .hdr/.exr ground truth"
    )


class NTIREDataModule(_SceneDataModule):
    """NTIRE 2021/22 multi-frame HDR: ``{id}_short/medium/long.png`` (8-bit),
    ``{id}_exposures.npy``, ``{id}_gt.png`` + ``{id}_alignratio.npy``; reference = medium.
    Split folders ``Training`` / ``Validation`` / ``Test`` (or ``train`` / ``val`` / ``test``)."""

    dataset = "ntire"
    expected_layout = (
        "Training/ and Validation/ (or Test/) holding {id}_short.png, {id}_medium.png, "
        "{id}_long.png, {id}_exposures.npy, {id}_gt.png, {id}_alignratio.npy"
    )


class Challenge123DataModule(_SceneDataModule):
    """Challenge123 (Kong et al., SAFNet, ECCV 2024): 96 training and 27 test scenes with
    large motion.

    Layout under ``root``: ``Training/`` and ``Test/``, each scene the three sibling folders
    ``xxx_1/ldr_img_1.tif``, ``xxx_2/`` (``ldr_img_2.tif``, ``exposure.txt``,
    ``hdr_img.hdr``) and ``xxx_3/ldr_img_3.tif``; reference = ``_2``. The authors publish it
    through https://github.com/ltkong218/SAFNet (academic use only).

    Args:
        root: dataset root (see :class:`_SceneDataModule` for the other arguments).
        download: in ``prepare_data``, fetch the dataset from the Hugging Face Hub into
            ``root`` with ``snapshot_download`` when ``root`` does not hold it yet.
        repo_id: Hub dataset repository to download from (no official mirror is known to
            hdrzoo, so there is no default: give one you trust).
        revision: Hub revision (branch, tag or commit) to download; pin a commit for
            reproducibility.
    """

    dataset = "challenge123"
    expected_layout = (
        "Training/ and Test/, each scene the sibling folders xxx_1/ldr_img_1.tif, "
        "xxx_2/ (ldr_img_2.tif, exposure.txt, hdr_img.hdr) and xxx_3/ldr_img_3.tif; "
        "get it from https://github.com/ltkong218/SAFNet"
    )

    def __init__(
        self,
        root: str,
        crop_size: int | None = 128,
        eval_crop_size: int | None = None,
        batch_size: int = 4,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        divisor: int = 65535,
        patch_cache: str | None = None,
        patch_size: int = 128,
        patch_stride: int = 64,
        cache_in_memory: bool = False,
        ref: int | None = None,
        seed: int = 0,
        augment: bool = True,
        permute_channels: bool = False,
        pin_memory: bool = False,
        download: bool = False,
        repo_id: str | None = None,
        revision: str | None = None,
    ) -> None:
        super().__init__(
            root,
            crop_size=crop_size,
            eval_crop_size=eval_crop_size,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            divisor=divisor,
            patch_cache=patch_cache,
            patch_size=patch_size,
            patch_stride=patch_stride,
            cache_in_memory=cache_in_memory,
            ref=ref,
            seed=seed,
            augment=augment,
            permute_channels=permute_channels,
            pin_memory=pin_memory,
        )
        self.save_hyperparameters()
        self.download = bool(download)
        self.repo_id = repo_id
        self.revision = revision
        if self.download and not self.repo_id:
            raise HDRZooError(
                "Challenge123DataModule(download=True) needs repo_id=<Hub dataset repository>; "
                f"no official Hub mirror is known. Otherwise put the data at {self.root} "
                f"({self.expected_layout})"
            )

    def _is_present(self) -> bool:
        try:
            self._scenes("train")
            self._scenes("test")
        except HDRZooError:
            return False
        return True

    def prepare_data(self) -> None:
        """Download into ``root`` (once per node) if asked and missing, then build the patch cache."""
        if self.download and not self._is_present():
            self._download()
        super().prepare_data()

    def _download(self) -> None:
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(
                repo_id=self.repo_id,
                repo_type="dataset",
                revision=self.revision,
                local_dir=str(self.root),
            )
        except Exception as err:  # offline, unknown repo, HTTP and disk errors alike
            raise HDRZooError(
                f"could not download Challenge123 from the Hugging Face Hub repository "
                f"{self.repo_id!r} ({type(err).__name__}: {err}). If you are offline or the "
                f"repository is not reachable, put the data at {self.root} yourself "
                f"({self.expected_layout}) and run with download=False"
            ) from err
        if not self._is_present():
            raise HDRZooError(
                f"downloaded {self.repo_id!r} into {self.root}, but it does not hold Challenge123 "
                f"in the expected layout ({self.expected_layout})"
            )
