"""Reading one bracketed scene: :func:`read_bracket`.

The read runs in a fixed order so that the cheapest checks fail first: plan the files
(:mod:`hdrzoo.io.plans`), read the sidecar and the exposures, then decode the frames, then
the ground truth.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdrzoo.bracket import Bracket
from hdrzoo.errors import BracketError, ReadError
from hdrzoo.io.codecs import (
    DEFAULT_DIVISOR,
    _check_divisor,
    _load_npy,
    _read_ldr_array,
    _to_unit,
    read_hdr,
)
from hdrzoo.io.exposures import _read_exposures
from hdrzoo.io.layouts import LAYOUTS, detect_layout
from hdrzoo.io.plans import _PLANNERS, _Plan


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

    Examples:
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
    """Decode the files ``plan`` names into a :class:`~hdrzoo.Bracket`."""
    sidecar = _read_sidecar(plan.sidecar)
    if "divisor" in sidecar and divisor == DEFAULT_DIVISOR:
        divisor = sidecar["divisor"]
    # Exposures first: a bad exposure file is reported before any frame is decoded.
    times, evs, exposure_source = _read_exposures(plan.frames, plan.exposure_file, plan.source)
    ldr, bits = _read_frames(plan, divisor)
    ref, ref_source = _reference_index(plan, ref, sidecar)
    ref_time = float(times[ref])
    gt = _read_ground_truth(plan, ref_time, ldr.shape[2:])
    meta = _bracket_meta(plan, divisor, bits, evs, exposure_source, ref_source, ref_time)
    return Bracket(
        ldr=torch.from_numpy(ldr),
        exposures=torch.from_numpy(times),
        ref=ref,
        gt=gt,
        name=plan.name,
        meta=meta,
    )


def _read_sidecar(path: Path | None) -> dict[str, Any]:
    """The ``hdrzoo.json`` settings (``divisor``, ``ref``) of a scene; ``{}`` when absent."""
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


def _read_frames(plan: _Plan, divisor: float) -> tuple[np.ndarray, list[int]]:
    """The frames as float32 ``(N, 3, H, W)`` in [0, 1], and each frame's bit depth (8 or 16)."""
    arrays = _decode_same_size_frames(plan.frames)
    bits = [8 if a.dtype == np.uint8 else 16 for a in arrays]
    if plan.expected_bits == 16 and 8 in bits:
        warnings.warn(
            f"{plan.source}: {bits.count(8)} of {len(bits)} frames are 8-bit where the "
            f"{plan.layout} layout has 16-bit frames; 8-bit quantisation hurts the dark frames",
            UserWarning,
            stacklevel=4,  # the caller of read_bracket (through _load)
        )
    return np.stack([_to_unit(a, divisor) for a in arrays]), bits


def _decode_same_size_frames(frames: list[Path]) -> list[np.ndarray]:
    """Each frame as an RGB ``(H, W, 3)`` integer array, refusing frames of different sizes."""
    arrays: list[np.ndarray] = []
    for frame in frames:
        array = _read_ldr_array(frame)
        if arrays and array.shape != arrays[0].shape:
            raise ReadError(
                f"{frame} is {array.shape[0]} x {array.shape[1]} but {frames[0].name} is "
                f"{arrays[0].shape[0]} x {arrays[0].shape[1]}; all frames of a bracket must have "
                "the same size"
            )
        arrays.append(array)
    return arrays


def _reference_index(plan: _Plan, ref: Any, sidecar: dict[str, Any]) -> tuple[int, str]:
    """The checked reference index and where it came from (argument, sidecar or layout)."""
    n = len(plan.frames)
    if ref is None:
        ref = sidecar.get("ref", plan.default_ref)
        ref_source = "sidecar" if "ref" in sidecar else "layout"
    else:
        ref_source = "argument"
    if isinstance(ref, bool) or not isinstance(ref, (int, np.integer)) or not 0 <= ref < n:
        raise BracketError(
            f"ref = {ref!r} ({ref_source}) is out of range for the {n} frames of {plan.source}; "
            f"give an index in 0..{n - 1}"
        )
    return int(ref), ref_source


def _read_ground_truth(
    plan: _Plan, ref_time: float, frame_size: tuple[int, ...]
) -> torch.Tensor | None:
    """The scene's linear HDR ``(3, H, W)`` in units where ``t = 1``, or None if it has none."""
    if plan.gt is None:
        return None
    if plan.alignratio is not None:
        gt = _read_ntire_gt(plan, ref_time)
    else:
        gt = read_hdr(plan.gt)
    if tuple(gt.shape[1:]) != frame_size:
        raise ReadError(
            f"{plan.gt} is {gt.shape[1]} x {gt.shape[2]} but the frames are "
            f"{frame_size[0]} x {frame_size[1]}; the ground truth must match the frames"
        )
    return gt


def _read_ntire_gt(plan: _Plan, ref_time: float) -> torch.Tensor:
    """NTIRE's 16-bit ground-truth PNG divided by its align ratio, in hdrzoo's units."""
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


def _bracket_meta(
    plan: _Plan,
    divisor: float,
    bits: list[int],
    evs: list[float] | None,
    exposure_source: str,
    ref_source: str,
    ref_time: float,
) -> dict[str, Any]:
    """``Bracket.meta``: where the scene came from and how it was decoded."""
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
        "ref_source": ref_source,
    }
    if plan.layout == "challenge123":
        meta["frames"] = [f"{f.parent.name}/{f.name}" for f in plan.frames]
    if plan.expected_bits is not None:
        meta["expected_bit_depth"] = plan.expected_bits
    if plan.alignratio is not None:
        # gt = gt_png / alignratio * gt_scale: NTIRE's medium-frame units -> shortest-frame units
        meta["gt_scale"] = 1.0 / ref_time
    return meta
