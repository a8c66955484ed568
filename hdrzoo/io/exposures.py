"""Exposure times of a bracket: EV files (``exposure.txt``, NTIRE ``.npy``) and EXIF.

Whatever the source, the result follows ``DATA.md``: relative times ``t = 2 ** (ev - min ev)``
as float32 with the shortest exposure at 1, finite, positive and all different.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from hdrzoo.errors import ReadError
from hdrzoo.io.codecs import TIFF_SUFFIXES, _load_npy


def _read_exposures(
    frames: list[Path], exposure_file: Path | None, source: Path
) -> tuple[np.ndarray, list[float] | None, str]:
    """Relative exposure times (float32, min 1), the EVs if given, and their source.

    Args:
        frames: the bracket's frames, in order.
        exposure_file: ``.txt`` or ``.npy`` of EVs; None: every frame's EXIF ExposureTime.
        source: the scene path, for messages.
    """
    if exposure_file is None:
        return _exposures_from_exif(frames, source), None, "exif"
    if exposure_file.suffix.lower() == ".npy":
        evs = _load_npy(exposure_file, "EVs").astype(np.float64).reshape(-1).tolist()
    else:
        evs = _parse_ev_text(exposure_file)
    return _exposures_from_evs(evs, exposure_file, len(frames)), evs, exposure_file.name


def _exposures_from_exif(frames: list[Path], source: Path) -> np.ndarray:
    """Relative exposure times from each frame's EXIF ExposureTime (seconds)."""
    times = []
    for frame in frames:
        seconds = _exif_exposure_time(frame)
        if seconds is None:
            raise ReadError(
                f"{source} has no exposure.txt and {frame} has no EXIF ExposureTime; "
                "write exposure.txt with one EV per line, in frame order"
            )
        if not (math.isfinite(seconds) and seconds > 0):
            raise ReadError(
                f"{frame}: EXIF ExposureTime {seconds} is not a positive time; "
                "write exposure.txt with one EV per line instead"
            )
        times.append(seconds)
    return _checked_times(np.asarray(times, dtype=np.float64), frames[0].parent, times)


def _parse_ev_text(path: Path) -> list[float]:
    """The EVs of a text file: numbers separated by spaces, commas or lines; ``#`` comments."""
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


def _exposures_from_evs(evs: list[float], source: Path, n: int) -> np.ndarray:
    """Relative exposure times ``2 ** (ev - min ev)`` of ``n`` frames."""
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
    """``times / min(times)`` as float32, refused unless finite, positive and distinct."""
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
    try:
        value = _raw_exif_exposure_time(path)
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


_EXPOSURE_TIME_TAG = 33434


def _raw_exif_exposure_time(path: Path) -> Any:
    """The ExposureTime tag's stored value (a number or a (numerator, denominator) pair)."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            tags = tif.pages.first.tags
            value = tags[_EXPOSURE_TIME_TAG].value if _EXPOSURE_TIME_TAG in tags else None
            if value is None and "ExifTag" in tags:
                value = tags["ExifTag"].value.get("ExposureTime")
        return value
    from PIL import ExifTags, Image

    with Image.open(path) as image:
        exif = image.getexif()
        return exif.get_ifd(ExifTags.IFD.Exif).get(_EXPOSURE_TIME_TAG, exif.get(_EXPOSURE_TIME_TAG))
