"""Reading and writing HDR images and brackets.

Codecs come from the field's libraries: OpenEXR for ``.exr`` (float32, exact), OpenCV for
Radiance ``.hdr`` (the decoder the official evaluations use) and for PNG / JPEG, tifffile for
TIFF. Every write is atomic: a temporary file in the target folder, renamed into place.

Bracket layouts (``read_bracket`` detects them, ``write_bracket`` writes them):

========================  ===================================================================
``"kalantari17"``         one folder: 3 x 16-bit ``.tif``, ``exposure.txt``, ``HDRImg.hdr``
``"challenge123"``        sibling folders ``xxx_1/ldr_img_1.tif``, ``xxx_2/ldr_img_2.tif`` +
                          ``exposure.txt`` + ``hdr_img.hdr``, ``xxx_3/ldr_img_3.tif``
``"tel23"``               one folder: >= 2 ``.tif``, one ``.txt`` of EVs, one ``.hdr``/``.exr``
``"ntire"``               ``{id}_short.png``, ``{id}_medium.png``, ``{id}_long.png`` (8-bit),
                          ``{id}_exposures.npy``, optional ``{id}_gt.png`` + ``{id}_alignratio.npy``
``"generic"``             one folder: >= 2 images (tif / png / jpg, 8 or 16 bit) + ``exposure.txt``
                          or EXIF ``ExposureTime``; optional ground truth ``*.hdr`` / ``*.exr``
========================  ===================================================================

All readers follow the conventions of ``DATA.md``: RGB frames (never BGR) as float32 in
[0, 1], 16-bit values divided by ``divisor``, frames in sorted file-name order (NTIRE:
short, medium, long), exposure times ``t = 2 ** (ev - min ev)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdrzoo.bracket import Bracket
from hdrzoo.errors import BracketError, HDRZooError, ReadError, WriteError

__all__ = [
    "DEFAULT_DIVISOR",
    "LAYOUTS",
    "atomic_path",
    "detect_layout",
    "find_scenes",
    "read_bracket",
    "read_hdr",
    "write_bracket",
    "write_hdr",
    "write_image",
    "write_preview",
]

HDR_SUFFIXES = (".hdr", ".exr")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
LAYOUTS = ("kalantari17", "challenge123", "tel23", "ntire", "generic")
DEFAULT_DIVISOR = 65535
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
# Atomic writes and HDR images
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps ``path``'s suffix so that encoders choosing a codec by extension
    work. On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise WriteError(f"cannot write {path}: folder {folder} does not exist; create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder)
    except OSError as err:
        raise WriteError(
            f"cannot write {path}: {err.strerror}; choose a writable output folder"
        ) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _to_hwc_float32(hdr: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    array = hdr.detach().cpu().numpy() if isinstance(hdr, torch.Tensor) else np.asarray(hdr)
    if array.ndim != 3 or array.shape[0] != 3:
        raise WriteError(f"{what}: expected an RGB image of shape (3, H, W), got {array.shape}")
    if not np.isfinite(array).all():
        raise WriteError(f"{what}: the image contains NaN or Inf values; refusing to write it")
    return np.ascontiguousarray(array.transpose(1, 2, 0), dtype=np.float32)


def read_hdr(path: str | os.PathLike) -> torch.Tensor:
    """Read a linear HDR image (``.exr`` or Radiance ``.hdr``) as float32 RGB ``(3, H, W)``.

    ``.hdr`` is decoded by OpenCV, as the official evaluations do: value = mantissa x
    2^(e - 136), without the half-step offset some readers add (about 1 % precision).
    ``.exr`` is read exactly through OpenEXR (half or float channels become float32).
    Truncated or corrupt files raise :class:`~hdrzoo.errors.ReadError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"HDR file {path} does not exist (or is not a file)")
    suffix = path.suffix.lower()
    if suffix == ".exr":
        image = _read_exr(path)
    elif suffix == ".hdr":
        import cv2

        _check_radiance_size(path)
        bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.float32:
            raise ReadError(
                f"{path} is not a readable Radiance RGBE .hdr file (corrupt or truncated?); "
                "re-export or re-download it"
            )
        image = bgr[:, :, ::-1]
    else:
        raise ReadError(f"{path}: unsupported HDR format {suffix!r}; use .exr or .hdr")
    if not np.isfinite(image).all():
        raise ReadError(f"{path} contains NaN or Inf values")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def _check_radiance_size(path: Path) -> None:
    """Reject a Radiance file whose declared size cannot fit in the bytes it has.

    OpenCV allocates the full image from the header before decoding, so a truncated or
    corrupt header could otherwise ask for gigabytes. The bound is loose: every scanline
    takes at least 4 bytes of RLE header plus 2 bytes per run of <= 127 pixels per channel.
    """
    with open(path, "rb") as handle:
        head = handle.read(65536)
    if not (head.startswith(b"#?RADIANCE") or head.startswith(b"#?RGBE")):
        raise ReadError(f"{path} is not a Radiance .hdr file (no '#?RADIANCE' signature)")
    match = re.search(rb"\n\n?[-+][YX] (\d+) [-+][YX] (\d+)\r?\n", head)
    if match is None:
        raise ReadError(f"{path}: Radiance header without a resolution line (truncated?)")
    rows, cols = int(match.group(1)), int(match.group(2))
    min_bytes_per_row = min(4 * cols, 4 + 8 * math.ceil(cols / 127))
    available = path.stat().st_size - match.end()
    if rows == 0 or cols == 0 or available < rows * min_bytes_per_row:
        raise ReadError(
            f"{path} declares {rows} x {cols} pixels but holds only {available} bytes of pixel "
            "data: the file is truncated or corrupt; re-export or re-download it"
        )


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        with OpenEXR.File(str(path)) as exr:
            channels = exr.channels()
            if "RGB" in channels:
                rgb = channels["RGB"].pixels
            elif all(c in channels for c in "RGB"):
                rgb = np.stack([channels[c].pixels for c in "RGB"], axis=-1)
            elif "RGBA" in channels:
                rgb = channels["RGBA"].pixels[..., :3]
            else:
                raise ReadError(
                    f"{path}: no R, G, B channels (found {sorted(channels)}); hdrzoo needs an RGB EXR"
                )
            return np.asarray(rgb, dtype=np.float32)
    except ReadError:
        raise
    except Exception as err:  # OpenEXR raises bare exceptions for corrupt files
        raise ReadError(f"{path} is not a readable OpenEXR file ({err}); is it truncated?") from err


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


def _write_hdr_to(tmp: Path, hdr: torch.Tensor | np.ndarray | None, target: Path) -> None:
    """Encode ``hdr`` into ``tmp`` with the codec ``target``'s suffix names."""
    assert hdr is not None
    image = _to_hwc_float32(hdr, str(target))
    if target.suffix.lower() == ".exr":
        import OpenEXR

        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, {"RGB": image}) as exr:
            exr.write(str(tmp))
    else:
        _cv2_write(tmp, image, target)


# --------------------------------------------------------------------------------------------
# 8-bit pictures
# --------------------------------------------------------------------------------------------


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
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise WriteError(
                f"{path}: a uint8 picture must have shape (H, W, 3), got {array.shape}"
            )
        rgb = array
    elif np.issubdtype(array.dtype, np.floating):
        if array.ndim != 3 or array.shape[0] != 3:
            raise WriteError(
                f"{path}: a float picture must have shape (3, H, W) in [0, 1], got {array.shape}"
            )
        if not np.isfinite(array).all():
            raise WriteError(
                f"{path}: the picture contains NaN or Inf values; refusing to write it"
            )
        scaled = np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0)
        rgb = scaled.astype(np.uint8).transpose(1, 2, 0)
    else:
        raise WriteError(
            f"{path}: unsupported picture dtype {array.dtype}; give float (3, H, W) in [0, 1] "
            "or uint8 (H, W, 3)"
        )
    with atomic_path(path) as tmp:
        _cv2_write(tmp, rgb, path)
    return path


def _cv2_write(tmp: Path, rgb: np.ndarray, target: Path) -> None:
    import cv2

    try:
        ok = cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[:, :, ::-1]))
    except cv2.error as err:
        raise WriteError(f"OpenCV could not encode {target}: {err}") from err
    if not ok:
        raise WriteError(f"OpenCV could not encode {target}")


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
# Layout detection
# --------------------------------------------------------------------------------------------


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
    lowered = {n.lower() for n in names}
    for p in files:
        if p.name.lower() in lowered:
            return p
    return None


def _challenge_id(folder: Path) -> tuple[str, int] | None:
    match = _CHALLENGE_FOLDER.fullmatch(folder.name)
    if match is None:
        return None
    k = int(match.group(2))
    if not (folder / f"ldr_img_{k}.tif").is_file():
        return None
    return match.group(1), k


def _ntire_ids(files: list[Path]) -> list[str]:
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


# --------------------------------------------------------------------------------------------
# Planning: which files make a scene
# --------------------------------------------------------------------------------------------


def _require_folder(path: Path, layout: str) -> list[Path]:
    if not path.is_dir():
        raise ReadError(f"{path} is not a folder; a {layout} scene is {_LAYOUT_HELP[layout]}")
    return _visible_files(path)


def _exposure_txt(folder: Path, files: list[Path], layout: str, any_txt: bool = False) -> Path:
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


def _plan_ntire(path: Path) -> _Plan:
    if path.is_file():
        match = _NTIRE_FILE.fullmatch(path.name)
        if match is None:
            raise ReadError(f"{path} is not an NTIRE file; pass {{id}}_medium.png")
        folder, scene_id = path.parent, match.group(1)
    else:
        folder = path
        ids = _ntire_ids(_visible_files(folder))
        if len(ids) != 1:
            listed = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise ReadError(
                f"{folder} holds {len(ids)} NTIRE scenes ({listed or 'none'}); pass one "
                "{id}_medium.png file to name the scene"
            )
        scene_id = ids[0]
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


# --------------------------------------------------------------------------------------------
# Decoding frames, exposures and ground truth
# --------------------------------------------------------------------------------------------


def _read_ldr_array(path: Path) -> np.ndarray:
    """Decode one frame as an RGB ``(H, W, 3)`` uint8 or uint16 array (OpenCV's BGR undone)."""
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        array = _read_tiff(path)
    elif suffix in (".png", ".jpg", ".jpeg"):
        array = _read_cv2(path)
    else:
        raise ReadError(f"{path}: unsupported frame format {suffix!r}; use .tif, .png or .jpg")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        raise ReadError(
            f"{path} is a grey (single-channel) image; hdrzoo needs RGB frames: convert it to RGB"
        )
    if array.ndim == 3 and array.shape[2] == 2:
        raise ReadError(
            f"{path} is a grey image with alpha; hdrzoo needs RGB frames: convert it to RGB"
        )
    if array.ndim == 3 and array.shape[2] == 4:
        raise ReadError(
            f"{path} has 4 channels (RGBA); hdrzoo needs RGB frames: drop the alpha channel"
        )
    if array.ndim != 3 or array.shape[2] != 3:
        raise ReadError(f"{path}: expected an RGB image, got an array of shape {array.shape}")
    if array.dtype not in (np.uint8, np.uint16):
        raise ReadError(
            f"{path}: frames must be 8- or 16-bit integers, got {array.dtype}; "
            "re-export the frames as 8- or 16-bit images"
        )
    return array


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            _check_tiff_size(path, page, path.stat().st_size)
            array = page.asarray()
            axes = page.axes
            declared = tuple(page.shape)
    except HDRZooError:
        raise
    except Exception as err:  # tifffile, zlib and numpy raise many types on bad data
        raise ReadError(
            f"{path} is not a readable TIFF ({type(err).__name__}: {err}); "
            "the file is truncated or corrupt, re-export or re-download it"
        ) from err
    if array.shape != declared:
        # tifffile returns e.g. an empty array for a bogus BitsPerSample instead of raising.
        raise ReadError(
            f"{path}: the TIFF header declares shape {declared} (axes {axes}) but its data "
            f"decodes to {array.shape}; the file is corrupt, re-export or re-download it"
        )
    if axes == "SYX":  # planar configuration: one plane per channel
        array = array.transpose(1, 2, 0)
    elif axes not in ("YX", "YXS"):
        raise ReadError(
            f"{path}: unsupported TIFF axes {axes!r}; save the frame as a plain RGB TIFF"
        )
    return np.ascontiguousarray(array)


# Most bytes one stored byte can decode to, per TIFF compression code: a header may declare
# any size, but the data present bounds what can honestly come out of it.
_TIFF_EXPANSION = {
    1: 1,  # none: the strips hold the pixels themselves
    32773: 64,  # PackBits: 2 bytes (count, value) repeat one byte at most 128 times
    # LZW (TIFF clears its table at 4094 codes): a run grows the emitted string by one byte
    # per 9-12 bit code, ~7.4 MB out of ~5.4 kB between clears, i.e. ~1360x; round up.
    5: 1400,
    8: 1032,  # Adobe DEFLATE: zlib's documented maximum ratio is 1032:1
    32946: 1032,  # old-style DEFLATE code, same codec
}
# Other codecs (JPEG, zstd, LZMA, ...) reach far higher ratios; for them, and for all, the
# decoded page may not exceed this many bytes (2 GiB: 16-bit RGB of ~357 Mpx, far above any
# HDR dataset's frames) so a forged header cannot make the reader allocate without bound.
_TIFF_MAX_DECODED_BYTES = 2**31


def _check_tiff_size(path: Path, page: Any, file_size: int) -> None:
    """Refuse, before decoding, a TIFF page whose declared size its data cannot hold.

    Args:
        path: the file, for messages.
        page: its first ``tifffile.TiffPage``.
        file_size: size of the file in bytes; strip/tile byte counts are clipped to it.

    Raises:
        ReadError: the declared image needs more bytes than the strips/tiles present can
            decode to, or more than ``_TIFF_MAX_DECODED_BYTES``.
    """
    shape = tuple(int(n) for n in page.shape)
    # Python ints: a forged header can declare more pixels than int64 holds.
    pixels = math.prod(shape)
    raw = -(-pixels * int(page.bitspersample) // 8)  # packed bytes of the decoded pixels
    if max(raw, pixels * page.dtype.itemsize) > _TIFF_MAX_DECODED_BYTES:
        raise ReadError(
            f"{path}: the TIFF header declares a {' x '.join(map(str, shape))} image, over the "
            f"{_TIFF_MAX_DECODED_BYTES >> 30} GiB hdrzoo decodes; the file is corrupt, or "
            "split the frame into smaller images"
        )
    offsets = np.asarray(page.dataoffsets, dtype=np.float64)
    counts = np.asarray(page.databytecounts, dtype=np.float64)
    n = min(offsets.size, counts.size)
    # A byte count larger than the rest of the file is a lie too: count only what exists.
    present = float(np.minimum(counts[:n], np.maximum(file_size - offsets[:n], 0.0)).sum())
    factor = _TIFF_EXPANSION.get(int(page.compression))
    if factor is not None and raw > present * factor:
        raise ReadError(
            f"{path}: the TIFF header declares a {' x '.join(map(str, shape))} image "
            f"({raw} bytes) but the file holds {present:.0f} bytes of image data, which cannot "
            "decode to that much; the file is truncated or its header corrupt, re-export or "
            "re-download it"
        )


def _jpeg_is_complete(data: bytes) -> bool:
    # libjpeg only warns on a truncated file and fills the rest with grey; a complete file
    # has its end-of-image marker after the last start-of-scan marker.
    return data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") >= 0


def _read_cv2(path: Path) -> np.ndarray:
    import cv2

    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReadError(f"cannot read {path}: {err.strerror}") from err
    if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_is_complete(data):
        raise ReadError(f"{path} is a truncated or corrupt JPEG; re-export or re-download it")
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ReadError(
            f"{path} could not be decoded by OpenCV: the file is truncated or corrupt; "
            "re-export or re-download it"
        )
    if array.ndim == 3 and array.shape[2] >= 3:
        order = [2, 1, 0, 3][: array.shape[2]]  # BGR(A) -> RGB(A)
        array = array[:, :, order]
    return np.ascontiguousarray(array)


def _to_unit(array: np.ndarray, divisor: float) -> np.ndarray:
    """Integer frame ``(H, W, 3)`` -> float32 ``(3, H, W)`` in [0, 1] (float64 division first)."""
    scale = 255.0 if array.dtype == np.uint8 else float(divisor)
    unit = np.clip(array.astype(np.float64) / scale, 0.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(unit.transpose(2, 0, 1))


def _parse_ev_text(path: Path) -> list[float]:
    try:
        # utf-8-sig: Windows Notepad starts the file with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ReadError(
            f"{path} is not a text file; write one EV per line (e.g. -2, 0, 2)"
        ) from err
    except OSError as err:
        raise ReadError(f"cannot read {path}: {err.strerror}") from err
    values: list[float] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        for token in re.split(r"[,;\s]+", line.strip()):
            if not token:
                continue
            try:
                values.append(float(token))
            except ValueError as err:
                raise ReadError(
                    f"{path} line {lineno}: {token!r} is not a number; the exposure file holds "
                    "one EV (e.g. -2, 0, 2) per line"
                ) from err
    return values


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # np.load parses the header with ast.literal_eval: a corrupt header such as
            # "'descr\\: ..." makes Python's compiler warn before the parse fails.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            array = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ReadError(f"{path} is not a readable .npy array of {what} ({err})") from err
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise ReadError(
            f"{path}: expected numbers ({what}), got dtype {getattr(array, 'dtype', '?')}"
        )
    return array


def _exposures_from_evs(evs: list[float], source: Path, n: int) -> np.ndarray:
    if len(evs) != n:
        raise ReadError(
            f"{source} lists {len(evs)} exposure(s) {evs} for {n} frames; "
            "write exactly one EV per frame, in frame order"
        )
    ev = np.asarray(evs, dtype=np.float64)
    if not np.isfinite(ev).all():
        raise ReadError(f"{source}: exposure values must be finite numbers, got {evs}")
    with np.errstate(over="ignore"):
        times = np.exp2(ev - ev.min())
    if not np.isfinite(times).all():
        raise ReadError(f"{source}: EVs {evs} span too many stops; are they EVs (not seconds)?")
    return _checked_times(times, source, evs)


def _checked_times(times: np.ndarray, source: Path, shown: Any) -> np.ndarray:
    if not np.isfinite(times).all() or (times <= 0).any():
        raise ReadError(f"{source}: exposure times must be finite and positive, got {shown}")
    relative64 = times / times.min()
    # The float64 ratio can be finite yet beyond float32 (EVs 0 and 200): cast quietly and
    # name the exposure file here rather than let Bracket refuse an inf without it.
    with np.errstate(over="ignore"):
        relative = relative64.astype(np.float32)
    if not np.isfinite(relative).all():
        raise ReadError(
            f"{source}: exposures {shown} span too many stops: the longest / shortest ratio "
            f"{relative64.max():.3g} does not fit in float32; are they EVs (not seconds)?"
        )
    if np.unique(relative).size != relative.size:
        raise ReadError(
            f"{source}: duplicate exposures {shown}; each frame of a bracket needs its own exposure"
        )
    return relative


def _exif_exposure_time(path: Path) -> float | None:
    """EXIF ``ExposureTime`` in seconds, or None when absent or unreadable."""
    tag = 33434  # ExposureTime
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                tags = tif.pages.first.tags
                value = tags[tag].value if tag in tags else None
                if value is None and "ExifTag" in tags:
                    value = tags["ExifTag"].value.get("ExposureTime")
        else:
            from PIL import ExifTags, Image

            with Image.open(path) as image:
                exif = image.getexif()
                value = exif.get_ifd(ExifTags.IFD.Exif).get(tag, exif.get(tag))
    except Exception:  # unreadable metadata is reported by the frame decoder instead
        return None
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2:
        return value[0] / value[1] if value[1] else math.inf
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _read_exposures(plan: _Plan) -> tuple[np.ndarray, list[float] | None, str]:
    """Relative exposure times (float32, min 1), the EVs if given, and their source."""
    n = len(plan.frames)
    if plan.exposure_file is None:
        times = []
        for frame in plan.frames:
            seconds = _exif_exposure_time(frame)
            if seconds is None:
                raise ReadError(
                    f"{plan.source} has no exposure.txt and {frame} has no EXIF ExposureTime; "
                    "write exposure.txt with one EV per line, in frame order"
                )
            if not (math.isfinite(seconds) and seconds > 0):
                raise ReadError(
                    f"{frame}: EXIF ExposureTime {seconds} is not a positive time; "
                    "write exposure.txt with one EV per line instead"
                )
            times.append(seconds)
        return (
            _checked_times(np.asarray(times, dtype=np.float64), plan.frames[0].parent, times),
            None,
            "exif",
        )
    if plan.exposure_file.suffix.lower() == ".npy":
        evs = _load_npy(plan.exposure_file, "EVs").astype(np.float64).reshape(-1).tolist()
    else:
        evs = _parse_ev_text(plan.exposure_file)
    return _exposures_from_evs(evs, plan.exposure_file, n), evs, plan.exposure_file.name


def _read_sidecar(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReadError(f"{path} is not valid JSON ({err}); fix or delete the sidecar") from err
    if not isinstance(data, dict):
        raise ReadError(f"{path}: expected a JSON object with 'divisor' and/or 'ref'")
    if "divisor" in data:
        _check_divisor(data["divisor"], f"{path}: 'divisor'")
    if "ref" in data and (isinstance(data["ref"], bool) or not isinstance(data["ref"], int)):
        raise ReadError(f"{path}: 'ref' must be an integer frame index, got {data['ref']!r}")
    return data


def _check_divisor(divisor: Any, what: str = "divisor") -> None:
    ok = isinstance(divisor, (int, float)) and not isinstance(divisor, bool)
    if not ok or not math.isfinite(divisor) or divisor < 1:
        raise BracketError(
            f"{what} must be a number >= 1 (65535 or 65536 for 16-bit frames), got {divisor!r}"
        )


def _read_ntire_gt(plan: _Plan, ref_time: float) -> torch.Tensor:
    assert plan.gt is not None and plan.alignratio is not None
    png = _read_ldr_array(plan.gt)
    if png.dtype != np.uint16:
        raise ReadError(f"{plan.gt}: the NTIRE ground truth must be a 16-bit PNG, got {png.dtype}")
    ratio = _load_npy(plan.alignratio, "the align ratio").astype(np.float64).reshape(-1)
    if ratio.size != 1 or not np.isfinite(ratio).all() or ratio[0] <= 0:
        raise ReadError(
            f"{plan.alignratio}: expected one positive align ratio, got {ratio.tolist()}"
        )
    # NTIRE's ground truth is aligned to the medium frame; hdrzoo's units have t = 1 at the
    # shortest exposure, so divide by the reference's relative exposure time as well.
    hdr64 = png.astype(np.float64) / ratio[0] / ref_time
    # A tiny ratio (1e-40) is positive and finite but overflows float32 in the cast.
    with np.errstate(over="ignore"):
        hdr = hdr64.astype(np.float32)
    if not np.isfinite(hdr).all():
        raise ReadError(
            f"{plan.alignratio}: the align ratio {ratio[0]!r} makes the ground truth "
            f"{plan.gt.name} overflow float32 (peak {hdr64.max():.3g}); NTIRE ratios are about "
            "65535 / peak radiance: re-download or recompute the alignratio file"
        )
    return torch.from_numpy(np.ascontiguousarray(hdr.transpose(2, 0, 1)))


# --------------------------------------------------------------------------------------------
# read_bracket
# --------------------------------------------------------------------------------------------


def read_bracket(
    path: str | os.PathLike,
    divisor: int = DEFAULT_DIVISOR,
    ref: int | None = None,
    layout: str | None = None,
) -> Bracket:
    """Read one bracketed scene from disk, detecting its layout.

    Args:
        path: the scene: a folder (Kalantari 17, Tel 23, generic), any one of the three
            folders ``xxx_1`` / ``xxx_2`` / ``xxx_3`` of a Challenge123 scene, or for NTIRE the
            file ``{id}_medium.png`` (any ``{id}_*`` file, or a folder holding a single id).
        divisor: 16-bit values are divided by it (65535 by default; 65536 reproduces the
            official SAFNet evaluation). 8-bit values are divided by 255. A ``hdrzoo.json``
            sidecar written by :func:`write_bracket` replaces the default; an explicitly given
            other value wins over the sidecar.
        ref: reference frame index; None: the layout's (middle frame ``N // 2``, Challenge123
            ``_2``, NTIRE medium) or the sidecar's.
        layout: one of :data:`LAYOUTS` to skip detection.

    Returns:
        A :class:`~hdrzoo.Bracket`: ``ldr`` ``(N, 3, H, W)`` RGB float32 in [0, 1], exposures
        ``t = 2 ** (ev - min ev)``, ``gt`` ``(3, H, W)`` or None, ``name`` (scene folder or id)
        and ``meta`` (source, layout, divisor, bit_depth, frames, exposure source, gt, gamma).

    Example:
        >>> bracket = read_bracket("Test/EXTRA/001", divisor=65536)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(
            f"{path} does not exist; pass a scene folder (or an NTIRE {{id}}_medium.png)"
        )
    _check_divisor(divisor)
    if layout is None:
        layout = detect_layout(path)
    elif layout not in LAYOUTS:
        raise ReadError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    plan = _PLANNERS[layout](path)
    return _load(plan, divisor, ref)


def _load(plan: _Plan, divisor: float, ref: int | None) -> Bracket:
    sidecar = _read_sidecar(plan.sidecar)
    if "divisor" in sidecar and divisor == DEFAULT_DIVISOR:
        divisor = sidecar["divisor"]

    # Exposures first: a bad exposure file is reported before any frame is decoded.
    times, evs, exposure_source = _read_exposures(plan)
    arrays = []
    for frame in plan.frames:
        array = _read_ldr_array(frame)
        if arrays and array.shape != arrays[0].shape:
            raise ReadError(
                f"{frame} is {array.shape[0]} x {array.shape[1]} but {plan.frames[0].name} is "
                f"{arrays[0].shape[0]} x {arrays[0].shape[1]}; all frames of a bracket must have "
                "the same size"
            )
        arrays.append(array)
    bits = [8 if a.dtype == np.uint8 else 16 for a in arrays]
    if plan.expected_bits == 16 and 8 in bits:
        warnings.warn(
            f"{plan.source}: {bits.count(8)} of {len(bits)} frames are 8-bit where the "
            f"{plan.layout} layout has 16-bit frames; 8-bit quantisation hurts the dark frames",
            UserWarning,
            stacklevel=3,
        )
    ldr = np.stack([_to_unit(a, divisor) for a in arrays])
    del arrays

    n = len(plan.frames)
    if ref is None:
        ref = sidecar.get("ref", plan.default_ref)
        ref_from = "sidecar" if "ref" in sidecar else "layout"
    else:
        ref_from = "argument"
    if isinstance(ref, bool) or not isinstance(ref, (int, np.integer)) or not 0 <= ref < n:
        raise BracketError(
            f"ref = {ref!r} ({ref_from}) is out of range for the {n} frames of {plan.source}; "
            f"give an index in 0..{n - 1}"
        )
    ref = int(ref)

    gt = None
    if plan.gt is not None:
        if plan.alignratio is not None:
            gt = _read_ntire_gt(plan, float(times[ref]))
        else:
            gt = read_hdr(plan.gt)
        if tuple(gt.shape[1:]) != ldr.shape[2:]:
            raise ReadError(
                f"{plan.gt} is {gt.shape[1]} x {gt.shape[2]} but the frames are "
                f"{ldr.shape[2]} x {ldr.shape[3]}; the ground truth must match the frames"
            )

    meta: dict[str, Any] = {
        "source": str(plan.source.resolve()),
        "layout": plan.layout,
        "divisor": divisor,
        "bit_depth": bits[0] if len(set(bits)) == 1 else bits,
        "frames": [f.name if f.parent == plan.frames[0].parent else str(f) for f in plan.frames],
        "exposure_source": exposure_source,
        "evs": evs,
        "gt": None if plan.gt is None else plan.gt.name,
        "gamma": plan.gamma,
        "ref_source": ref_from,
    }
    if plan.layout == "challenge123":
        meta["frames"] = [f"{f.parent.name}/{f.name}" for f in plan.frames]
    if plan.expected_bits is not None:
        meta["expected_bit_depth"] = plan.expected_bits
    if plan.alignratio is not None:
        # gt = gt_png / alignratio * gt_scale: NTIRE's medium-frame units -> shortest-frame units
        meta["gt_scale"] = 1.0 / float(times[ref])
    return Bracket(
        ldr=torch.from_numpy(ldr),
        exposures=torch.from_numpy(times),
        ref=ref,
        gt=gt,
        name=plan.name,
        meta=meta,
    )


# --------------------------------------------------------------------------------------------
# write_bracket
# --------------------------------------------------------------------------------------------


def _quantise(frame: torch.Tensor, divisor: float, bits: int) -> np.ndarray:
    """Float ``(3, H, W)`` in [0, 1] -> RGB ``(H, W, 3)`` integers, ``round(x * divisor)`` clipped."""
    hwc = frame.detach().cpu().numpy().astype(np.float64).transpose(1, 2, 0)
    if bits == 8:
        return np.clip(np.rint(hwc * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint(hwc * divisor), 0, 65535).astype(np.uint16)


def _write_tiff(tmp: Path, rgb: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(tmp, rgb, photometric="rgb", compression="zlib", predictor=True)


def _ev_text(bracket: Bracket) -> str:
    return "".join(f"{ev!r}\n" for ev in bracket.evs)


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
    if not isinstance(bracket, Bracket):
        raise WriteError(f"write_bracket needs a hdrzoo.Bracket, got {type(bracket).__name__}")
    try:
        _check_divisor(divisor)
    except BracketError as err:
        raise WriteError(str(err)) from err
    if layout not in ("kalantari17", "challenge123", "ntire", "generic"):
        hint = (
            " (tel23 scenes are Kalantari-like: write layout='kalantari17')"
            if layout == "tel23"
            else ""
        )
        raise WriteError(f"write_bracket: cannot write layout {layout!r}{hint}")
    if gt_format not in HDR_SUFFIXES:
        raise WriteError(f"write_bracket: gt_format must be '.hdr' or '.exr', got {gt_format!r}")
    bits = bit_depth if bit_depth is not None else (8 if layout == "ntire" else 16)
    if bits not in (8, 16):
        raise WriteError(f"write_bracket: bit_depth must be 8 or 16, got {bit_depth!r}")
    folder = Path(dir)
    stem: str | None = None
    n = bracket.num_frames
    default_ref = 1 if layout in ("challenge123", "ntire") else n // 2
    if layout in ("challenge123", "ntire") and (n != 3 or bracket.ref != 1):
        raise WriteError(
            f"write_bracket: the {layout} layout holds 3 frames with the middle one as "
            f"reference; this bracket has {n} frames and ref = {bracket.ref}"
        )
    sidecar: dict[str, Any] = {}
    if divisor != DEFAULT_DIVISOR and bits == 16:
        sidecar["divisor"] = divisor
    if bracket.ref != default_ref:
        sidecar["ref"] = bracket.ref

    jobs: list[tuple[Path, Callable[[Path], None]]] = []

    def tiff_job(target: Path, index: int) -> None:
        rgb = _quantise(bracket.ldr[index], divisor, bits)
        jobs.append((target, lambda tmp: _write_tiff(tmp, rgb)))

    def cv2_job(target: Path, rgb: np.ndarray) -> None:
        jobs.append((target, lambda tmp: _cv2_write(tmp, rgb, target)))

    def text_job(target: Path, text: str) -> None:
        jobs.append((target, lambda tmp: tmp.write_text(text, encoding="utf-8")))

    def gt_job(target: Path) -> None:
        jobs.append((target, lambda tmp: _write_hdr_to(tmp, bracket.gt, target)))

    if layout == "kalantari17":
        folders = [folder]
        width = len(str(n - 1))
        for i in range(n):
            tiff_job(folder / f"ldr_{i:0{width}d}.tif", i)
        text_job(folder / "exposure.txt", _ev_text(bracket))
        if bracket.gt is not None:
            gt_job(folder / f"HDRImg{gt_format}")
        result = folder
    elif layout == "generic":
        if image_format not in (".png", ".tif", ".jpg"):
            raise WriteError(
                f"write_bracket: image_format must be .png, .tif or .jpg, got {image_format!r}"
            )
        if image_format == ".jpg" and bits != 8:
            raise WriteError("write_bracket: JPEG frames are 8-bit; pass bit_depth=8")
        folders = [folder]
        width = len(str(n - 1))
        for i in range(n):
            target = folder / f"frame_{i:0{width}d}{image_format}"
            if image_format == ".tif":
                tiff_job(target, i)
            else:
                cv2_job(target, _quantise(bracket.ldr[i], divisor, bits))
        text_job(folder / "exposure.txt", _ev_text(bracket))
        if bracket.gt is not None:
            gt_job(folder / f"gt{gt_format}")
        result = folder
    elif layout == "challenge123":
        stem = _scene_id(name, "001")
        folders = [folder / f"{stem}_{k}" for k in (1, 2, 3)]
        for i, sub in enumerate(folders):
            tiff_job(sub / f"ldr_img_{i + 1}.tif", i)
        text_job(folders[1] / "exposure.txt", _ev_text(bracket))
        if bracket.gt is not None:
            gt_job(folders[1] / f"hdr_img{gt_format}")
        result = folders[1]
    else:  # ntire
        if bits != 8:
            raise WriteError("write_bracket: NTIRE frames are 8-bit PNG; leave bit_depth at 8")
        if sidecar:
            raise WriteError(
                f"write_bracket: the ntire layout has no sidecar for {sorted(sidecar)}; "
                "NTIRE frames are 8-bit and the reference is the medium frame"
            )
        stem = _scene_id(name, "0000")
        folders = [folder]
        for i, kind in enumerate(("short", "medium", "long")):
            cv2_job(folder / f"{stem}_{kind}.png", _quantise(bracket.ldr[i], divisor, 8))
        evs = np.asarray(bracket.evs, dtype=np.float64)
        jobs.append((folder / f"{stem}_exposures.npy", lambda tmp: _save_npy(tmp, evs)))
        if bracket.gt is not None:
            # Back to NTIRE's units (the medium frame's), then its own 16-bit encoding.
            gt = bracket.gt.detach().cpu().numpy().astype(np.float64) * float(bracket.exposures[1])
            peak = float(gt.max())
            ratio = np.float32(65535.0 / peak if peak > 0 else 1.0)
            png = np.clip(np.rint(gt * float(ratio)), 0, 65535).astype(np.uint16).transpose(1, 2, 0)
            cv2_job(folder / f"{stem}_gt.png", png)
            jobs.append((folder / f"{stem}_alignratio.npy", lambda tmp: _save_npy(tmp, ratio)))
        result = folder / f"{stem}_medium.png"
    if sidecar and layout != "ntire":
        text_job(
            folders[1 if layout == "challenge123" else 0] / SIDECAR, json.dumps(sidecar) + "\n"
        )

    targets = {target for target, _ in jobs}
    stale = _existing_scene_files(folders, stem if layout == "ntire" else None)
    if stale and not overwrite:
        shown = ", ".join(str(p) for p in stale[:5])
        raise WriteError(
            f"write_bracket: {shown} already exist(s); pass overwrite=True or choose an empty folder"
        )
    _commit(jobs, folders)
    for path in stale:
        if path not in targets:
            path.unlink(missing_ok=True)
    return result


def _scene_id(name: str | None, default: str) -> str:
    stem = default if name is None else name
    if not _SCENE_ID.fullmatch(stem):
        raise WriteError(
            f"write_bracket: scene name {stem!r} must be letters, digits, '.', '_' or '-'"
        )
    return stem


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _existing_scene_files(folders: list[Path], ntire_id: str | None) -> list[Path]:
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


def _commit(jobs: list[tuple[Path, Callable[[Path], None]]], folders: list[Path]) -> None:
    """Write every job to a temporary file, then rename them all; on failure remove everything."""
    created: list[Path] = []
    try:
        for folder in folders:
            if not folder.is_dir():
                try:
                    folder.mkdir(parents=True)
                except OSError as err:
                    raise WriteError(
                        f"cannot create {folder}: {err.strerror}; choose a writable folder"
                    ) from err
                created.append(folder)
        with contextlib.ExitStack() as stack:
            for target, write in jobs:
                tmp = stack.enter_context(atomic_path(target))
                try:
                    write(tmp)
                except HDRZooError:
                    raise
                except Exception as err:
                    raise WriteError(f"could not write {target}: {err}") from err
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
