"""Pictures for the demo, the docs and model debugging: tone-mapped HDR, error heat maps,
optical-flow colour wheels, masks, bracket strips and titled panel grids.

Every function is pure: it takes tensors (or numpy arrays) and returns a float32 RGB image
``(3, H, W)`` in [0, 1] on the CPU. Nothing is written to disk here; save the result with
``hdrzoo.io.write_image`` (8-bit PNG/JPEG) or keep it for a notebook.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch

from hdrzoo.errors import HDRZooError
from hdrzoo.ops.tonemap import GAMMA, mu_law, reinhard

__all__ = [
    "ErrorMap",
    "ERROR_PERCENTILE",
    "COLORMAPS",
    "display",
    "error_map",
    "flow_to_color",
    "flow_wheel",
    "mask_to_color",
    "prior_to_color",
    "bracket_strip",
    "side_by_side",
]

ArrayLike = torch.Tensor | np.ndarray

COLORMAPS = ("inferno", "viridis", "magma", "turbo", "jet", "gray")
"""Colormap names accepted by :func:`error_map` and :func:`mask_to_color` (OpenCV's maps)."""

ERROR_PERCENTILE = 99.0
"""Percentile of the per-pixel error that :func:`error_map` shows at the top colour by default."""

# Segment lengths of the Middlebury flow colour wheel (Baker et al., IJCV 2011): red ->
# yellow -> green -> cyan -> blue -> magenta -> red, denser where hue changes are most visible.
_WHEEL_SEGMENTS = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))


class ErrorMap(NamedTuple):
    """Result of :func:`error_map`: the heat map and the error shown at the top colour."""

    image: torch.Tensor
    vmax: float


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise HDRZooError(f"{name}: expected a torch tensor or numpy array, got {type(x).__name__}")
    if not x.is_floating_point():
        raise HDRZooError(f"{name}: expected floating-point values, got dtype {x.dtype}")
    x = x.detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise HDRZooError(f"{name} contains NaN or Inf values")
    return x


def _rgb(x: ArrayLike, name: str) -> torch.Tensor:
    x = _as_tensor(x, name)
    if x.ndim != 3 or x.shape[0] != 3 or x.shape[1] == 0 or x.shape[2] == 0:
        raise HDRZooError(f"{name}: expected an RGB image of shape (3, H, W), got {tuple(x.shape)}")
    return x


def _colormap(values: torch.Tensor, colormap: str) -> torch.Tensor:
    """Map ``(H, W)`` values in [0, 1] to RGB ``(3, H, W)`` through an 8-bit OpenCV colormap."""
    if colormap not in COLORMAPS:
        raise HDRZooError(f"colormap: unknown colormap {colormap!r}; choose one of {COLORMAPS}")
    codes = (values.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    if colormap == "gray":
        return torch.from_numpy(codes).float().div(255.0).expand(3, -1, -1).contiguous()
    import cv2

    bgr = cv2.applyColorMap(codes, getattr(cv2, f"COLORMAP_{colormap.upper()}"))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))
    return torch.from_numpy(rgb).float().div(255.0)


def display(
    hdr: ArrayLike, method: Literal["mu", "reinhard"] = "mu", exposure: float = 1.0
) -> torch.Tensor:
    """Tone map linear HDR for viewing.

    ``"mu"``: the papers' mu-law curve ``T(min(e x, 1))`` (mu = 5000), already perceptual, so
    no gamma is applied; this is how HDR results are shown in the papers. ``"reinhard"``: the
    global operator ``e x / (1 + e x)`` followed by display gamma ``1 / 2.2`` (its output is a
    linear display value).

    Args:
        hdr: linear HDR ``(3, H, W)``, units where the ground truth peaks at 1.
        method: ``"mu"`` or ``"reinhard"``.
        exposure: multiplier ``e`` applied to ``hdr`` first (> 0).

    Returns:
        float32 ``(3, H, W)`` in [0, 1].
    """
    x = _rgb(hdr, "hdr")
    if not (math.isfinite(exposure) and exposure > 0):
        raise HDRZooError(f"exposure must be a positive number, got {exposure!r}")
    if method == "mu":
        return mu_law((x * exposure).clamp(0.0, 1.0))
    if method == "reinhard":
        return reinhard(x, exposure).pow(1.0 / GAMMA)
    raise HDRZooError(f"method must be 'mu' or 'reinhard', got {method!r}")


