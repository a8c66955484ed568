"""Writing HDR images, 8-bit pictures, tone-mapped previews and whole brackets, atomically.

Every file goes through :func:`~hdrzoo.io.atomic.atomic_path`; :func:`write_bracket` writes
all the files of a scene or none of them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdrzoo.bracket import Bracket
from hdrzoo.errors import BracketError, WriteError
from hdrzoo.io.atomic import _FileJob, _write_all_or_nothing, atomic_path
from hdrzoo.io.codecs import (
    DEFAULT_DIVISOR,
    HDR_SUFFIXES,
    IMAGE_SUFFIXES,
    _check_divisor,
    _cv2_write,
    _quantise,
    _save_npy,
    _to_hwc_float32,
    _write_hdr_to,
    _write_tiff,
)
from hdrzoo.io.layouts import (
    _EXPOSURE_NAMES,
    _NTIRE_FILE,
    _SCENE_ID,
    SIDECAR,
    _visible_files,
)

# --------------------------------------------------------------------------------------------
# Single images
# --------------------------------------------------------------------------------------------


def write_hdr(path: str | os.PathLike, hdr: torch.Tensor | np.ndarray) -> Path:
    """Write linear HDR ``(3, H, W)`` to ``.exr`` (float32, ZIP) or Radiance ``.hdr``, atomically.

    Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in HDR_SUFFIXES:
        raise WriteError(f"{path}: choose an .exr or .hdr file name for HDR output")
    _to_hwc_float32(hdr, str(path))  # validate before creating any file
    with atomic_path(path) as tmp:
        _write_hdr_to(tmp, hdr, path)
    return path


