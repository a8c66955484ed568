"""Planning a read: which files make one scene of a given layout, and how to interpret them.

A planner only lists and checks files (names, presence, counts); nothing is decoded here, so
a scene missing a file is reported before any frame is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hdrzoo.errors import ReadError
from hdrzoo.io.codecs import HDR_SUFFIXES, IMAGE_SUFFIXES, TIFF_SUFFIXES
from hdrzoo.io.layouts import (
    _CHALLENGE_FOLDER,
    _EXPOSURE_NAMES,
    _LAYOUT_HELP,
    _NTIRE_FILE,
    NTIRE_GAMMA,
    SIDECAR,
    _named,
    _ntire_ids,
    _visible_files,
    _with_suffix,
)


@dataclass
class _Plan:
    """Which files make one scene, and how to interpret them."""

    layout: str
    source: Path
    name: str
    frames: list[Path]
    exposure_file: Path | None  # .txt (EVs) or .npy (EVs); None: EXIF ExposureTime
    gt: Path | None
    default_ref: int
    sidecar: Path | None = None
    alignratio: Path | None = None
    expected_bits: int | None = 16
    gamma: float = 2.2


def _require_folder(path: Path, layout: str) -> list[Path]:
    """The visible files of ``path``, which must be a folder for ``layout``."""
    if not path.is_dir():
        raise ReadError(f"{path} is not a folder; a {layout} scene is {_LAYOUT_HELP[layout]}")
    return _visible_files(path)


def _exposure_txt(folder: Path, files: list[Path], layout: str, any_txt: bool = False) -> Path:
    """The scene's EV file: ``exposure.txt`` or, with ``any_txt``, its only ``.txt``."""
    found = _named(files, *_EXPOSURE_NAMES)
    if found is None and any_txt:
        texts = _with_suffix(files, (".txt",))
        if len(texts) == 1:
            found = texts[0]
        elif len(texts) > 1:
            raise ReadError(
                f"{folder}: several .txt files ({', '.join(p.name for p in texts)}) and none "
                "named exposure.txt; name the one holding the EVs exposure.txt"
            )
    if found is None:
        raise ReadError(
            f"{folder}: no exposure.txt; a {layout} scene is {_LAYOUT_HELP[layout]}. "
            "Write exposure.txt with one EV per line, in frame order"
        )
    return found


def _single_gt(folder: Path, files: list[Path], required: bool, layout: str) -> Path | None:
    """The scene's one ``.hdr``/``.exr`` ground truth, or None when absent and not required."""
    gts = _with_suffix(files, HDR_SUFFIXES)
    if len(gts) > 1:
        raise ReadError(
            f"{folder}: several ground-truth candidates ({', '.join(p.name for p in gts)}); "
            "keep exactly one .hdr or .exr in a scene folder"
        )
    if not gts and required:
        raise ReadError(
            f"{folder}: no .hdr/.exr ground truth; a {layout} scene is {_LAYOUT_HELP[layout]}"
        )
    return gts[0] if gts else None


def _plan_kalantari(path: Path) -> _Plan:
    files = _require_folder(path, "kalantari17")
    frames = _with_suffix(files, TIFF_SUFFIXES)
    if len(frames) != 3:
        raise ReadError(
            f"{path}: found {len(frames)} .tif frames ({', '.join(p.name for p in frames) or 'none'}); "
            f"a kalantari17 scene is {_LAYOUT_HELP['kalantari17']}"
        )
    gt = _named(files, "HDRImg.hdr", "HDRImg.exr")
    if gt is None:
        raise ReadError(
            f"{path}: no HDRImg.hdr; a kalantari17 scene is {_LAYOUT_HELP['kalantari17']}"
        )
    return _Plan(
        layout="kalantari17",
        source=path,
        name=path.name,
        frames=frames,
        exposure_file=_exposure_txt(path, files, "kalantari17"),
        gt=gt,
        default_ref=len(frames) // 2,
        sidecar=path / SIDECAR,
    )


def _plan_tel23(path: Path) -> _Plan:
    files = _require_folder(path, "tel23")
    frames = _with_suffix(files, TIFF_SUFFIXES)
    if len(frames) < 2:
        raise ReadError(
            f"{path}: found {len(frames)} .tif frames; a tel23 scene is {_LAYOUT_HELP['tel23']}"
        )
    return _Plan(
        layout="tel23",
        source=path,
        name=path.name,
        frames=frames,
        exposure_file=_exposure_txt(path, files, "tel23", any_txt=True),
        gt=_single_gt(path, files, required=True, layout="tel23"),
        default_ref=len(frames) // 2,
        sidecar=path / SIDECAR,
    )