def error_map(
    pred: ArrayLike,
    target: ArrayLike,
    space: Literal["mu", "linear"] = "mu",
    vmax: float | None = None,
    colormap: str = "inferno",
) -> ErrorMap:
    """Heat map of the per-pixel absolute error, averaged over the RGB channels.

    As in :mod:`hdrzoo.metrics`, the prediction is clipped to [0, 1] and the target is used
    as given; in ``"mu"`` space both are mu-law tone mapped first (the space of PSNR-mu).
    The error is divided by ``vmax`` and clipped to [0, 1]: 0 is the colormap's first colour
    (black for ``inferno``), ``vmax`` and above its last.

    Args:
        pred: predicted linear HDR ``(3, H, W)``.
        target: ground-truth linear HDR ``(3, H, W)``.
        space: ``"mu"`` or ``"linear"``.
        vmax: error shown at the top colour; ``None`` uses the 99th percentile of the error
            (:data:`ERROR_PERCENTILE`, linear interpolation), or the largest error if that
            percentile is 0, or 1.0 when the error is zero everywhere.
        colormap: one of :data:`COLORMAPS`.

    Returns:
        ``ErrorMap(image, vmax)``: float32 ``(3, H, W)`` in [0, 1] and the ``vmax`` used.
    """
    p = _rgb(pred, "pred")
    t = _rgb(target, "target")
    if p.shape != t.shape:
        raise HDRZooError(
            f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}"
        )
    p = p.clamp(0.0, 1.0)
    if space == "mu":
        p, t = mu_law(p), mu_law(t.clamp(min=0.0))
    elif space != "linear":
        raise HDRZooError(f"space must be 'mu' or 'linear', got {space!r}")
    error = (p - t).abs().mean(dim=0)
    if vmax is None:
        # A percentile rather than the maximum: a handful of badly wrong pixels (ghosts,
        # specular highlights) would otherwise leave the rest of the map black.
        vmax = float(np.percentile(error.numpy(), ERROR_PERCENTILE)) or float(error.max()) or 1.0
    elif not (math.isfinite(vmax) and vmax > 0):
        raise HDRZooError(f"vmax must be a positive number or None, got {vmax!r}")
    return ErrorMap(_colormap(error / vmax, colormap), float(vmax))


def flow_wheel() -> torch.Tensor:
    """The Middlebury colour wheel: the fully saturated hues of the flow directions.

    Returns:
        float32 ``(55, 3)`` RGB in [0, 1], starting at red and going through yellow, green,
        cyan, blue and magenta back towards red.
    """
    rows = []
    for name, n in _WHEEL_SEGMENTS:
        ramp = torch.arange(n, dtype=torch.float32) / n
        one, zero = torch.ones(n), torch.zeros(n)
        rows.append(
            {
                "RY": (one, ramp, zero),
                "YG": (1 - ramp, one, zero),
                "GC": (zero, one, ramp),
                "CB": (zero, 1 - ramp, one),
                "BM": (ramp, zero, one),
                "MR": (one, zero, 1 - ramp),
            }[name]
        )
    return torch.cat([torch.stack(r, dim=1) for r in rows], dim=0)


def flow_to_color(flow: ArrayLike, max_magnitude: float | None = None) -> torch.Tensor:
    """Colour-code optical flow with the Middlebury wheel: hue = direction, saturation = length.

    Zero flow is white; a vector of length ``max_magnitude`` has the wheel's full colour;
    longer vectors keep their hue and are darkened to 75 % (the Middlebury convention for
    out-of-range flow). In image coordinates (x right, y down) rightward flow is red,
    downward flow orange-yellow, leftward flow cyan-blue and upward flow blue-violet.

    Args:
        flow: ``(2, H, W)`` in pixels, channel 0 = x (right), channel 1 = y (down).
        max_magnitude: length shown fully saturated; ``None`` uses the longest vector in
            ``flow`` (1 when the flow is zero everywhere). Fix it to compare several flows.

    Returns:
        float32 ``(3, H, W)`` in [0, 1].
    """
    f = _as_tensor(flow, "flow")
    if f.ndim != 3 or f.shape[0] != 2 or f.shape[1] == 0 or f.shape[2] == 0:
        raise HDRZooError(f"flow: expected shape (2, H, W) (x, y in pixels), got {tuple(f.shape)}")
    u, v = f[0], f[1]
    magnitude = torch.sqrt(u * u + v * v)
    if max_magnitude is None:
        max_magnitude = float(magnitude.max()) or 1.0
    elif not (math.isfinite(max_magnitude) and max_magnitude > 0):
        raise HDRZooError(f"max_magnitude must be a positive number or None, got {max_magnitude!r}")
    radius = magnitude / max_magnitude

    wheel = flow_wheel()
    n = wheel.shape[0]
    # Angle of the *reversed* vector, so that rightward flow lands at the wheel's red end.
    angle = torch.atan2(-v, -u) / math.pi  # in [-1, 1]
    position = (angle + 1.0) / 2.0 * (n - 1)
    k0 = position.floor().long().clamp(0, n - 1)
    k1 = (k0 + 1) % n
    frac = (position - k0.float()).unsqueeze(0)
    hue = (1.0 - frac) * wheel[k0].permute(2, 0, 1) + frac * wheel[k1].permute(2, 0, 1)

    radius = radius.unsqueeze(0)
    inside = 1.0 - radius * (1.0 - hue)  # desaturate towards white for short vectors
    outside = 0.75 * hue
    return torch.where(radius <= 1.0, inside, outside).clamp(0.0, 1.0)