def write_image(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> Path:
    """Write an 8-bit RGB picture (PNG, or JPEG by extension) atomically through OpenCV.

    Args:
        path: output file ending in ``.png``, ``.jpg`` or ``.jpeg``.
        image: float RGB ``(3, H, W)`` in [0, 1] (values outside are clipped; stored as
            ``round(255 x)``), or uint8 RGB ``(H, W, 3)`` stored as is.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise WriteError(f"{path}: choose a .png or .jpg file name for an 8-bit picture")
    rgb = _picture_as_rgb_uint8(path, image)
    with atomic_path(path) as tmp:
        _cv2_write(tmp, rgb, path)
    return path


def _picture_as_rgb_uint8(path: Path, image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The picture :func:`write_image` was given, checked, as uint8 RGB ``(H, W, 3)``."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise WriteError(
                f"{path}: a uint8 picture must have shape (H, W, 3), got {array.shape}"
            )
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.ndim != 3 or array.shape[0] != 3:
            raise WriteError(
                f"{path}: a float picture must have shape (3, H, W) in [0, 1], got {array.shape}"
            )
        if not np.isfinite(array).all():
            raise WriteError(
                f"{path}: the picture contains NaN or Inf values; refusing to write it"
            )
        scaled = np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0)
        return scaled.astype(np.uint8).transpose(1, 2, 0)
    raise WriteError(
        f"{path}: unsupported picture dtype {array.dtype}; give float (3, H, W) in [0, 1] "
        "or uint8 (H, W, 3)"
    )


def write_preview(
    path: str | os.PathLike,
    hdr: torch.Tensor | np.ndarray,
    method: str = "mu",
    exposure: float = 1.0,
    gamma: float = 2.2,
) -> Path:
    """Write an 8-bit tone-mapped preview of linear HDR, atomically.

    ``"mu"``: ``mu_law(clip(exposure * hdr, 0, 1))``, the curve the papers evaluate on.
    ``"reinhard"``: ``reinhard(hdr, exposure) ** (1 / gamma)``, a display curve that keeps
    highlights above 1.

    Args:
        path: ``.png`` or ``.jpg`` output.
        hdr: linear HDR ``(3, H, W)`` in units where ``t = 1``.
        method: ``"mu"`` or ``"reinhard"``.
        exposure: multiplier applied before the curve (> 0).
        gamma: display gamma of the ``"reinhard"`` preview.

    Returns:
        The path written.
    """
    from hdrzoo.ops.tonemap import mu_law, reinhard

    if method not in ("mu", "reinhard"):
        raise WriteError(f"write_preview: unknown method {method!r}; choose 'mu' or 'reinhard'")
    if not (math.isfinite(exposure) and exposure > 0):
        raise WriteError(f"write_preview: exposure must be a positive number, got {exposure}")
    if not (math.isfinite(gamma) and gamma > 0):
        raise WriteError(f"write_preview: gamma must be a positive number, got {gamma}")
    x = torch.as_tensor(np.asarray(hdr) if not isinstance(hdr, torch.Tensor) else hdr)
    x = x.detach().cpu().to(torch.float64)
    if x.ndim != 3 or x.shape[0] != 3:
        raise WriteError(f"{path}: expected linear HDR of shape (3, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise WriteError(f"{path}: the HDR image contains NaN or Inf values; refusing to write it")
    if method == "mu":
        display = mu_law((x * exposure).clamp(0.0, 1.0))
    else:
        display = reinhard(x, exposure).pow(1.0 / gamma)
    return write_image(path, display)


# --------------------------------------------------------------------------------------------
# write_bracket
# --------------------------------------------------------------------------------------------

_WRITABLE_LAYOUTS = ("kalantari17", "challenge123", "ntire", "generic")


def write_bracket(
    dir: str | os.PathLike,
    bracket: Bracket,
    divisor: int = DEFAULT_DIVISOR,
    *,
    layout: str = "kalantari17",
    gt_format: str = ".hdr",
    name: str | None = None,
    bit_depth: int | None = None,
    image_format: str = ".png",
    overwrite: bool = False,
) -> Path:
    """Write a bracket to disk in a layout :func:`read_bracket` reads back.

    ``"kalantari17"`` (default): ``dir/ldr_0.tif, ldr_1.tif, ...`` (RGB TIFF, deflate),
    ``exposure.txt`` (EVs ``log2 t``, shortest 0), ``HDRImg.hdr`` (or ``.exr``) when the
    bracket has ground truth, and ``hdrzoo.json`` recording ``divisor`` and ``ref`` only when
    they differ from 65535 and ``N // 2``. ``"challenge123"``: ``dir/{name}_1/ldr_img_1.tif``,
    ``dir/{name}_2/`` (frame, ``exposure.txt``, ``hdr_img.hdr``, sidecar), ``dir/{name}_3/``;
    needs 3 frames with ``ref = 1``. ``"ntire"``: ``dir/{name}_short.png`` ... (8-bit),
    ``{name}_exposures.npy`` (EVs), ``{name}_gt.png`` (16-bit) and ``{name}_alignratio.npy``
    with the ground truth scaled back to the medium frame's units; 3 frames, ``ref = 1``.
    ``"generic"``: ``dir/frame_0.png ...`` (``image_format``), ``exposure.txt``,
    ``gt.hdr``/``gt.exr``, sidecar.

    Frames are stored as ``round(ldr * divisor)`` clipped to the uint16 range (``round(ldr *
    255)`` for 8-bit), so a bracket read with the same divisor comes back identical. All files
    are written to temporary names first and renamed only when every one succeeded.

    Args:
        dir: output folder (created if missing; Challenge123: the parent of the triple).
        bracket: the bracket to write.
        divisor: 16-bit scale (>= 1).
        layout: ``"kalantari17"``, ``"challenge123"``, ``"ntire"`` or ``"generic"``.
        gt_format: ``".hdr"`` (RGBE, ~1 % precision) or ``".exr"`` (float32, exact).
        name: scene id for ``"challenge123"`` (default ``"001"``) and ``"ntire"`` (``"0000"``).
        bit_depth: 8 or 16; None: 16 (NTIRE: 8, the only depth it allows).
        image_format: frame format of ``"generic"``: ``".png"``, ``".tif"`` or ``".jpg"`` (8-bit).
        overwrite: replace the scene's files if they exist (stale bracket files of that scene
            are removed); otherwise an existing scene is an error.

    Returns:
        The path naming the scene for :func:`read_bracket`: ``dir``, ``dir/{name}_2`` or
        ``dir/{name}_medium.png``.
    """
    request = _checked_request(
        dir, bracket, divisor, layout, gt_format, name, bit_depth, image_format
    )
    scene = _SCENE_FILES[layout](request)
    _replace_scene(scene, overwrite)
    return scene.path


@dataclass(frozen=True)
class _Request:
    """What :func:`write_bracket` was asked to write, checked."""

    folder: Path
    bracket: Bracket
    divisor: int
    bits: int
    gt_format: str
    name: str | None
    image_format: str
    sidecar: dict[str, Any]  # hdrzoo.json: only the settings a reader cannot infer


@dataclass
class _SceneFiles:
    """The files of one scene on disk and how to write each of them."""

    jobs: list[_FileJob]
    folders: list[Path]  # created if missing
    path: Path  # what read_bracket takes
    ntire_id: str | None = None  # NTIRE scenes share their folder: only this id's files are its


def _checked_request(
    dir: str | os.PathLike,
    bracket: Bracket,
    divisor: int,
    layout: str,
    gt_format: str,
    name: str | None,
    bit_depth: int | None,
    image_format: str,
) -> _Request:
    """The arguments of :func:`write_bracket`, checked in a fixed order: the first problem wins."""
    if not isinstance(bracket, Bracket):
        raise WriteError(f"write_bracket needs a hdrzoo.Bracket, got {type(bracket).__name__}")
    try:
        _check_divisor(divisor)
    except BracketError as err:
        raise WriteError(str(err)) from err
    _check_writable_layout(layout)
    if gt_format not in HDR_SUFFIXES:
        raise WriteError(f"write_bracket: gt_format must be '.hdr' or '.exr', got {gt_format!r}")
    bits = bit_depth if bit_depth is not None else (8 if layout == "ntire" else 16)
    if bits not in (8, 16):
        raise WriteError(f"write_bracket: bit_depth must be 8 or 16, got {bit_depth!r}")
    folder = Path(dir)
    n = bracket.num_frames
    if layout in ("challenge123", "ntire") and (n != 3 or bracket.ref != 1):
        raise WriteError(
            f"write_bracket: the {layout} layout holds 3 frames with the middle one as "
            f"reference; this bracket has {n} frames and ref = {bracket.ref}"
        )
    sidecar = _sidecar_settings(bracket, layout, divisor, bits)
    return _Request(folder, bracket, divisor, bits, gt_format, name, image_format, sidecar)


def _check_writable_layout(layout: str) -> None:
    if layout not in _WRITABLE_LAYOUTS:
        hint = (
            " (tel23 scenes are Kalantari-like: write layout='kalantari17')"
            if layout == "tel23"
            else ""
        )
        raise WriteError(f"write_bracket: cannot write layout {layout!r}{hint}")


def _sidecar_settings(bracket: Bracket, layout: str, divisor: int, bits: int) -> dict[str, Any]:
    """``divisor`` and ``ref`` where they differ from what a reader of ``layout`` assumes."""
    default_ref = 1 if layout in ("challenge123", "ntire") else bracket.num_frames // 2
    sidecar: dict[str, Any] = {}
    if divisor != DEFAULT_DIVISOR and bits == 16:
        sidecar["divisor"] = divisor
    if bracket.ref != default_ref:
        sidecar["ref"] = bracket.ref
    return sidecar


# One function per layout: the scene's files, in the order they are written.


def _kalantari_files(request: _Request) -> _SceneFiles:
    folder, bracket = request.folder, request.bracket
    width = len(str(bracket.num_frames - 1))
    jobs = [
        _tiff_job(folder / f"ldr_{i:0{width}d}.tif", request, i) for i in range(bracket.num_frames)
    ]
    jobs.append(_text_job(folder / "exposure.txt", _ev_text(bracket)))
    if bracket.gt is not None:
        jobs.append(_gt_job(folder / f"HDRImg{request.gt_format}", bracket))
    jobs += _sidecar_jobs(folder, request)
    return _SceneFiles(jobs, [folder], folder)


def _generic_files(request: _Request) -> _SceneFiles:
    image_format = request.image_format
    if image_format not in (".png", ".tif", ".jpg"):
        raise WriteError(
            f"write_bracket: image_format must be .png, .tif or .jpg, got {image_format!r}"
        )
    if image_format == ".jpg" and request.bits != 8:
        raise WriteError("write_bracket: JPEG frames are 8-bit; pass bit_depth=8")
    folder, bracket = request.folder, request.bracket
    width = len(str(bracket.num_frames - 1))
    jobs = []
    for i in range(bracket.num_frames):
        target = folder / f"frame_{i:0{width}d}{image_format}"
        if image_format == ".tif":
            jobs.append(_tiff_job(target, request, i))
        else:
            rgb = _quantise(bracket.ldr[i], request.divisor, request.bits)
            jobs.append(_cv2_job(target, rgb))
    jobs.append(_text_job(folder / "exposure.txt", _ev_text(bracket)))
    if bracket.gt is not None:
        jobs.append(_gt_job(folder / f"gt{request.gt_format}", bracket))
    jobs += _sidecar_jobs(folder, request)
    return _SceneFiles(jobs, [folder], folder)


def _challenge_files(request: _Request) -> _SceneFiles:
    bracket = request.bracket
    stem = _scene_id(request.name, "001")
    folders = [request.folder / f"{stem}_{k}" for k in (1, 2, 3)]
    jobs = [_tiff_job(sub / f"ldr_img_{i + 1}.tif", request, i) for i, sub in enumerate(folders)]
    # The `_2` folder holds the exposures, the ground truth and the sidecar: it names the scene.
    jobs.append(_text_job(folders[1] / "exposure.txt", _ev_text(bracket)))
    if bracket.gt is not None:
        jobs.append(_gt_job(folders[1] / f"hdr_img{request.gt_format}", bracket))
    jobs += _sidecar_jobs(folders[1], request)
    return _SceneFiles(jobs, folders, folders[1])


def _ntire_files(request: _Request) -> _SceneFiles:
    if request.bits != 8:
        raise WriteError("write_bracket: NTIRE frames are 8-bit PNG; leave bit_depth at 8")
    if request.sidecar:
        raise WriteError(
            f"write_bracket: the ntire layout has no sidecar for {sorted(request.sidecar)}; "
            "NTIRE frames are 8-bit and the reference is the medium frame"
        )
    folder, bracket = request.folder, request.bracket
    stem = _scene_id(request.name, "0000")
    jobs = [
        _cv2_job(folder / f"{stem}_{kind}.png", _quantise(bracket.ldr[i], request.divisor, 8))
        for i, kind in enumerate(("short", "medium", "long"))
    ]
    jobs.append(_npy_job(folder / f"{stem}_exposures.npy", np.asarray(bracket.evs, np.float64)))
    if bracket.gt is not None:
        png, ratio = _ntire_gt_png_and_align_ratio(bracket)
        jobs.append(_cv2_job(folder / f"{stem}_gt.png", png))
        jobs.append(_npy_job(folder / f"{stem}_alignratio.npy", ratio))
    return _SceneFiles(jobs, [folder], folder / f"{stem}_medium.png", ntire_id=stem)


_SCENE_FILES: dict[str, Callable[[_Request], _SceneFiles]] = {
    "kalantari17": _kalantari_files,
    "challenge123": _challenge_files,
    "ntire": _ntire_files,
    "generic": _generic_files,
}


def _ntire_gt_png_and_align_ratio(bracket: Bracket) -> tuple[np.ndarray, np.float32]:
    """NTIRE's encoding of the ground truth: uint16 RGB ``(H, W, 3)`` and its align ratio."""
    assert bracket.gt is not None
    # Back to NTIRE's units (the medium frame's), then its own 16-bit encoding.
    gt = bracket.gt.detach().cpu().numpy().astype(np.float64) * float(bracket.exposures[1])
    peak = float(gt.max())
    ratio = np.float32(65535.0 / peak if peak > 0 else 1.0)
    png = np.clip(np.rint(gt * float(ratio)), 0, 65535).astype(np.uint16).transpose(1, 2, 0)
    return png, ratio