def _plan_generic(path: Path) -> _Plan:
    files = _require_folder(path, "generic")
    frames = _with_suffix(files, IMAGE_SUFFIXES)
    if len(frames) < 2:
        raise ReadError(
            f"{path}: found {len(frames)} image(s); a generic scene is {_LAYOUT_HELP['generic']}"
        )
    return _Plan(
        layout="generic",
        source=path,
        name=path.name,
        frames=frames,
        exposure_file=_named(files, *_EXPOSURE_NAMES),
        gt=_single_gt(path, files, required=False, layout="generic"),
        default_ref=len(frames) // 2,
        sidecar=path / SIDECAR,
        expected_bits=None,
    )


def _plan_challenge(path: Path) -> _Plan:
    if not path.is_dir():
        raise ReadError(
            f"{path} is not a folder; a challenge123 scene is {_LAYOUT_HELP['challenge123']}"
        )
    match = _CHALLENGE_FOLDER.fullmatch(path.name)
    if match is None:
        raise ReadError(
            f"{path}: a challenge123 scene folder is named xxx_1, xxx_2 or xxx_3 "
            f"({_LAYOUT_HELP['challenge123']})"
        )
    stem = match.group(1)
    folders = [path.parent / f"{stem}_{k}" for k in (1, 2, 3)]
    frames = [folder / f"ldr_img_{k}.tif" for k, folder in zip((1, 2, 3), folders)]
    for frame in frames:
        if not frame.is_file():
            raise ReadError(
                f"{frame} is missing; a challenge123 scene is {_LAYOUT_HELP['challenge123']}"
            )
    ref_folder = folders[1]
    files = _visible_files(ref_folder)
    exposure = _named(files, "exposure.txt")
    if exposure is None:
        raise ReadError(
            f"{ref_folder / 'exposure.txt'} is missing; the _2 folder of a challenge123 scene "
            "holds exposure.txt with the three EVs"
        )
    return _Plan(
        layout="challenge123",
        source=ref_folder,
        name=stem,
        frames=frames,
        exposure_file=exposure,
        gt=_named(files, "hdr_img.hdr", "hdr_img.exr"),
        default_ref=1,
        sidecar=ref_folder / SIDECAR,
    )


def _ntire_folder_and_id(path: Path) -> tuple[Path, str]:
    """The folder and scene id an NTIRE path names: an ``{id}_*`` file, or a one-id folder."""
    if path.is_file():
        match = _NTIRE_FILE.fullmatch(path.name)
        if match is None:
            raise ReadError(f"{path} is not an NTIRE file; pass {{id}}_medium.png")
        return path.parent, match.group(1)
    ids = _ntire_ids(_visible_files(path))
    if len(ids) != 1:
        listed = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise ReadError(
            f"{path} holds {len(ids)} NTIRE scenes ({listed or 'none'}); pass one "
            "{id}_medium.png file to name the scene"
        )
    return path, ids[0]


def _plan_ntire(path: Path) -> _Plan:
    folder, scene_id = _ntire_folder_and_id(path)
    frames = [folder / f"{scene_id}_{k}.png" for k in ("short", "medium", "long")]
    exposures = folder / f"{scene_id}_exposures.npy"
    for needed in [*frames, exposures]:
        if not needed.is_file():
            raise ReadError(f"{needed} is missing; an ntire scene is {_LAYOUT_HELP['ntire']}")
    gt = folder / f"{scene_id}_gt.png"
    ratio = folder / f"{scene_id}_alignratio.npy"
    if gt.is_file() and not ratio.is_file():
        raise ReadError(
            f"{ratio} is missing: {gt.name} is scaled by it (HDR = gt_png / alignratio)"
        )
    return _Plan(
        layout="ntire",
        source=frames[1],
        name=scene_id,
        frames=frames,
        exposure_file=exposures,
        gt=gt if gt.is_file() else None,
        default_ref=1,
        alignratio=ratio if gt.is_file() else None,
        expected_bits=8,
        gamma=NTIRE_GAMMA,
    )


_PLANNERS: dict[str, Callable[[Path], _Plan]] = {
    "kalantari17": _plan_kalantari,
    "challenge123": _plan_challenge,
    "tel23": _plan_tel23,
    "ntire": _plan_ntire,
    "generic": _plan_generic,
}