def mask_to_color(mask: ArrayLike, colormap: str = "viridis") -> torch.Tensor:
    """Colour a mask or attention map with values in [0, 1] (values outside are clipped).

    Args:
        mask: ``(1, H, W)`` or ``(H, W)``.
        colormap: one of :data:`COLORMAPS` (``"gray"`` for a plain grey image).

    Returns:
        float32 ``(3, H, W)`` in [0, 1]; 0 maps to the colormap's first colour, 1 to its last.
    """
    m = _as_tensor(mask, "mask")
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise HDRZooError(f"mask: expected shape (1, H, W) or (H, W), got {tuple(m.shape)}")
    return _colormap(m, colormap)


def prior_to_color(
    prior: ArrayLike, size: tuple[int, int] | None = None, percentile: float = 1.0
) -> torch.Tensor:
    """Draw a 3-channel latent prior (LF-Diff's low-frequency prior z or z-hat) as RGB.

    The prior has no units; each channel is stretched on its own so that its ``percentile``
    and ``100 - percentile`` percentiles map to 0 and 1 (clipped beyond), channel k becoming
    colour k. Then it is enlarged with nearest neighbours (the prior is a quarter of the
    image's size), so each prior cell stays visible as one block.

    Args:
        prior: ``(3, h, w)``, or ``(1, 3, h, w)`` (one sample of a batch).
        size: ``(H, W)`` to enlarge to; ``None`` keeps ``(h, w)``.
        percentile: in [0, 50); 0 stretches from the minimum to the maximum.

    Returns:
        float32 ``(3, H, W)`` in [0, 1]; a constant channel draws as 0.5.

    Examples:
        >>> prior_to_color(torch.randn(3, 4, 6), size=(16, 24)).shape
        torch.Size([3, 16, 24])
    """
    z = _as_tensor(prior, "prior")
    if z.ndim == 4 and z.shape[0] == 1:
        z = z[0]
    if z.ndim != 3 or z.shape[0] != 3 or z.shape[1] == 0 or z.shape[2] == 0:
        raise HDRZooError(f"prior: expected shape (3, h, w) or (1, 3, h, w), got {tuple(z.shape)}")
    if not 0.0 <= percentile < 50.0:
        raise HDRZooError(f"percentile must be in [0, 50), got {percentile!r}")
    flat = z.reshape(3, -1)
    low = torch.quantile(flat, percentile / 100.0, dim=1)[:, None, None]
    high = torch.quantile(flat, 1.0 - percentile / 100.0, dim=1)[:, None, None]
    spread = high - low
    stretched = torch.where(
        spread > 0, (z - low) / spread.clamp(min=1e-12), torch.full_like(z, 0.5)
    ).clamp(0.0, 1.0)
    if size is not None:
        height, width = (int(v) for v in size)
        if height < 1 or width < 1:
            raise HDRZooError(f"size must be two positive integers (H, W), got {size!r}")
        stretched = torch.nn.functional.interpolate(
            stretched[None], size=(height, width), mode="nearest"
        )[0]
    return stretched.contiguous()


def bracket_strip(ldr: ArrayLike, gap: int = 0, gap_value: float = 1.0) -> torch.Tensor:
    """The frames of a bracket side by side, left to right in the given order.

    Args:
        ldr: gamma-encoded frames ``(N, 3, H, W)`` in [0, 1] (values outside are clipped).
        gap: pixels of separator between frames.
        gap_value: grey level of the separator.

    Returns:
        float32 ``(3, H, N * W + (N - 1) * gap)``.
    """
    x = _as_tensor(ldr, "ldr")
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise HDRZooError(f"ldr: expected frames of shape (N, 3, H, W), got {tuple(x.shape)}")
    if gap < 0:
        raise HDRZooError(f"gap must be >= 0 pixels, got {gap}")
    x = x.clamp(0.0, 1.0)
    separator = torch.full((3, x.shape[2], gap), float(gap_value))
    pieces: list[torch.Tensor] = []
    for i, frame in enumerate(x):
        if i and gap:
            pieces.append(separator)
        pieces.append(frame)
    return torch.cat(pieces, dim=2)


