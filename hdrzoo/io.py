"""Reading and writing HDR images and brackets.

Codecs come from the field's libraries: OpenEXR for ``.exr`` (float32, exact), OpenCV for
Radiance ``.hdr`` (the decoder the official evaluations use), tifffile for TIFF.
Every write is atomic: a temporary file in the target folder, renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from hdrzoo.errors import ReadError, WriteError

__all__ = ["atomic_path", "read_hdr", "write_hdr"]

HDR_SUFFIXES = (".hdr", ".exr")


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
    """
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"HDR file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".exr":
        image = _read_exr(path)
    elif suffix == ".hdr":
        import cv2

        bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.float32:
            raise ReadError(
                f"{path} is not a readable Radiance RGBE .hdr file (corrupt or truncated?)"
            )
        image = bgr[:, :, ::-1]
    else:
        raise ReadError(f"{path}: unsupported HDR format {suffix!r}; use .exr or .hdr")
    if not np.isfinite(image).all():
        raise ReadError(f"{path} contains NaN or Inf values")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


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
    image = _to_hwc_float32(hdr, str(path))
    with atomic_path(path) as tmp:
        if suffix == ".exr":
            import OpenEXR

            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            with OpenEXR.File(header, {"RGB": image}) as exr:
                exr.write(str(tmp))
        else:
            import cv2

            if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[:, :, ::-1])):
                raise WriteError(f"OpenCV could not encode {path}")
    return path
