"""Bracket layouts on disk: their names, how to recognise them, and where the scenes are.

:func:`detect_layout` names the layout of one scene path; :func:`find_scenes` lists every
scene below a dataset folder. Which files make a scene of a given layout is decided by the
planners of :mod:`hdrzoo.io.plans`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from hdrzoo.errors import ReadError
from hdrzoo.io.codecs import HDR_SUFFIXES, IMAGE_SUFFIXES, TIFF_SUFFIXES
from hdrzoo.io.exposures import _exif_exposure_time

LAYOUTS = ("kalantari17", "challenge123", "tel23", "ntire", "generic")
SIDECAR = "hdrzoo.json"
NTIRE_GAMMA = 2.24
"""The gamma the NTIRE challenges used to simulate and align their frames."""

_EXPOSURE_NAMES = ("exposure.txt", "exposures.txt")
_NTIRE_FRAME = re.compile(r"(.+)_(short|medium|long)\.png")
_NTIRE_FILE = re.compile(r"(.+)_(short|medium|long|gt|exposures|alignratio)\.(png|npy)")
_CHALLENGE_FOLDER = re.compile(r"(.+)_([123])")
_SCENE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_LAYOUT_HELP = {
    "kalantari17": "one folder with 3 x 16-bit .tif frames, exposure.txt and HDRImg.hdr",
    "challenge123": (
        "sibling folders xxx_1/ldr_img_1.tif, xxx_2/ldr_img_2.tif + exposure.txt + hdr_img.hdr, "
        "xxx_3/ldr_img_3.tif (pass any of the three folders)"
    ),
    "tel23": "one folder with >= 2 .tif frames, one .txt of EVs and one .hdr/.exr ground truth",
    "ntire": (
        "{id}_short.png, {id}_medium.png, {id}_long.png, {id}_exposures.npy "
        "(+ {id}_gt.png and {id}_alignratio.npy); pass {id}_medium.png or a folder holding one id"
    ),
    "generic": (
        "one folder with >= 2 images (.tif/.png/.jpg, 8 or 16 bit) and exposure.txt "
        "(one EV per line) or EXIF ExposureTime in every frame; optional one .hdr/.exr ground truth"
    ),
}


# --------------------------------------------------------------------------------------------
# Listing a folder
# --------------------------------------------------------------------------------------------


def _visible_files(folder: Path) -> list[Path]:
    """Files of ``folder`` in sorted name order, ignoring hidden ones (temp files, ``._*``)."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as err:
        raise ReadError(f"cannot list folder {folder}: {err.strerror}") from err
    return [p for p in entries if not p.name.startswith(".") and p.is_file()]


def _with_suffix(files: list[Path], suffixes: tuple[str, ...]) -> list[Path]:
    return [p for p in files if p.suffix.lower() in suffixes]


def _named(files: list[Path], *names: str) -> Path | None:
    """The first of ``files`` with one of ``names`` (case-insensitive), or None."""
    lowered = {n.lower() for n in names}
    for p in files:
        if p.name.lower() in lowered:
            return p
    return None


# --------------------------------------------------------------------------------------------
# Recognising each layout
# --------------------------------------------------------------------------------------------


def _challenge_id(folder: Path) -> tuple[str, int] | None:
    """``(id, k)`` of a Challenge123 folder ``{id}_{k}`` holding its frame, or None."""
    match = _CHALLENGE_FOLDER.fullmatch(folder.name)
    if match is None:
        return None
    k = int(match.group(2))
    if not (folder / f"ldr_img_{k}.tif").is_file():
        return None
    return match.group(1), k


def _ntire_ids(files: list[Path]) -> list[str]:
    """Sorted NTIRE scene ids with at least one frame among ``files``."""
    ids = {m.group(1) for p in files if (m := _NTIRE_FRAME.fullmatch(p.name))}
    return sorted(ids)


def _is_kalantari(files: list[Path]) -> bool:
    return (
        len(_with_suffix(files, TIFF_SUFFIXES)) == 3
        and _named(files, "exposure.txt") is not None
        and _named(files, "HDRImg.hdr", "HDRImg.exr") is not None
    )


def _is_tel23(files: list[Path]) -> bool:
    return (
        len(_with_suffix(files, TIFF_SUFFIXES)) >= 2
        and len(_with_suffix(files, (".txt",))) >= 1
        and len(_with_suffix(files, HDR_SUFFIXES)) == 1
    )


def _is_generic(files: list[Path]) -> bool:
    images = _with_suffix(files, IMAGE_SUFFIXES)
    if len(images) < 2:
        return False
    if _named(files, *_EXPOSURE_NAMES) is not None:
        return True
    return all(_exif_exposure_time(p) is not None for p in images)