def _scene_id(name: str | None, default: str) -> str:
    """The checked scene id used in file or folder names (``name``, or ``default``)."""
    stem = default if name is None else name
    if not _SCENE_ID.fullmatch(stem):
        raise WriteError(
            f"write_bracket: scene name {stem!r} must be letters, digits, '.', '_' or '-'"
        )
    return stem


def _ev_text(bracket: Bracket) -> str:
    return "".join(f"{ev!r}\n" for ev in bracket.evs)


# Jobs: each encodes its content now and writes it when given a (temporary) path.


def _tiff_job(target: Path, request: _Request, index: int) -> _FileJob:
    rgb = _quantise(request.bracket.ldr[index], request.divisor, request.bits)
    return target, lambda tmp: _write_tiff(tmp, rgb)


def _cv2_job(target: Path, rgb: np.ndarray) -> _FileJob:
    return target, lambda tmp: _cv2_write(tmp, rgb, target)


def _text_job(target: Path, text: str) -> _FileJob:
    return target, lambda tmp: tmp.write_text(text, encoding="utf-8")


def _npy_job(target: Path, array: np.ndarray) -> _FileJob:
    return target, lambda tmp: _save_npy(tmp, array)


def _gt_job(target: Path, bracket: Bracket) -> _FileJob:
    return target, lambda tmp: _write_hdr_to(tmp, bracket.gt, target)