def _fit_height(image: torch.Tensor, height: int) -> torch.Tensor:
    h, w = image.shape[1:]
    if h == height:
        return image
    import cv2

    width = max(1, round(w * height / h))
    # INTER_AREA averages when shrinking (no aliasing); bilinear when enlarging.
    interpolation = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    hwc = cv2.resize(image.permute(1, 2, 0).numpy(), (width, height), interpolation=interpolation)
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1))).clamp(0.0, 1.0)


def _label(text: str, width: int, height: int, background: float) -> torch.Tensor:
    import cv2

    strip = np.full((height, width, 3), round(background * 255), dtype=np.uint8)
    if text and height >= 6:
        font = cv2.FONT_HERSHEY_SIMPLEX
        scale = cv2.getFontScaleFromHeight(font, max(1, int(height * 0.55)))
        (text_w, text_h), _ = cv2.getTextSize(text, font, scale, 1)
        if (
            text_w > width - 6
        ):  # shrink long titles to the panel; they are clipped if still too long
            scale *= max(0.3, (width - 6) / text_w)
            (text_w, text_h), _ = cv2.getTextSize(text, font, scale, 1)
        baseline_y = (height + text_h) // 2
        cv2.putText(strip, text, (3, baseline_y), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return torch.from_numpy(strip.transpose(2, 0, 1).copy()).float().div(255.0)


def side_by_side(
    panels: Sequence[tuple[str, ArrayLike]],
    columns: int | None = None,
    label_height: int = 24,
    background: float = 0.0,
    label_background: float = 0.15,
) -> torch.Tensor:
    """Titled panels in a grid, e.g. ``[("input", strip), ("ours", display(hdr)), ...]``.

    All panels are brought to the height of the first one (keeping their aspect ratio; area
    averaging when shrinking, bilinear when enlarging); panels of that height are copied
    unchanged. Each gets a title strip of ``label_height`` pixels above it (white text,
    OpenCV Hershey font). Panels fill rows left to right; a row is as wide as the sum of its
    panels' widths and shorter rows are padded on the right with ``background``.

    Args:
        panels: ``(title, image)`` pairs; an image is ``(3, H, W)``, or ``(1, H, W)`` /
            ``(H, W)`` grey, in [0, 1] (values outside are clipped).
        columns: panels per row; ``None`` puts all of them in one row.
        label_height: height of each title strip in pixels (0: no titles).
        background: grey level of padding.
        label_background: grey level behind the titles.

    Returns:
        float32 ``(3, rows * (label_height + H), max row width)`` in [0, 1], with ``H`` the
        first panel's height.
    """
    if isinstance(panels, tuple) and len(panels) == 2 and isinstance(panels[0], str):
        panels = [panels]  # a single (title, image) pair
    if len(panels) == 0:
        raise HDRZooError("panels: give at least one (title, image) pair")
    if columns is None:
        columns = len(panels)
    if columns < 1:
        raise HDRZooError(f"columns must be >= 1 or None, got {columns}")
    if label_height < 0:
        raise HDRZooError(f"label_height must be >= 0 pixels, got {label_height}")

    images: list[torch.Tensor] = []
    titles: list[str] = []
    for i, item in enumerate(panels):
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
            raise HDRZooError(
                f"panels[{i}]: expected a (title, image) pair, got {type(item).__name__}"
            )
        title, image = item
        x = _as_tensor(image, f"panels[{i}] ({title!r})")
        if x.ndim == 2:
            x = x.unsqueeze(0)
        if x.ndim != 3 or x.shape[0] not in (1, 3) or x.shape[1] == 0 or x.shape[2] == 0:
            raise HDRZooError(
                f"panels[{i}] ({title!r}): expected an image (3, H, W), (1, H, W) or (H, W), "
                f"got {tuple(x.shape)}"
            )
        images.append(x.expand(3, -1, -1).clamp(0.0, 1.0))
        titles.append(title)

    height = images[0].shape[1]
    images = [_fit_height(x, height) for x in images]
    rows = [
        list(range(start, min(start + columns, len(images))))
        for start in range(0, len(images), columns)
    ]
    width = max(sum(images[i].shape[2] for i in row) for row in rows)
    cell_height = label_height + height
    canvas = torch.full((3, len(rows) * cell_height, width), float(background))
    for r, row in enumerate(rows):
        top, left = r * cell_height, 0
        for i in row:
            w = images[i].shape[2]
            if label_height:
                canvas[:, top : top + label_height, left : left + w] = _label(
                    titles[i], w, label_height, label_background
                )
            canvas[:, top + label_height : top + cell_height, left : left + w] = images[i]
            left += w
    return canvas