def _folder_layout(folder: Path, files: list[Path]) -> str | None:
    """The layout of a scene folder, or None (checked in order of specificity)."""
    if _challenge_id(folder) is not None:
        return "challenge123"
    if _ntire_ids(files):
        return "ntire"
    if _is_kalantari(files):
        return "kalantari17"
    if _is_tel23(files):
        return "tel23"
    if _is_generic(files):
        return "generic"
    return None


def _no_layout_error(folder: Path, files: list[Path]) -> ReadError:
    """The error for a folder no layout matches: what it holds and what each layout needs."""
    shown = ", ".join(p.name for p in files[:12]) or "no files"
    if len(files) > 12:
        shown += f", ... ({len(files)} files)"
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != ".")
    if subfolders:
        shown += f"; subfolders: {', '.join(subfolders[:8])}" + (
            ", ..." if len(subfolders) > 8 else ""
        )
        shown += " (to list the scenes below a dataset folder, use hdrzoo.io.find_scenes)"
    expected = "\n".join(f"  {name}: {text}" for name, text in _LAYOUT_HELP.items())
    return ReadError(
        f"{folder} matches no bracket layout. Found: {shown}.\nEach layout expects:\n{expected}\n"
        "Arrange the files like one of these, or pass layout=... to see what is missing."
    )


def detect_layout(path: str | os.PathLike) -> str:
    """The bracket layout of a scene path: one of :data:`LAYOUTS`.

    Args:
        path: a scene folder, one of a Challenge123 triple's folders, or an NTIRE file
            (``{id}_medium.png`` or any ``{id}_*`` file) or folder holding one id.

    Returns:
        The layout name. Raises :class:`~hdrzoo.errors.ReadError` listing what was found and
        what each layout expects when nothing matches.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(
            f"{path} does not exist; pass a scene folder (or an NTIRE {{id}}_medium.png)"
        )
    if path.is_file():
        if _NTIRE_FILE.fullmatch(path.name):
            return "ntire"
        raise ReadError(
            f"{path} is a file; pass the folder holding the bracket (only NTIRE scenes are named "
            "by a file, {id}_medium.png)"
        )
    files = _visible_files(path)
    layout = _folder_layout(path, files)
    if layout is None:
        raise _no_layout_error(path, files)
    return layout


# --------------------------------------------------------------------------------------------
# Scenes below a dataset folder
# --------------------------------------------------------------------------------------------


def find_scenes(root: str | os.PathLike, layout: str | None = None) -> list[Path]:
    """All scenes under ``root`` (searched recursively), sorted by path.

    A scene is named by the path :func:`read_bracket` takes: the scene folder (Kalantari 17
    flat or nested test sets, Tel 23, generic), the ``xxx_2`` folder of a Challenge123 triple,
    or ``{id}_medium.png`` for each NTIRE id. Hidden folders are skipped; a scene folder is not
    searched further.

    Args:
        root: folder to search.
        layout: only scenes of this layout (``"tel23"`` and ``"generic"`` also accept folders
            that are Kalantari 17 scenes, since their readers do); None: every detected scene.

    Returns:
        Sorted list of scene paths (possibly empty).
    """
    root = Path(root)
    if layout is not None and layout not in LAYOUTS:
        raise ReadError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise ReadError(f"{root} is not a folder; pass the root folder of a dataset")
    scenes: list[Path] = []
    for current, dirs, _ in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        folder = Path(current)
        files = _visible_files(folder)
        found = _scenes_in_folder(folder, files, layout)
        scenes.extend(found)
        if found and not (layout == "ntire" or (layout is None and _ntire_ids(files))):
            dirs[:] = []
    return sorted(scenes, key=lambda p: p.as_posix())


def _scenes_in_folder(folder: Path, files: list[Path], layout: str | None) -> list[Path]:
    """The scene paths ``folder`` itself holds (not its subfolders), for ``layout`` or any."""
    challenge = _challenge_id(folder)
    if layout in (None, "challenge123") and challenge is not None:
        # The `_2` folder holds the exposures and the ground truth: it names the scene.
        return [folder] if challenge[1] == 2 else []
    if layout == "challenge123":
        return []
    if layout in (None, "ntire"):
        ids = _ntire_ids(files)
        if ids:
            return [
                folder / f"{i}_medium.png" for i in ids if (folder / f"{i}_medium.png").is_file()
            ]
        if layout == "ntire":
            return []
    checks: dict[str, Callable[[list[Path]], bool]] = {
        "kalantari17": _is_kalantari,
        "tel23": lambda f: _is_kalantari(f) or _is_tel23(f),
        "generic": lambda f: _is_kalantari(f) or _is_tel23(f) or _is_generic(f),
    }
    if layout is None:
        return [folder] if _folder_layout(folder, files) is not None else []
    return [folder] if checks[layout](files) else []
