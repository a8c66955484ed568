"""Synthetic brackets: real (or procedural) radiance, simulated motion, simulated capture.

The embedded default data of hdrzoo (DATA.md, "The embedded default"). A scene is a crop of
a linear HDR radiance map (two CC0 panoramas ship in ``hdrzoo/data/assets``; any user
``.hdr`` / ``.exr`` works) or a procedural scene. Every non-reference frame sees it through
a small random camera homography, and one to three textured sprites with soft alpha
mattes move independently across it, so there are real occlusions and disocclusions.
The capture is a noisy, clipped, gamma-encoded and quantised exposure of each frame.

Everything is drawn from generators seeded by ``seed``: the same seed gives the same bytes.

Examples:
    >>> bracket = synthesize(0, size=(64, 64), n_frames=3)
    >>> bracket.ldr.shape, bracket.ref
    (torch.Size([3, 3, 64, 64]), 1)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import (
    get_perspective_transform,
    get_rotation_matrix2d,
    resize,
    warp_perspective,
)

from hdrzoo.bracket import Bracket
from hdrzoo.errors import HDRZooError, ReadError
from hdrzoo.io import read_hdr
from hdrzoo.ops.tonemap import GAMMA

__all__ = [
    "ASSETS_DIR",
    "SyntheticConfig",
    "SyntheticDataset",
    "asset_paths",
    "procedural_radiance",
    "radiance_folder",
    "synthesize",
]

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
"""Folder of the packaged CC0 radiance maps (see ``LICENSE-hdri.txt`` there)."""

SATURATED_LDR = 0.99
"""An LDR value at or above this counts as saturated (DATA.md's guarantee)."""

PERCENTILE = 99.9
"""k scales the reference radiance so that this percentile (pixels and channels) is 1."""

_POLE_FRACTION = 0.125
"""Rows of an equirectangular map this close to the top or bottom are not used (stretched)."""

_DOWNSAMPLE = 4
"""Crop candidates are scored on the map average-pooled by this factor (speed)."""

_DARK_LDR = 0.1
"""Below this LDR value in every channel a reference pixel counts as underexposed."""

_TEXTURE_CANDIDATES = 6
"""Sprite textures: the most textured of this many random windows of the map."""

_S_CURVE_STRENGTH = 0.35

CRF_GAMMA = (1.8, 2.6)
"""``crf="random"``: the range of the encoding gamma (uniform per bracket)."""

CRF_S_STRENGTH = (0.0, 0.5)
"""``crf="random"``: the range of the S-curve strength applied after the gamma."""

VARIETY: dict[str, Any] = {
    "radiance": ["assets", "procedural"],
    "still": 0.15,
    "radiance_zoom": (0.5, 2.0),
    "radiance_flip": True,
    "white_balance": 0.5,
    "noise_gain": (0.5, 8.0),
    "ev_steps": (2.0, 2.5, 3.0),
}
"""Simulator settings for training that transfers to unseen scenes and cameras.

Half the brackets are procedural scenes (unbounded variety of texture and light), the maps
are zoomed, mirrored and re-lit, 15 % of brackets are still, and the sensor's noise and the
EV spacing change every bracket. ``crf="random"`` is not among them: measured, it cost 2 dB
on scenes captured with a camera response it did not contain (``docs/transfer.md``). The
demo and the shipped synthetic configs train with these settings.
"""


@dataclass
class SyntheticConfig:
    """Parameters of the synthetic bracket simulator (all JSON-able).

    Attributes:
        size: ``(H, W)`` of the frames in pixels (an int means square).
        n_frames: number of frames N (>= 2) when ``evs`` is not given.
        ref: index of the reference frame; ``None`` means the middle one, ``N // 2``.
        evs: explicit exposure values, one per frame, ascending (e.g. ``(-2, 0, 2)``);
            overrides ``n_frames`` and ``ev_steps``.
        ev_steps: EV spacings between consecutive frames to draw from, in stops; each
            sample uses one of them (Kalantari-style brackets are 2 or 3 stops apart).
        radiance: ``"assets"`` (the packaged panoramas), ``"procedural"``, a path to a
            ``.hdr`` / ``.exr`` file, a path to a folder of such files (one of them is
            drawn per sample, like ``"assets"``), or a list of any of these (one is drawn
            per sample). A list of files restricts training to chosen maps, e.g. to hold
            others out for evaluation (``benchmarks/transfer.py``).
        camera_translation: ``(min, max)`` camera shift of a non-reference frame, in pixels.
        camera_rotation: largest camera roll of a non-reference frame, in degrees.
        camera_scale: largest relative zoom change (0.005 = +-0.5 %).
        camera_perspective: largest extra displacement of an image corner that turns the
            similarity into a homography, in pixels.
            The camera defaults (up to ~10 px at the corners of a 256 px frame) keep the
            unaligned merge's background errors well below its ghosts (DATA.md's guarantee);
            raise them for harder alignment.
        n_objects: ``(min, max)`` number of moving sprites, inclusive.
        object_speed: ``(min, max)`` sprite speed in pixels per frame step.
        object_spin: largest sprite rotation in degrees per frame step.
        object_radius: ``(min, max)`` sprite radius as a fraction of ``min(H, W)``.
        object_contrast: ``(min, max)`` stops between a sprite's mean radiance and that of the
            background it starts on in the reference (darker over saturated background,
            brighter over nearly black background, either way elsewhere).
        object_edge: width of the soft matte edge, in pixels.
        object_on_clipped: probability that a sprite's reference position is drawn among the
            pixels the reference frame clips (saturated or nearly black), where the classic
            merge relies on the other frames, so that its motion leaves real ghosts.
        shot_noise: Poisson variance per unit of signal (signal 1 = full well).
        read_noise: standard deviation of the Gaussian read noise.
        crf: ``"gamma"`` (``x ** (1 / 2.2)``), ``"s-curve"`` (gamma followed by a smooth
            S-shaped curve; models that linearise with gamma 2.2 see a mismatched CRF) or
            ``"random"`` (per bracket: gamma drawn from ``CRF_GAMMA`` and an S-curve whose
            strength is drawn from ``CRF_S_STRENGTH``: a different camera every bracket).
        bit_depth: 8 or 16; frames are ``code / (2 ** bit_depth - 1)``.
        saturation: ``(min, max)`` fraction of reference pixels meant to be saturated; the
            crop of a radiance map is chosen among random candidates to meet it (a target,
            not a hard bound: a map may have no such crop).
        crop_candidates: how many random crops of a radiance map are scored.
        still: probability that a bracket is still: no camera motion and no moving object,
            so that every frame agrees with the reference (a merge must learn to pass the
            reference through where it is good).
        radiance_zoom: ``(min, max)`` magnification of the radiance map (scene pixels per
            map pixel), drawn log-uniformly per bracket; below 1 a larger region is read
            and downsampled (antialiased), above 1 a smaller one is enlarged.
        radiance_flip: mirror the scene left-right with probability 0.5.
        white_balance: largest per-channel gain of the scene's illuminant, in stops (one
            gain per channel drawn uniformly in +-this, luminance kept).
        noise_gain: ``(min, max)`` factors, drawn log-uniformly per bracket and
            independently, on the shot-noise variance and on the read-noise deviation
            (a range of sensors instead of one).
        keep_radiance: also return the clean linear frames ``k * R_i`` (units ``t = 1``,
            unclipped, no noise) as ``meta["radiance"]`` ``(N, 3, H, W)``.
    """

    size: tuple[int, int] = (256, 256)
    n_frames: int = 3
    ref: int | None = None
    evs: tuple[float, ...] | None = None
    ev_steps: tuple[float, ...] = (2.0, 3.0)
    radiance: str | list[str] = "assets"
    camera_translation: tuple[float, float] = (1.0, 6.0)
    camera_rotation: float = 1.0
    camera_scale: float = 0.005
    camera_perspective: float = 1.0
    n_objects: tuple[int, int] = (1, 3)
    object_speed: tuple[float, float] = (10.0, 60.0)
    object_spin: float = 4.0
    object_radius: tuple[float, float] = (0.1, 0.25)
    object_contrast: tuple[float, float] = (2.0, 5.0)
    object_edge: float = 1.5
    object_on_clipped: float = 0.75
    shot_noise: float = 1e-4
    read_noise: float = 2e-4
    crf: str = "gamma"
    bit_depth: int = 16
    saturation: tuple[float, float] = (0.05, 0.25)
    crop_candidates: int = 12
    still: float = 0.0
    radiance_zoom: tuple[float, float] = (1.0, 1.0)
    radiance_flip: bool = False
    white_balance: float = 0.0
    noise_gain: tuple[float, float] = (1.0, 1.0)
    keep_radiance: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            self.size = (self.size, self.size)
        self.size = tuple(int(s) for s in self.size)
        if len(self.size) != 2 or min(self.size) < 8:
            raise HDRZooError(
                f"SyntheticConfig.size must be (H, W) with both >= 8, got {self.size}"
            )
        if self.evs is not None:
            self.evs = tuple(float(e) for e in self.evs)
            if len(self.evs) < 2 or any(b <= a for a, b in zip(self.evs, self.evs[1:])):
                raise HDRZooError(
                    f"SyntheticConfig.evs must hold >= 2 strictly increasing EVs, got {self.evs}"
                )
            self.n_frames = len(self.evs)
        if self.n_frames < 2:
            raise HDRZooError(f"SyntheticConfig.n_frames must be >= 2, got {self.n_frames}")
        self.ev_steps = tuple(float(s) for s in _as_tuple(self.ev_steps))
        if not self.ev_steps or min(self.ev_steps) <= 0:
            raise HDRZooError(
                f"SyntheticConfig.ev_steps must be positive stops, got {self.ev_steps}"
            )
        if self.ref is not None and not 0 <= self.ref < self.n_frames:
            raise HDRZooError(
                f"SyntheticConfig.ref = {self.ref} is out of range for {self.n_frames} frames"
            )
        for name in ("camera_translation", "object_speed", "object_radius", "object_contrast",
                     "saturation", "n_objects", "radiance_zoom", "noise_gain"):  # fmt: skip
            value = tuple(_as_tuple(getattr(self, name)))
            if len(value) != 2 or value[0] > value[1] or value[0] < 0:
                raise HDRZooError(
                    f"SyntheticConfig.{name} must be a (min, max) pair with 0 <= min <= max, got {value}"
                )
            setattr(self, name, value)
        if self.object_radius[1] > 0.5:
            raise HDRZooError("SyntheticConfig.object_radius is a fraction of min(H, W), <= 0.5")
        if self.crf not in ("gamma", "s-curve", "random"):
            raise HDRZooError(
                f"SyntheticConfig.crf must be 'gamma', 's-curve' or 'random', got {self.crf!r}"
            )
        for name in ("radiance_zoom", "noise_gain"):
            if not min(getattr(self, name)) > 0:
                raise HDRZooError(f"SyntheticConfig.{name} must be positive factors")
        if not 0.0 <= self.still <= 1.0:
            raise HDRZooError(f"SyntheticConfig.still is a probability, got {self.still}")
        if self.bit_depth not in (8, 16):
            raise HDRZooError(f"SyntheticConfig.bit_depth must be 8 or 16, got {self.bit_depth}")
        for name in ("camera_rotation", "camera_scale", "camera_perspective", "object_spin",
                     "object_edge", "shot_noise", "read_noise", "object_on_clipped",
                     "white_balance"):  # fmt: skip
            if not getattr(self, name) >= 0:
                raise HDRZooError(f"SyntheticConfig.{name} must be >= 0")
        if self.crop_candidates < 1:
            raise HDRZooError("SyntheticConfig.crop_candidates must be >= 1")
        if isinstance(self.radiance, (list, tuple)):
            if not self.radiance:
                raise HDRZooError("SyntheticConfig.radiance is an empty list")
            self.radiance = [str(r) for r in self.radiance]
        else:
            self.radiance = str(self.radiance)
        for source in _sources(self.radiance):
            if source not in ("assets", "procedural"):
                _check_radiance_path(source)

    @property
    def reference(self) -> int:
        """The reference index actually used (``ref`` or ``N // 2``)."""
        return self.n_frames // 2 if self.ref is None else int(self.ref)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-able dict."""
        return dataclasses.asdict(self)


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _sources(radiance: str | Sequence[str]) -> list[str]:
    return [radiance] if isinstance(radiance, str) else list(radiance)


RADIANCE_SUFFIXES = (".hdr", ".exr")
"""File name endings of the radiance maps the simulator reads."""


def _check_radiance_path(source: str) -> None:
    path = Path(source)
    if path.is_dir():
        radiance_folder(path)  # raises when the folder holds no map
        return
    if path.suffix.lower() not in RADIANCE_SUFFIXES:
        raise HDRZooError(
            f"SyntheticConfig.radiance: {source!r} is neither 'assets', 'procedural', a "
            ".hdr / .exr file nor a folder of them"
        )
    if not path.is_file():
        raise ReadError(f"SyntheticConfig.radiance: radiance map {path} does not exist")


def radiance_folder(folder: str | os.PathLike) -> list[Path]:
    """The ``.hdr`` / ``.exr`` radiance maps directly in ``folder``, sorted by name.

    Examples:
        >>> [p.name for p in radiance_folder(ASSETS_DIR)]
        ['city.exr', 'sunset.exr']
    """
    path = Path(folder)
    maps = sorted(p for p in path.glob("*") if p.suffix.lower() in RADIANCE_SUFFIXES)
    maps = [p for p in maps if p.is_file()]
    if not maps:
        raise ReadError(
            f"SyntheticConfig.radiance: the folder {path} holds no .hdr / .exr radiance map"
        )
    return maps


def asset_paths() -> list[Path]:
    """The packaged CC0 radiance maps (equirectangular, linear RGB)."""
    paths = sorted(ASSETS_DIR.glob("*.exr"))
    if not paths:
        raise ReadError(
            f"no radiance maps in {ASSETS_DIR}; the hdrzoo installation is incomplete "
            "(reinstall, or pass radiance='procedural' or a path to a .hdr / .exr file)"
        )
    return paths


# ----------------------------------------------------------------------------- radiance maps


@lru_cache(maxsize=8)
def _load_map(path: str, mtime_ns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A radiance map ``(3, H, W)`` with negatives clipped, and its average-pooled copy."""
    del mtime_ns  # part of the cache key only: an edited file is read again
    radiance = read_hdr(path).clamp_(min=0.0)
    if radiance.shape[-2] < 8 or radiance.shape[-1] < 8:
        raise ReadError(f"radiance map {path} is too small ({tuple(radiance.shape[-2:])})")
    if not float(radiance.max()) > 0:
        raise ReadError(f"radiance map {path} is black; it cannot be exposed")
    pooled = F.avg_pool2d(radiance[None], _DOWNSAMPLE, ceil_mode=True)[0]
    return radiance, pooled


def _radiance_map(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    return _load_map(os.path.abspath(path), os.stat(path).st_mtime_ns)


def _is_panorama(radiance: torch.Tensor) -> bool:
    height, width = radiance.shape[-2:]
    return width == 2 * height


def _usable_rows(height: int, panorama: bool) -> tuple[int, int]:
    if not panorama:
        return 0, height
    margin = int(round(height * _POLE_FRACTION))
    return margin, height - margin


def _window(
    radiance: torch.Tensor,
    top: int,
    left: int,
    height: int,
    width: int,
    wrap: bool,
    out_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Rows ``top:top+height`` and columns ``left:left+width`` (wrapping if ``wrap``), resized."""
    if wrap:
        left %= radiance.shape[-1]
    inside = top >= 0 and left >= 0 and top + height <= radiance.shape[-2]
    if inside and left + width <= radiance.shape[-1]:
        window = radiance[:, top : top + height, left : left + width]  # no seam: a view
    else:
        rows = torch.arange(top, top + height).clamp(0, radiance.shape[-2] - 1)
        cols = torch.arange(left, left + width)
        cols = cols % radiance.shape[-1] if wrap else cols.clamp(0, radiance.shape[-1] - 1)
        window = radiance.index_select(-2, rows).index_select(-1, cols)
    if out_size is not None and tuple(out_size) != (height, width):
        shrinks = out_size[0] < height or out_size[1] < width
        window = resize(
            window[None],
            out_size,
            interpolation="bilinear",
            align_corners=True,
            antialias=shrinks,
        )[0]
    return window


def _scaled_extent(extent: tuple[int, int], available: tuple[int, int]) -> tuple[int, int, float]:
    """Map pixels to read for an ``extent`` of scene pixels, upscaling when the map is too small."""
    zoom = max(1.0, extent[0] / available[0], extent[1] / available[1])
    return (
        min(available[0], math.ceil(extent[0] / zoom)),
        min(available[1], math.ceil(extent[1] / zoom)),
        zoom,
    )


def _percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """``numpy.percentile(values, q)`` (linear interpolation) over the last dimension, via topk."""
    n = values.shape[-1]
    position = q / 100.0 * (n - 1)
    low = int(math.floor(position))
    above = n - low  # elements at sorted index >= low
    top = torch.topk(values, min(above, n), dim=-1, sorted=True).values
    v_low = top[..., above - 1]
    v_high = top[..., max(above - 2, 0)]
    return v_low + (position - low) * (v_high - v_low)


def _log_luminance_texture(window: torch.Tensor) -> torch.Tensor:
    """Mean absolute gradient of log2 luminance: how much texture a crop candidate has."""
    lum = 0.2126 * window[:, 0] + 0.7152 * window[:, 1] + 0.0722 * window[:, 2]
    log_lum = torch.log2(lum + 1e-4)
    gx = (log_lum[..., :, 1:] - log_lum[..., :, :-1]).abs().mean(dim=(-2, -1))
    gy = (log_lum[..., 1:, :] - log_lum[..., :-1, :]).abs().mean(dim=(-2, -1))
    return gx + gy


def _pooled_views(
    pooled: torch.Tensor,
    tops: np.ndarray,
    lefts: np.ndarray,
    size: tuple[int, int],
    panorama: bool,
) -> torch.Tensor:
    """Windows ``(K, 3, h, w)`` of the pooled map at full-resolution corners ``tops, lefts``."""
    vh, vw = max(1, size[0] // _DOWNSAMPLE), max(1, size[1] // _DOWNSAMPLE)
    rows = torch.from_numpy(tops // _DOWNSAMPLE)[:, None] + torch.arange(vh)
    rows = rows.clamp(0, pooled.shape[-2] - 1)
    cols = torch.from_numpy(lefts // _DOWNSAMPLE)[:, None] + torch.arange(vw)
    cols = cols % pooled.shape[-1] if panorama else cols.clamp(0, pooled.shape[-1] - 1)
    return pooled[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)


def _choose_crop(
    pooled: torch.Tensor,
    panorama: bool,
    rows: tuple[int, int],
    view: tuple[int, int],
    view_offset: tuple[int, int],
    canvas: tuple[int, int],
    t_ref: float,
    config: SyntheticConfig,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """Top-left map pixel of the canvas: a textured crop whose reference saturates as targeted.

    Candidates are scored on the pooled map: k from the percentile of the reference view,
    then the fraction of pixels whose brightest channel saturates at the reference exposure.
    Among the candidates within ``config.saturation``, one of the more textured half is drawn.
    """
    width = pooled.shape[-1] * _DOWNSAMPLE
    span_rows = rows[1] - rows[0] - canvas[0]
    span_cols = width - canvas[1] if not panorama else width
    count = config.crop_candidates
    tops = rows[0] + rng.integers(0, max(span_rows, 0) + 1, size=count)
    lefts = rng.integers(0, max(span_cols, 0) + 1, size=count)
    off_r, off_c = view_offset  # score the reference view only, not the margins
    views = _pooled_views(pooled, tops + off_r, lefts + off_c, view, panorama)
    scale = _percentile(views.reshape(count, -1), PERCENTILE).clamp(min=1e-12)
    brightest = views.amax(dim=1) / scale[:, None, None] * t_ref
    saturated = (brightest >= SATURATED_LDR**GAMMA).float().mean(dim=(-2, -1))
    texture = _log_luminance_texture(views)
    low, high = config.saturation
    ok = (saturated >= low) & (saturated <= high)
    if bool(ok.any()):
        candidates = torch.nonzero(ok).flatten()
        order = candidates[torch.argsort(texture[candidates], descending=True, stable=True)]
        pick = order[int(rng.integers(0, max(1, (len(order) + 1) // 2)))]
    else:  # nothing in range: the closest saturation, in log ratio
        distance = torch.where(
            saturated < low,
            torch.log((low + 1e-4) / (saturated + 1e-4)),
            torch.log((saturated + 1e-4) / (high + 1e-4)),
        )
        pick = torch.argmin(distance)
    return int(tops[int(pick)]), int(lefts[int(pick)])


# ----------------------------------------------------------------------------- procedural scenes


def _smooth_noise(
    channels: int, height: int, width: int, cells: int, generator: torch.Generator
) -> torch.Tensor:
    """Value noise: ``cells`` random values across the longer side, bilinearly upsampled."""
    ch = max(2, round(cells * height / max(height, width)) + 1)
    cw = max(2, round(cells * width / max(height, width)) + 1)
    coarse = torch.rand(1, channels, ch, cw, generator=generator) * 2.0 - 1.0
    return resize(coarse, (height, width), interpolation="bilinear", align_corners=True)[0]


def procedural_radiance(
    height: int,
    width: int,
    generator: torch.Generator,
    sky: bool = True,
    emitters: bool = True,
) -> torch.Tensor:
    """A procedural linear radiance map: textured albedo x smooth light + sky + emitters.

    Albedo in [0.02, 0.9] (coloured multi-octave noise and a few sharp-edged rectangles),
    lit by a smooth illumination with soft shadows (about -6.5 to +2.5 stops), often below a
    sky 32-64 times brighter than unit light, and one to three tiny emitters of 2^10-2^13
    (together well under 0.1 % of the pixels, so that they clip in every frame, as a lamp or
    the sun does): the darkest texture (~2^-12) and the brightest light are more than 12
    stops apart.

    Args:
        height: rows H.
        width: columns W.
        generator: the source of randomness (seeded by the caller).
        sky: whether a sky may appear (with probability 0.6).
        emitters: whether to add the emitters (off for sprite textures).

    Returns:
        Non-negative radiance ``(3, H, W)``, float32.

    Examples:
        >>> r = procedural_radiance(32, 48, torch.Generator().manual_seed(0))
        >>> r.shape, bool((r >= 0).all())
        (torch.Size([3, 32, 48]), True)
    """
    g = generator

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(1, generator=g))

    detail = sum(
        0.35 * _smooth_noise(1, height, width, cells, g)
        for cells in (6, 16, 40, max(40, max(height, width) // 8))
    )
    colour = 0.15 + 0.7 * torch.rand(3, 1, 1, generator=g)
    tint = 0.3 * _smooth_noise(3, height, width, 3, g)
    albedo = colour * torch.exp(tint + detail)
    for _ in range(int(torch.randint(4, 11, (1,), generator=g))):
        y0, x0 = int(uniform(0, height - 2)), int(uniform(0, width - 2))
        y1 = min(height, y0 + 2 + int(uniform(0.05, 0.4) * height))
        x1 = min(width, x0 + 2 + int(uniform(0.05, 0.4) * width))
        patch_colour = 0.03 + 0.87 * torch.rand(3, 1, 1, generator=g)
        albedo[:, y0:y1, x0:x1] = patch_colour * torch.exp(0.5 * detail[:, y0:y1, x0:x1])
    albedo = albedo.clamp_(0.02, 0.9)

    shadow = torch.sigmoid(10.0 * _smooth_noise(1, height, width, 5, g))
    light = torch.exp2(2.5 * _smooth_noise(1, height, width, 2, g) - 4.0 * shadow)
    radiance = albedo * light

    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    if sky and uniform(0, 1) < 0.6:
        horizon = uniform(0.1, 0.4)
        tilt = uniform(-0.1, 0.1)
        sky_mask = torch.sigmoid((horizon + tilt * (xs - 0.5) - ys) * height / 2.0)
        sky_radiance = torch.exp2(5.0 + (ys / horizon).clamp(max=1.0)) * (1.0 + 0.1 * detail)
        sky_colour = torch.tensor([0.7, 0.85, 1.0])[:, None, None]
        radiance = radiance * (1 - sky_mask) + sky_colour * sky_radiance * sky_mask

    count = 1 + int(torch.randint(0, 3, (1,), generator=g)) if emitters else 0
    for _ in range(count):
        cy, cx = uniform(0, 1), uniform(0, 1)
        # discs of at most 0.015 % of the image each, soft edge included: under the
        # 99.9th percentile together, so that k is set by the scene, not by the lamps
        radius = uniform(0.5, 1.0) * math.sqrt(1.5e-4 * height * width / math.pi) - 1.0
        radius = max(0.5, radius)
        power = 2.0 ** uniform(10.0, 13.0)
        colour = 0.7 + 0.3 * torch.rand(3, 1, 1, generator=g)
        distance = torch.sqrt(((ys - cy) * (height - 1)) ** 2 + ((xs - cx) * (width - 1)) ** 2)
        disc = (radius + 0.5 - distance).clamp(0.0, 1.0)
        radiance = radiance + colour * power * disc
    return radiance.float()


def _illuminant(stops: float, rng: np.random.Generator) -> torch.Tensor:
    """Per-channel gains ``(3, 1, 1)`` within +-``stops``, scaled to keep luminance."""
    gains = torch.from_numpy(2.0 ** rng.uniform(-stops, stops, 3)).float()
    return (gains / float(_luminance(gains[:, None, None]))).view(3, 1, 1)


# ----------------------------------------------------------------------------- geometry


def _translation(tx: float, ty: float) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _camera_motions(
    config: SyntheticConfig, n: int, ref: int, rng: np.random.Generator
) -> torch.Tensor:
    """Homographies ``(N, 3, 3)`` from reference pixel coordinates to each frame's (identity at ref).

    A similarity about the image centre (roll, zoom, shift), then each image corner moved by
    up to ``camera_perspective`` pixels: ``get_perspective_transform`` turns that into a homography.
    """
    height, width = config.size
    others = [i for i in range(n) if i != ref]
    m = len(others)
    angle = torch.from_numpy(rng.uniform(-config.camera_rotation, config.camera_rotation, m))
    zoom = torch.from_numpy(1.0 + rng.uniform(-config.camera_scale, config.camera_scale, m))
    shift = rng.uniform(*config.camera_translation, m)
    direction = rng.uniform(0.0, 2 * math.pi, m)
    jitter = torch.from_numpy(
        rng.uniform(-config.camera_perspective, config.camera_perspective, (m, 4, 2))
    )
    centre = torch.tensor([[(width - 1) / 2, (height - 1) / 2]], dtype=torch.float64).expand(m, 2)
    similarity = torch.eye(3, dtype=torch.float64).repeat(m, 1, 1)
    similarity[:, :2] = get_rotation_matrix2d(centre, angle, zoom[:, None].expand(m, 2))
    similarity[:, 0, 2] += torch.from_numpy(shift * np.cos(direction))
    similarity[:, 1, 2] += torch.from_numpy(shift * np.sin(direction))
    corners = torch.tensor(
        [[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]],
        dtype=torch.float64,
    ).expand(m, 4, 2)
    moved = transform_points(similarity, corners) + jitter
    motions = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    if m:
        motions[others] = get_perspective_transform(corners, moved)
    return motions


def _canvas_bounds(motions: torch.Tensor, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, width, height)`` in reference coordinates covering what every frame sees."""
    height, width = size
    corners = torch.tensor(
        [[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]],
        dtype=torch.float64,
    ).expand(motions.shape[0], 4, 2)
    seen = transform_points(torch.linalg.inv(motions), corners).reshape(-1, 2)
    x0 = math.floor(float(seen[:, 0].min())) - 2
    y0 = math.floor(float(seen[:, 1].min())) - 2
    x1 = math.ceil(float(seen[:, 0].max())) + 2
    y1 = math.ceil(float(seen[:, 1].max())) + 2
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def _background_flow(motions: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``flow_i(p) = M_i(p) - p`` on the reference grid, ``(N, 2, H, W)``, channel 0 = x.

    The homography is applied in closed form on separable coordinate vectors: a few outer
    sums per frame instead of a batched matrix product over every pixel (float32 keeps
    coordinates below 10^4 px to ~1e-3 px).
    """
    height, width = size
    xs = torch.arange(width, dtype=torch.float32)[None, :]
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    flow = torch.zeros(motions.shape[0], 2, height, width)
    for i, m in enumerate(motions.tolist()):
        if m == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]:
            continue
        denominator = (m[2][0] * xs + m[2][2]) + m[2][1] * ys
        torch.div((m[0][0] * xs + m[0][2]) + m[0][1] * ys, denominator, out=flow[i, 0])
        torch.div((m[1][0] * xs + m[1][2]) + m[1][1] * ys, denominator, out=flow[i, 1])
        flow[i, 0].sub_(xs)
        flow[i, 1].sub_(ys)
    return flow


# ----------------------------------------------------------------------------- sprites


def _matte(
    shape: str, size: int, radius: float, params: dict[str, Any], edge: float
) -> torch.Tensor:
    """Soft alpha ``(size, size)``: a linear ramp of width ``edge`` px across the outline."""
    centre = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float32) - centre
    y, x = coords[:, None], coords[None, :]
    if shape == "ellipse":
        a, b = params["axes"]
        level = torch.sqrt((x / a) ** 2 + (y / b) ** 2)
        # the implicit function's gradient is ~1/min(a, b) near the outline: distance in px
        signed = (1.0 - level) * min(a, b)
    else:
        vertices = params["vertices"]
        inner = params["inner"] * radius
        phase = params["phase"]
        angle = (torch.atan2(y, x) - phase) % (2 * math.pi)
        step = math.pi / vertices  # outer and inner vertices alternate every step
        index = torch.floor(angle / step)
        frac = angle / step - index
        r_start = torch.where(index % 2 == 0, torch.tensor(radius), torch.tensor(inner))
        r_end = torch.where(index % 2 == 0, torch.tensor(inner), torch.tensor(radius))
        outline = r_start + (r_end - r_start) * frac
        signed = outline - torch.sqrt(x**2 + y**2)
    return (signed / max(edge, 1e-6) + 0.5).clamp(0.0, 1.0)


@dataclass
class _Sprite:
    rgba: torch.Tensor  # (4, S, S): premultiplied radiance and alpha
    centre: tuple[float, float]
    velocity: tuple[float, float]
    angle: float
    spin: float
    info: dict[str, Any]

    def poses(self, steps: torch.Tensor) -> torch.Tensor:
        """Sprite pixel -> reference coordinates ``(K, 3, 3)``, ``steps`` frames after the reference."""
        half = (self.rgba.shape[-1] - 1) / 2
        count = steps.shape[0]
        centres = torch.tensor([self.centre], dtype=torch.float64)
        centres = centres + steps[:, None] * torch.tensor([self.velocity], dtype=torch.float64)
        poses = torch.eye(3, dtype=torch.float64).repeat(count, 1, 1)
        # rotation about the sprite centre, then its centre moved to the pose's position
        poses[:, :2] = get_rotation_matrix2d(
            torch.full((count, 2), half, dtype=torch.float64),
            self.angle + self.spin * steps,
            torch.ones(count, 2, dtype=torch.float64),
        )
        poses[:, :2, 2] += centres - half
        return poses


def _luminance(radiance: torch.Tensor) -> torch.Tensor:
    return 0.2126 * radiance[0] + 0.7152 * radiance[1] + 0.0722 * radiance[2]


class _ReferenceExposure:
    """The reference frame's background as the camera will expose it (before sprites).

    Where the reference clips (saturated where a shorter frame exists, nearly black where a
    longer one exists) the classic merge takes the other frames, so a sprite moving there
    leaves real ghosts, as in the reference fixtures, whose objects cross saturated sky.
    """

    def __init__(self, background: torch.Tensor, t_ref: float, ref: int, n: int) -> None:
        self.background = background
        self.scale = float(_percentile(background[:, ::2, ::2].reshape(1, -1), PERCENTILE)[0])
        self.gain = t_ref / self.scale if self.scale > 0 else 0.0
        self.can_saturate = ref > 0
        self.can_darken = ref < n - 1

    def clipped_anchors(self) -> torch.Tensor:
        """(x, y) ``(K, 2)`` of clipped reference pixels on a 4-px lattice of the image interior."""
        height, width = self.background.shape[-2:]
        y_lo, y_hi = int(0.1 * height), int(0.9 * height)
        x_lo, x_hi = int(0.1 * width), int(0.9 * width)
        lattice = self.background[:, y_lo:y_hi:_DOWNSAMPLE, x_lo:x_hi:_DOWNSAMPLE]
        brightest = lattice.amax(dim=0) * self.gain
        clipped = torch.zeros(brightest.shape, dtype=torch.bool)
        if self.gain > 0 and self.can_saturate:
            clipped |= brightest >= SATURATED_LDR**GAMMA
        if self.gain > 0 and self.can_darken:
            clipped |= brightest <= _DARK_LDR**GAMMA
        rows, cols = torch.nonzero(clipped, as_tuple=True)
        return torch.stack([x_lo + cols * _DOWNSAMPLE, y_lo + rows * _DOWNSAMPLE], dim=1).float()

    def level_around(self, centre: tuple[float, float], radius: float) -> float:
        """Mean background luminance in the box of half-size ``radius`` around ``centre``."""
        height, width = self.background.shape[-2:]
        x0 = min(max(int(centre[0] - radius), 0), width - 1)
        y0 = min(max(int(centre[1] - radius), 0), height - 1)
        x1 = max(min(int(centre[0] + radius) + 1, width), x0 + 1)
        y1 = max(min(int(centre[1] + radius) + 1, height), y0 + 1)
        return float(_luminance(self.background[:, y0:y1, x0:x1]).mean())


def _make_sprites(
    config: SyntheticConfig,
    texture_source: Callable[[int], torch.Tensor],
    rng: np.random.Generator,
    reference: _ReferenceExposure,
) -> list[_Sprite]:
    """Sprites with mattes, textures and motion, placed and lit against the reference."""
    height, width = config.size
    count = int(rng.integers(config.n_objects[0], config.n_objects[1] + 1))
    anchors = reference.clipped_anchors() if count else torch.zeros(0, 2)
    sprites = []
    for index in range(count):
        radius = float(rng.uniform(*config.object_radius)) * min(height, width)
        radius = max(radius, 3.0)
        size = 2 * math.ceil(radius + config.object_edge) + 3
        shape = "ellipse" if rng.random() < 0.5 else "star"
        if shape == "ellipse":
            params: dict[str, Any] = {
                "axes": (radius, radius * float(rng.uniform(0.45, 1.0))),
            }
        else:
            params = {
                "vertices": int(rng.integers(5, 9)),
                "inner": float(rng.uniform(0.45, 0.75)),
                "phase": float(rng.uniform(0, 2 * math.pi)),
            }
        alpha = _matte(shape, size, radius, params, config.object_edge)
        texture = texture_source(size)
        speed = float(rng.uniform(*config.object_speed))
        heading = float(rng.uniform(0, 2 * math.pi))
        if len(anchors) and rng.random() < config.object_on_clipped:
            x, y = anchors[int(rng.integers(0, len(anchors)))].tolist()
            centre = (x + float(rng.uniform(-2, 2)), y + float(rng.uniform(-2, 2)))
        else:
            centre = (
                float(rng.uniform(0.15, 0.85)) * (width - 1),
                float(rng.uniform(0.15, 0.85)) * (height - 1),
            )
        # the sprite's mean level sits `contrast` stops away from the background it starts
        # on: darker over what the reference saturates, brighter over what it crushes
        background = reference.level_around(centre, radius)
        exposed = background * reference.gain
        contrast = float(rng.uniform(*config.object_contrast))
        if reference.can_saturate and exposed >= 0.5:
            sign = -1.0
        elif reference.can_darken and exposed <= _DARK_LDR**GAMMA:
            sign = 1.0
        else:
            sign = 1.0 if rng.random() < 0.5 else -1.0
        own = float((_luminance(texture) * alpha).sum() / alpha.sum().clamp(min=1e-6))
        target = background * 2.0 ** (sign * contrast)
        if reference.scale > 0:  # a sprite must not become the scene's brightest light
            target = min(target, 0.5 * reference.scale)
        gain = target / own if own > 0 and target > 0 else 1.0
        texture = texture * gain
        sprite = _Sprite(
            rgba=torch.cat([texture * alpha, alpha[None]], dim=0),
            centre=centre,
            velocity=(speed * math.cos(heading), speed * math.sin(heading)),
            angle=float(rng.uniform(0, 360)),
            spin=float(rng.uniform(-config.object_spin, config.object_spin)),
            info={
                "index": index,
                "shape": shape,
                "radius_px": radius,
                "speed_px": speed,
                "contrast_stops": sign * contrast,
                "gain": gain,
                "centre_ref": centre,
            },
        )
        sprites.append(sprite)
    return sprites


def _composite(
    frames: torch.Tensor, masks: torch.Tensor, sprite: _Sprite, homographies: torch.Tensor
) -> None:
    """Paint ``sprite`` over each frame's linear radiance, in place.

    Args:
        frames: linear radiance ``(N, 3, H, W)``.
        masks: sprite coverage ``(N, 1, H, W)``, updated with this sprite's alpha.
        sprite: the sprite (premultiplied radiance and alpha).
        homographies: sprite pixel -> frame pixel coordinates ``(N, 3, 3)``, float64.
    """
    n, _, height, width = frames.shape
    size = sprite.rgba.shape[-1]
    corners = torch.tensor(
        [[0.0, 0.0], [size - 1.0, 0.0], [size - 1.0, size - 1.0], [0.0, size - 1.0]],
        dtype=torch.float64,
    ).expand(n, 4, 2)
    seen = transform_points(homographies, corners)
    low = (seen.amin(dim=1).floor() - 1).clamp(min=0).long().tolist()
    high = seen.amax(dim=1).ceil() + 1
    high = torch.minimum(high, torch.tensor([width - 1.0, height - 1.0], dtype=torch.float64))
    high = high.long().tolist()
    boxes = [
        (i, x0, y0, x1, y1)
        for i, ((x0, y0), (x1, y1)) in enumerate(zip(low, high))
        if x1 >= x0 and y1 >= y0  # else out of view in that frame
    ]
    if not boxes:
        return
    # one warp for all frames, into a box as large as the largest bounding box: the cost
    # scales with the sprite, not with the frame
    box_h = max(y1 - y0 + 1 for _, _, y0, _, y1 in boxes)
    box_w = max(x1 - x0 + 1 for _, x0, _, x1, _ in boxes)
    index = [b[0] for b in boxes]
    offsets = torch.eye(3, dtype=torch.float64).repeat(len(boxes), 1, 1)
    offsets[:, 0, 2] = -torch.tensor([float(b[1]) for b in boxes], dtype=torch.float64)
    offsets[:, 1, 2] = -torch.tensor([float(b[2]) for b in boxes], dtype=torch.float64)
    matrices = (offsets @ homographies[index]).float()
    source = sprite.rgba[None].expand(len(boxes), -1, -1, -1).contiguous()
    warped = warp_perspective(source, matrices, (box_h, box_w))
    for (i, x0, y0, x1, y1), patch in zip(boxes, warped):
        patch = patch[:, : y1 - y0 + 1, : x1 - x0 + 1]
        alpha = patch[3:4]
        frames[i, :, y0 : y1 + 1, x0 : x1 + 1].mul_(1.0 - alpha).add_(patch[:3])
        masks[i, :, y0 : y1 + 1, x0 : x1 + 1].mul_(1.0 - alpha).add_(alpha)


# ----------------------------------------------------------------------------- capture


def _s_curve(encoded: torch.Tensor, strength: float = _S_CURVE_STRENGTH) -> torch.Tensor:
    """A smooth S on gamma-encoded values: monotone (slope >= 1 - strength), fixes 0 and 1."""
    smooth = encoded * encoded * (3.0 - 2.0 * encoded)
    return (1.0 - strength) * encoded + strength * smooth


@dataclass
class _Camera:
    """One bracket's sensor and response: noise levels, encoding gamma, S-curve strength."""

    shot_noise: float
    read_noise: float
    gamma: float = GAMMA
    s_strength: float = 0.0

    @classmethod
    def draw(cls, config: SyntheticConfig, rng: np.random.Generator) -> _Camera:
        camera = cls(config.shot_noise, config.read_noise)
        if config.crf == "s-curve":
            camera.s_strength = _S_CURVE_STRENGTH
        elif config.crf == "random":  # draws only when asked: default brackets keep their bytes
            camera.gamma = float(rng.uniform(*CRF_GAMMA))
            camera.s_strength = float(rng.uniform(*CRF_S_STRENGTH))
        if config.noise_gain != (1.0, 1.0):
            camera.shot_noise *= _log_uniform(rng, config.noise_gain)
            camera.read_noise *= _log_uniform(rng, config.noise_gain)
        return camera


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def _capture(
    signal: torch.Tensor, camera: _Camera, bit_depth: int, generator: torch.Generator
) -> torch.Tensor:
    """Noisy, clipped, encoded and quantised frames from the linear signal ``k R_i t_i``.

    Poisson-Gaussian noise in its Gaussian form (variance ``shot * signal + read**2``, the
    usual heteroscedastic model): exact Poisson sampling would cost ten times the rest of
    the simulation, and at 10^4 electrons full well the two are indistinguishable.
    """
    std = (signal * camera.shot_noise).add_(camera.read_noise**2).sqrt_()
    exposed = torch.randn(signal.shape, generator=generator).mul_(std).add_(signal)
    exposed.clamp_(0.0, 1.0).pow_(1.0 / camera.gamma)
    if camera.s_strength:
        exposed = _s_curve(exposed, camera.s_strength)
    levels = float(2**bit_depth - 1)
    return exposed.mul_(levels).round_().div_(levels)


# ----------------------------------------------------------------------------- the simulator


def _resolve_config(config: SyntheticConfig | None, overrides: dict[str, Any]) -> SyntheticConfig:
    base = config if config is not None else SyntheticConfig()
    if not isinstance(base, SyntheticConfig):
        if isinstance(base, dict):
            overrides = {**base, **overrides}
            base = SyntheticConfig()
        else:
            raise HDRZooError(
                f"config must be a SyntheticConfig or a dict, got {type(base).__name__}"
            )
    if not overrides:
        return base
    fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise HDRZooError(f"unknown synthetic option(s) {unknown}; valid options: {sorted(fields)}")
    if "evs" not in overrides and "n_frames" in overrides and base.evs is not None:
        overrides = {**overrides, "evs": None}
    return dataclasses.replace(base, **overrides)


def synthesize(seed: int, config: SyntheticConfig | None = None, **overrides: Any) -> Bracket:
    """Simulate one bracket of a dynamic HDR scene, deterministically from ``seed``.

    Steps (DATA.md): choose a radiance source and a crop (or a procedural scene); draw a
    camera homography per non-reference frame and 1-3 moving sprites; render each frame's
    linear radiance with kornia warps; scale by ``k`` so that the 99.9th percentile of the
    reference radiance is 1; capture each frame as ``k R_i t_i`` plus Poisson-Gaussian
    noise, clipped, encoded by the CRF and quantised.

    Args:
        seed: non-negative integer; the same seed and config give identical bytes.
        config: a :class:`SyntheticConfig` (default: ``SyntheticConfig()``).
        **overrides: fields of :class:`SyntheticConfig` to replace, e.g. ``size=(128, 128)``.

    Returns:
        A :class:`~hdrzoo.Bracket` with ``ldr (N, 3, H, W)`` sorted by exposure,
        ``exposures (N,)`` (``2 ** (ev - min ev)``), ``ref``, ``gt = min(k R_ref, 1)``
        ``(3, H, W)`` (noise-free, reference geometry) and ``meta`` with ``flow (N, 2, H, W)``
        (true background flow from the reference to each frame, pixels, channel 0 = x:
        ``frame_i(p + flow_i(p)) ~ ref(p)`` on the background), ``object_masks (N, 1, H, W)``
        (each frame's sprite coverage in its own geometry), ``k``, ``evs``, ``seed``,
        ``config``, ``source``, ``saturated`` (fraction of saturated pixels per frame),
        ``camera`` (the homographies) and ``objects``.

    Examples:
        >>> b = synthesize(3, size=(64, 96), evs=(-3, 0, 3), bit_depth=8)
        >>> b.exposures.tolist(), tuple(b.meta["flow"].shape)
        ([1.0, 8.0, 64.0], (3, 2, 64, 96))
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise HDRZooError(f"synthesize: seed must be a non-negative integer, got {seed!r}")
    cfg = _resolve_config(config, overrides)
    # The arrays are small: torch's intra-op threads cost more than they save, and on a
    # busy machine they make a sample several times slower. DataLoader workers run on
    # one thread anyway; the caller's setting is restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _synthesize(int(seed), cfg)
    finally:
        torch.set_num_threads(threads)


def _synthesize(seed: int, cfg: SyntheticConfig) -> Bracket:
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    height, width = cfg.size
    n, ref = cfg.n_frames, cfg.reference

    if cfg.evs is not None:
        evs = list(cfg.evs)
    else:
        step = float(cfg.ev_steps[int(rng.integers(0, len(cfg.ev_steps)))])
        evs = [step * (i - ref) for i in range(n)]
    exposures = [2.0 ** (ev - evs[0]) for ev in evs]

    still = cfg.still > 0 and rng.random() < cfg.still
    if still:  # every frame sees the reference's geometry: nothing to align
        cfg = dataclasses.replace(cfg, n_objects=(0, 0))
        motions = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    else:
        motions = _camera_motions(cfg, n, ref, rng)
    x0, y0, canvas_w, canvas_h = _canvas_bounds(motions, cfg.size)

    sources = _sources(cfg.radiance)
    source = sources[int(rng.integers(0, len(sources)))]
    if source == "assets" or (source != "procedural" and Path(source).is_dir()):
        maps = asset_paths() if source == "assets" else radiance_folder(source)
        source = str(maps[int(rng.integers(0, len(maps)))])

    if source == "procedural":
        canvas = procedural_radiance(canvas_h, canvas_w, generator)

        def texture_source(size: int) -> torch.Tensor:
            return procedural_radiance(size, size, generator, sky=False, emitters=False)

        source_name = "procedural"
    else:
        radiance, pooled = _radiance_map(source)
        panorama = _is_panorama(radiance)
        rows = _usable_rows(radiance.shape[-2], panorama)
        available = (rows[1] - rows[0], radiance.shape[-1])
        magnification = 1.0
        if cfg.radiance_zoom != (1.0, 1.0):
            magnification = _log_uniform(rng, cfg.radiance_zoom)
        extent = (math.ceil(canvas_h / magnification), math.ceil(canvas_w / magnification))
        read_h, read_w, zoom = _scaled_extent(extent, available)
        zoom *= magnification
        view = (max(1, round(height / zoom)), max(1, round(width / zoom)))
        view_offset = (int(-y0 / zoom), int(-x0 / zoom))
        top, left = _choose_crop(
            pooled, panorama, rows, view, view_offset, (read_h, read_w), exposures[ref], cfg, rng
        )
        canvas = _window(radiance, top, left, read_h, read_w, panorama, (canvas_h, canvas_w))
        if cfg.radiance_flip and rng.random() < 0.5:
            canvas = canvas.flip(-1)

        def texture_source(size: int) -> torch.Tensor:
            # the most textured of a few windows from another part of the map: a flat
            # patch of sky would make a sprite that is invisible wherever it saturates
            tex_h, tex_w, _ = _scaled_extent((size, size), available)
            tops = rows[0] + rng.integers(0, available[0] - tex_h + 1, size=_TEXTURE_CANDIDATES)
            if panorama:  # the far side of the panorama
                span = radiance.shape[-1]
                lefts = (
                    left
                    + read_w // 2
                    + span // 4
                    + rng.integers(0, span // 2 + 1, size=_TEXTURE_CANDIDATES)
                )
            else:
                lefts = rng.integers(0, radiance.shape[-1] - tex_w + 1, size=_TEXTURE_CANDIDATES)
            scores = _log_luminance_texture(
                _pooled_views(pooled, tops, lefts, (tex_h, tex_w), panorama)
            )
            best = int(torch.argmax(scores))
            return _window(
                radiance, int(tops[best]), int(lefts[best]), tex_h, tex_w, panorama, (size, size)
            )

        source_name = Path(source).name

    if cfg.white_balance > 0:  # another illuminant: for the background and the sprites
        illuminant = _illuminant(cfg.white_balance, rng)
        canvas = canvas * illuminant
        unlit_texture = texture_source

        def texture_source(size: int) -> torch.Tensor:
            return unlit_texture(size) * illuminant

    # render every frame's linear radiance: background through the camera, sprites on top
    frames = torch.empty(n, 3, height, width)
    canvas_to_ref = _translation(x0, y0)
    identity = torch.eye(3, dtype=torch.float64)
    for i in range(n):
        if i == ref or torch.equal(motions[i], identity):  # no resampling blur
            frames[i] = canvas[:, -y0 : -y0 + height, -x0 : -x0 + width]
        else:
            matrix = (motions[i] @ canvas_to_ref).float()[None]
            frames[i] = warp_perspective(canvas[None], matrix, (height, width))[0]
    reference = _ReferenceExposure(frames[ref], exposures[ref], ref, n)
    sprites = _make_sprites(cfg, texture_source, rng, reference)
    masks = torch.zeros(n, 1, height, width)
    steps = torch.arange(n, dtype=torch.float64) - ref
    for sprite in sprites:  # in a fixed depth order: later sprites occlude earlier ones
        _composite(frames, masks, sprite, motions @ sprite.poses(steps))

    scale = float(_percentile(frames[ref].reshape(1, -1), PERCENTILE)[0])
    if not scale > 0:
        raise HDRZooError(
            f"synthesize(seed={seed}): the reference view of {source_name} is black at the "
            f"{PERCENTILE}th percentile; use a brighter radiance map"
        )
    k = 1.0 / scale
    frames.mul_(k)
    gt = frames[ref].clamp(max=1.0)
    signal = frames * torch.tensor(exposures, dtype=torch.float32)[:, None, None, None]
    camera = _Camera.draw(cfg, rng)
    ldr = _capture(signal, camera, cfg.bit_depth, generator)

    meta: dict[str, Any] = {
        "source": source_name,
        "layout": "synthetic",
        "seed": seed,
        "config": cfg.to_dict(),
        "k": k,
        "evs": evs,
        "bit_depth": cfg.bit_depth,
        "crf": cfg.crf,
        "camera_response": {"gamma": camera.gamma, "s_strength": camera.s_strength},
        "noise": {"shot": camera.shot_noise, "read": camera.read_noise},
        "still": still,
        "flow": _background_flow(motions, cfg.size),
        "object_masks": masks,
        "saturated": (ldr.amax(dim=1) >= SATURATED_LDR).float().mean(dim=(-2, -1)).tolist(),
        "camera": motions.tolist(),
        "objects": [s.info for s in sprites],
    }
    if cfg.keep_radiance:
        meta["radiance"] = frames
    return Bracket(
        ldr=ldr,
        exposures=torch.tensor(exposures, dtype=torch.float32),
        ref=ref,
        gt=gt,
        name=f"synthetic-{seed}",
        meta=meta,
    )


class SyntheticDataset(torch.utils.data.Dataset):
    """A virtual dataset of synthetic brackets: item ``i`` is ``synthesize(seed + i).sample()``.

    Deterministic per index (so any DataLoader worker, sampler or DDP rank gets the same
    item for the same index), nothing is stored, and radiance maps are read once per process.

    Args:
        length: number of items.
        config: a :class:`SyntheticConfig` or a dict of its fields (default config if None).
        seed: seed of item 0.
        crop_size: if given, frames are generated at this size (int or ``(H, W)``) instead
            of ``config.size`` (generating at the crop size is cheaper than cropping).

    Examples:
        >>> ds = SyntheticDataset(4, seed=10, crop_size=32)
        >>> ds[1]["ldr"].shape
        torch.Size([3, 3, 32, 32])
    """

    def __init__(
        self,
        length: int,
        config: SyntheticConfig | dict | None = None,
        seed: int = 0,
        crop_size: int | tuple[int, int] | None = None,
    ) -> None:
        if length < 0:
            raise HDRZooError(f"SyntheticDataset: length must be >= 0, got {length}")
        if seed < 0:
            raise HDRZooError(f"SyntheticDataset: seed must be >= 0, got {seed}")
        overrides = {} if crop_size is None else {"size": crop_size}
        self.config = _resolve_config(config, overrides)
        self.length = int(length)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic brackets")
        return synthesize(self.seed + index % self.length, self.config).sample()