def _sidecar_jobs(folder: Path, request: _Request) -> list[_FileJob]:
    """The ``hdrzoo.json`` job when the request needs a sidecar, else none."""
    if not request.sidecar:
        return []
    return [_text_job(folder / SIDECAR, json.dumps(request.sidecar) + "\n")]


# Putting the files in place.


def _replace_scene(scene: _SceneFiles, overwrite: bool) -> None:
    """Write the scene's files; with ``overwrite``, remove the old scene files not rewritten."""
    stale = _existing_scene_files(scene.folders, scene.ntire_id)
    if stale and not overwrite:
        shown = ", ".join(str(p) for p in stale[:5])
        raise WriteError(
            f"write_bracket: {shown} already exist(s); pass overwrite=True or choose an empty folder"
        )
    targets = {target for target, _ in scene.jobs}
    _write_all_or_nothing(scene.jobs, scene.folders)
    for path in stale:
        if path not in targets:
            path.unlink(missing_ok=True)


def _existing_scene_files(folders: list[Path], ntire_id: str | None) -> list[Path]:
    """Files in ``folders`` that belong to a bracket scene (of NTIRE id ``ntire_id`` if given)."""
    found: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in _visible_files(folder):
            if ntire_id is not None:
                match = _NTIRE_FILE.fullmatch(path.name)
                if match and match.group(1) == ntire_id:
                    found.append(path)
            elif path.suffix.lower() in (*IMAGE_SUFFIXES, *HDR_SUFFIXES) or path.name.lower() in (
                *_EXPOSURE_NAMES,
                SIDECAR,
            ):
                found.append(path)
    return found
