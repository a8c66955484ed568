"""Decoding and encoding single files: HDR images, LDR frames and ``.npy`` arrays.

Codecs come from the field's libraries: OpenEXR for ``.exr`` (float32, exact), OpenCV for
Radiance ``.hdr`` (the decoder the official evaluations use) and for PNG / JPEG, tifffile for
TIFF. Decoders refuse, before allocating, files whose headers declare more pixels than their
bytes can hold; encoders write into a path they are given (the writers make it a temporary
file, see :mod:`hdrzoo.io.writers`).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdrzoo.errors import BracketError, HDRZooError, ReadError, WriteError

HDR_SUFFIXES = (".hdr", ".exr")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
DEFAULT_DIVISOR = 65535


# --------------------------------------------------------------------------------------------
# HDR images
# --------------------------------------------------------------------------------------------


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
        image = _read_radiance(path)
    else:
        raise ReadError(f"{path}: unsupported HDR format {suffix!r}; use .exr or .hdr")
    if not np.isfinite(image).all():
        raise ReadError(f"{path} contains NaN or Inf values")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def _read_radiance(path: Path) -> np.ndarray:
    """Decode a Radiance ``.hdr`` through OpenCV as RGB ``(H, W, 3)`` float32."""
    import cv2

    _check_radiance_size(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.float32:
        raise ReadError(
            f"{path} is not a readable Radiance RGBE .hdr file (corrupt or truncated?); "
            "re-export or re-download it"
        )
    return bgr[:, :, ::-1]


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
    """Decode an OpenEXR file's RGB channels as ``(H, W, 3)`` float32."""
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


def _to_hwc_float32(hdr: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    """Validated linear HDR ``(3, H, W)`` -> contiguous float32 ``(H, W, 3)`` for the encoders."""
    array = hdr.detach().cpu().numpy() if isinstance(hdr, torch.Tensor) else np.asarray(hdr)
    if array.ndim != 3 or array.shape[0] != 3:
        raise WriteError(f"{what}: expected an RGB image of shape (3, H, W), got {array.shape}")
    if not np.isfinite(array).all():
        raise WriteError(f"{what}: the image contains NaN or Inf values; refusing to write it")
    return np.ascontiguousarray(array.transpose(1, 2, 0), dtype=np.float32)


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
# LDR frames: decoding
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
    _check_rgb_integer_frame(path, array)
    return array


def _check_rgb_integer_frame(path: Path, array: np.ndarray) -> None:
    """Refuse a decoded frame that is not 8- or 16-bit RGB, naming what it is instead."""
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


def _read_tiff(path: Path) -> np.ndarray:
    """Decode the first page of a TIFF as an interleaved ``(H, W, C)`` (or ``(H, W)``) array."""
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
    present = _tiff_data_bytes_present(page, file_size)
    factor = _TIFF_EXPANSION.get(int(page.compression))
    if factor is not None and raw > present * factor:
        raise ReadError(
            f"{path}: the TIFF header declares a {' x '.join(map(str, shape))} image "
            f"({raw} bytes) but the file holds {present:.0f} bytes of image data, which cannot "
            "decode to that much; the file is truncated or its header corrupt, re-export or "
            "re-download it"
        )


def _tiff_data_bytes_present(page: Any, file_size: int) -> float:
    """Bytes of strip/tile data a TIFF page really has in a file of ``file_size`` bytes."""
    offsets = np.asarray(page.dataoffsets, dtype=np.float64)
    counts = np.asarray(page.databytecounts, dtype=np.float64)
    n = min(offsets.size, counts.size)
    # A byte count larger than the rest of the file is a lie too: count only what exists.
    return float(np.minimum(counts[:n], np.maximum(file_size - offsets[:n], 0.0)).sum())


def _jpeg_is_complete(data: bytes) -> bool:
    # libjpeg only warns on a truncated file and fills the rest with grey; a complete file
    # has its end-of-image marker after the last start-of-scan marker.
    return data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") >= 0


def _read_cv2(path: Path) -> np.ndarray:
    """Decode a PNG / JPEG through OpenCV, channels in RGB(A) order."""
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


# --------------------------------------------------------------------------------------------
# LDR frames: integers <-> [0, 1]
# --------------------------------------------------------------------------------------------


def _check_divisor(divisor: Any, what: str = "divisor") -> None:
    ok = isinstance(divisor, (int, float)) and not isinstance(divisor, bool)
    if not ok or not math.isfinite(divisor) or divisor < 1:
        raise BracketError(
            f"{what} must be a number >= 1 (65535 or 65536 for 16-bit frames), got {divisor!r}"
        )


def _to_unit(array: np.ndarray, divisor: float) -> np.ndarray:
    """Integer frame ``(H, W, 3)`` -> float32 ``(3, H, W)`` in [0, 1] (float64 division first)."""
    scale = 255.0 if array.dtype == np.uint8 else float(divisor)
    unit = np.clip(array.astype(np.float64) / scale, 0.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(unit.transpose(2, 0, 1))


def _quantise(frame: torch.Tensor, divisor: float, bits: int) -> np.ndarray:
    """Float ``(3, H, W)`` in [0, 1] -> RGB ``(H, W, 3)`` integers, ``round(x * divisor)`` clipped."""
    hwc = frame.detach().cpu().numpy().astype(np.float64).transpose(1, 2, 0)
    if bits == 8:
        return np.clip(np.rint(hwc * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint(hwc * divisor), 0, 65535).astype(np.uint16)


# --------------------------------------------------------------------------------------------
# Encoders (into a path the caller chose, usually a temporary file)
# --------------------------------------------------------------------------------------------


def _cv2_write(tmp: Path, rgb: np.ndarray, target: Path) -> None:
    """Encode RGB ``(H, W, 3)`` into ``tmp`` with the OpenCV codec ``tmp``'s suffix names."""
    import cv2

    try:
        ok = cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[:, :, ::-1]))
    except cv2.error as err:
        raise WriteError(f"OpenCV could not encode {target}: {err}") from err
    if not ok:
        raise WriteError(f"OpenCV could not encode {target}")


def _write_tiff(tmp: Path, rgb: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(tmp, rgb, photometric="rgb", compression="zlib", predictor=True)


# --------------------------------------------------------------------------------------------
# .npy arrays (NTIRE's exposures and align ratios)
# --------------------------------------------------------------------------------------------


def _load_npy(path: Path, what: str) -> np.ndarray:
    """A numeric array from ``path`` (never a pickle); ``what`` names it in errors."""
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


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
