"""Image-quality metrics for merged HDR images, computed the way the papers report them.

Protocol shared by every metric here:

- Inputs are linear HDR in the units of the ground truth (``t = 1`` for the shortest
  exposure), shaped ``(3, H, W)`` or ``(B, 3, H, W)``, torch tensors or numpy arrays.
- **Predictions are clipped to [0, 1]** before scoring: the networks of the zoo clamp their
  output to that range, and a value above the ground truth's nominal peak cannot be
  displayed or compared on the mu-law curve.
- **The ground truth is used as given**: it is nominally in [0, 1] and is *not* clipped
  (clipping would hide a wrongly scaled ground truth; the official evaluations do not clip
  it). It must be finite and non-negative (a negative radiance has no mu-law value); a
  target that is not is rejected with :class:`~hdrzoo.errors.HDRZooError`.
- Every score is computed per image, in float64, then averaged over the images of the batch
  (``reduction="mean"``, the papers' protocol) or returned per image (``reduction="none"``,
  shape ``(B,)``). Averaging per-image PSNRs is not the PSNR of the pooled error.

Metrics (MSE always over all pixels and channels of one image):

====================  ===============================================================
``psnr_l``            ``10 log10(1 / MSE)`` on linear values
``psnr_mu``           the same on ``T(x) = log(1 + 5000 x) / log(1 + 5000)``
``ssim_l``            SSIM, 11 x 11 Gaussian window (sigma 1.5), data range 1, RGB channels
``ssim_mu``           the same on mu-law values
``pu21_psnr``         PSNR on the PU21 encoding (Mantiuk & Azimi 2021) of absolute units
``cvvdp``             ColorVideoVDP JOD (optional ``vdp`` extra)
====================  ===============================================================

Identical prediction and target give an infinite PSNR (``inf``), not a capped value, so a
mean over a batch containing such a pair is also ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from hdrzoo.errors import HDRZooError
from hdrzoo.ops.tonemap import MU, mu_law

__all__ = [
    "PU21_PARAMETERS",
    "PU21_L_MIN",
    "PU21_L_MAX",
    "PU21_PSNR_PEAK",
    "LUMINANCE_WEIGHTS",
    "psnr_l",
    "psnr_mu",
    "ssim_l",
    "ssim_mu",
    "pu21_encode",
    "pu21_psnr",
    "cvvdp",
    "evaluate",
    "METRICS",
]

Reduction = Literal["mean", "none"]
ArrayLike = torch.Tensor | np.ndarray

SSIM_SIGMA = 1.5
"""Standard deviation of the SSIM Gaussian window; torchmetrics derives its 11 x 11 size."""

SSIM_WINDOW = 11

PU21_PARAMETERS: dict[str, tuple[float, ...]] = {
    # p1..p7 of V = p7 * (((p1 + p2 Y^p4) / (1 + p3 Y^p4))^p5 - p6), as published with the
    # PU21 paper (parameter update of 06/02/2020 in the authors' reference code).
    "banding": (
        1.070275272,
        0.4088273932,
        0.153224308,
        0.2520326168,
        1.063512885,
        1.14115047,
        521.4527484,
    ),
    "banding_glare": (
        0.353487901,
        0.3734658629,
        8.277049286e-05,
        0.9062562627,
        0.09150303166,
        0.9099517204,
        596.3148142,
    ),
    "peaks": (
        1.043882782,
        0.6459495343,
        0.3194584211,
        0.374025247,
        1.114783422,
        1.095360363,
        384.9217577,
    ),
    "peaks_glare": (
        816.885024,
        1479.463946,
        0.001253215609,
        0.9329636822,
        0.06746643971,
        1.573435413,
        419.6006374,
    ),
}
"""PU21 encoder coefficients by name; ``banding_glare`` is the authors' recommended default."""

PU21_L_MIN = 0.005
"""Lowest luminance (cd/m^2) PU21 is defined for; darker values are clamped to it."""

PU21_L_MAX = 10000.0
"""Highest luminance (cd/m^2) PU21 is defined for; brighter values are clamped to it."""

PU21_PSNR_PEAK = 256.0
"""Peak of PU-PSNR, as in the authors' ``pu21_metric``: PU21 maps about 100 cd/m^2 (SDR
white) to 256, so PU values read like 8-bit code values. It is not PU(peak luminance)."""

LUMINANCE_WEIGHTS = (0.212656, 0.715158, 0.072186)
"""Rec. 709 / sRGB luminance of linear RGB (0.2126, 0.7152, 0.0722 to four decimals), the
weights of the authors' PU21 code."""


def _to_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise HDRZooError(
            f"{name}: expected a torch tensor or numpy array of shape (3, H, W) or "
            f"(B, 3, H, W), got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise HDRZooError(
            f"{name}: expected floating-point linear HDR values, got dtype {x.dtype}; "
            "decode integer images to linear float values first"
        )
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise HDRZooError(
            f"{name}: expected an RGB image (3, H, W) or a batch (B, 3, H, W), got shape "
            f"{tuple(x.shape)}; convert grey images to RGB and put channels first"
        )
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise HDRZooError(f"{name}: empty image of shape {tuple(x.shape)}")
    # MPS has no float64; the metrics are cheap enough to run on the CPU there.
    if x.device.type == "mps":
        x = x.cpu()
    return x.to(torch.float64)


def _prepare(pred: ArrayLike, target: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float64 ``(B, 3, H, W)`` pair: prediction clipped to [0, 1], target as given."""
    p = _to_tensor(pred, "pred")
    t = _to_tensor(target, "target")
    if p.shape != t.shape:
        raise HDRZooError(
            f"pred and target must have the same shape, got pred {tuple(p.shape)} and target "
            f"{tuple(t.shape)}; crop or pad the prediction to the ground truth's size"
        )
    if not torch.isfinite(p).all():
        raise HDRZooError("pred contains NaN or Inf values; check the model output")
    if not torch.isfinite(t).all():
        raise HDRZooError("target contains NaN or Inf values; check the ground-truth file")
    t = t.to(p.device)
    t_min = float(t.min())
    if t_min < 0:
        raise HDRZooError(
            f"target has negative values (min {t_min:.3g}); linear HDR must be non-negative: "
            "clamp the ground truth with target.clamp(min=0) if the negatives are noise"
        )
    return p.clamp(0.0, 1.0), t


def _check_peak_luminance(value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise HDRZooError(f"peak_luminance must be a positive number of cd/m^2, got {value!r}")
    return number


def _reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_image.mean()
    if reduction == "none":
        return per_image
    raise HDRZooError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _psnr_per_image(pred: torch.Tensor, target: torch.Tensor, peak: float) -> torch.Tensor:
    # One MSE per image over all pixels and channels. Written out rather than through
    # torchmetrics' peak_signal_noise_ratio: that converts its log base with a float32
    # log(10) (relative error 5e-8, i.e. 1e-6 dB at 20 dB) even for float64 inputs.
    mse = (pred - target).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(peak**2 / mse)


def _ssim_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise HDRZooError(
            f"pred: SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got "
            f"{tuple(pred.shape[-2:])}"
        )
    # gaussian_kernel=True makes torchmetrics size the window from sigma (11 for 1.5); a
    # float data_range keeps it from estimating the range from the images or clamping them.
    # It reflect-pads by 5 pixels and averages the SSIM map over all H x W x C positions.
    return structural_similarity_index_measure(
        pred,
        target,
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        kernel_size=SSIM_WINDOW,
        data_range=1.0,
        reduction="none",
    ).reshape(pred.shape[0])


def psnr_l(pred: ArrayLike, target: ArrayLike, reduction: Reduction = "mean") -> torch.Tensor:
    """PSNR on linear HDR values: ``10 log10(1 / MSE)`` per image.

    Args:
        pred: predicted linear HDR ``(3, H, W)`` or ``(B, 3, H, W)``; clipped to [0, 1].
        target: ground-truth linear HDR of the same shape, nominally in [0, 1], not clipped.
        reduction: ``"mean"`` averages the per-image PSNRs, ``"none"`` returns them.

    Returns:
        float64 tensor, scalar for ``"mean"`` or ``(B,)`` for ``"none"``, in dB (``inf`` for
        identical images).

    Examples:
        >>> t = torch.full((3, 8, 8), 0.5, dtype=torch.float64)
        >>> round(float(psnr_l(t + 0.1, t)), 6)
        20.0
    """
    p, t = _prepare(pred, target)
    return _reduce(_psnr_per_image(p, t, 1.0), reduction)


def psnr_mu(pred: ArrayLike, target: ArrayLike, reduction: Reduction = "mean") -> torch.Tensor:
    """PSNR on mu-law tone-mapped values ``log(1 + 5000 x) / log(1 + 5000)``, per image.

    Args:
        pred: predicted linear HDR ``(3, H, W)`` or ``(B, 3, H, W)``; clipped to [0, 1].
        target: ground-truth linear HDR of the same shape, nominally in [0, 1], not clipped.
        reduction: ``"mean"`` averages the per-image PSNRs, ``"none"`` returns them.

    Returns:
        float64 tensor, scalar or ``(B,)``, in dB (``inf`` for identical images).

    Examples:
        >>> float(psnr_mu(torch.zeros(3, 8, 8), torch.ones(3, 8, 8)))  # MSE of mu-law = 1
        0.0
    """
    p, t = _prepare(pred, target)
    return _reduce(_psnr_per_image(mu_law(p, MU), mu_law(t, MU), 1.0), reduction)


def ssim_l(pred: ArrayLike, target: ArrayLike, reduction: Reduction = "mean") -> torch.Tensor:
    """SSIM on linear HDR values (11 x 11 Gaussian window, sigma 1.5, data range 1).

    SSIM is computed per channel with reflect padding of 5 pixels (torchmetrics' convention,
    so the map covers the whole image) and averaged over pixels and the three channels.

    Args:
        pred: predicted linear HDR ``(3, H, W)`` or ``(B, 3, H, W)``, H and W >= 11; clipped
            to [0, 1].
        target: ground-truth linear HDR of the same shape, nominally in [0, 1], not clipped.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        float64 tensor, scalar or ``(B,)``; 1 for identical images.
    """
    p, t = _prepare(pred, target)
    return _reduce(_ssim_per_image(p, t), reduction)


def ssim_mu(pred: ArrayLike, target: ArrayLike, reduction: Reduction = "mean") -> torch.Tensor:
    """SSIM (as :func:`ssim_l`) on mu-law tone-mapped values (mu = 5000).

    Args:
        pred: predicted linear HDR ``(3, H, W)`` or ``(B, 3, H, W)``, H and W >= 11; clipped
            to [0, 1].
        target: ground-truth linear HDR of the same shape, nominally in [0, 1], not clipped.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        float64 tensor, scalar or ``(B,)``; 1 for identical images.
    """
    p, t = _prepare(pred, target)
    return _reduce(_ssim_per_image(mu_law(p, MU), mu_law(t, MU)), reduction)


def pu21_encode(luminance: torch.Tensor, parameters: str = "banding_glare") -> torch.Tensor:
    """PU21 perceptually uniform encoding of absolute luminance (Mantiuk & Azimi 2021).

    ``V = p7 * (((p1 + p2 Y^p4) / (1 + p3 Y^p4))^p5 - p6)`` with ``Y`` clamped to
    [0.005, 10000] cd/m^2. The result is about 0 at 0.005 cd/m^2, 256 at 100 cd/m^2 and
    595 at 10000 cd/m^2 for ``banding_glare``.

    Args:
        luminance: absolute linear values in cd/m^2 (luminance, or each RGB channel), any shape.
        parameters: one of :data:`PU21_PARAMETERS` (``banding_glare`` recommended).

    Returns:
        PU values of ``luminance``'s shape.
    """
    if parameters not in PU21_PARAMETERS:
        raise HDRZooError(
            f"parameters: unknown PU21 parameter set {parameters!r}; choose one of "
            f"{sorted(PU21_PARAMETERS)}"
        )
    p1, p2, p3, p4, p5, p6, p7 = PU21_PARAMETERS[parameters]
    y_p4 = luminance.clamp(PU21_L_MIN, PU21_L_MAX).pow(p4)
    return p7 * (((p1 + p2 * y_p4) / (1.0 + p3 * y_p4)).pow(p5) - p6)


def pu21_psnr(
    pred: ArrayLike,
    target: ArrayLike,
    peak_luminance: float = 1000.0,
    parameters: str = "banding_glare",
    channels: Literal["rgb", "luminance"] = "rgb",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """PSNR on PU21-encoded absolute values, per image (PU-PSNR).

    Scaling: linear value 1.0 (the ground truth's nominal peak) is shown at
    ``peak_luminance`` cd/m^2, so a pixel ``x`` emits ``x * peak_luminance``. PU21 then clamps
    to [0.005, 10000] cd/m^2, so with the default 1000 cd/m^2 linear values below 5e-6 are
    all black. The PSNR peak is :data:`PU21_PSNR_PEAK` (256), the convention of the authors'
    ``pu21_metric``, whatever ``peak_luminance`` is; PU values above 256 (brighter than about
    100 cd/m^2) are allowed.

    ``channels="rgb"`` encodes each RGB channel (the authors' ``'PSNR'``, used for published
    PU21-PSNR figures); ``"luminance"`` encodes the luminance
    ``0.212656 R + 0.715158 G + 0.072186 B`` (their ``'PSNRY'``).

    Args:
        pred: predicted linear HDR ``(3, H, W)`` or ``(B, 3, H, W)``; clipped to [0, 1].
        target: ground-truth linear HDR of the same shape, nominally in [0, 1], not clipped.
        peak_luminance: cd/m^2 of linear 1.0 (a typical HDR display: 1000).
        parameters: PU21 parameter set, see :data:`PU21_PARAMETERS`.
        channels: ``"rgb"`` or ``"luminance"``.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        float64 tensor, scalar or ``(B,)``, in dB.
    """
    peak_luminance = _check_peak_luminance(peak_luminance)
    if channels not in ("rgb", "luminance"):
        raise HDRZooError(f"channels must be 'rgb' or 'luminance', got {channels!r}")
    p, t = _prepare(pred, target)
    p, t = p * peak_luminance, t * peak_luminance
    if channels == "luminance":
        weights = torch.tensor(LUMINANCE_WEIGHTS, dtype=p.dtype, device=p.device)
        p = torch.einsum("bchw,c->bhw", p, weights).unsqueeze(1)
        t = torch.einsum("bchw,c->bhw", t, weights).unsqueeze(1)
    per_image = _psnr_per_image(
        pu21_encode(p, parameters), pu21_encode(t, parameters), PU21_PSNR_PEAK
    )
    return _reduce(per_image, reduction)


def cvvdp(
    pred: ArrayLike,
    target: ArrayLike,
    display: str = "standard_hdr_linear",
    peak_luminance: float = 1000.0,
    device: str | torch.device | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """ColorVideoVDP quality in JOD (10 = no visible difference), per image.

    Needs the optional ``cvvdp`` package (``pip install hdrzoo[vdp]``). Images are passed as
    absolute linear BT.709 RGB in cd/m^2 (linear 1.0 -> ``peak_luminance``), so ``display``
    must be one of ColorVideoVDP's linear-input displays (``standard_hdr_linear``,
    ``standard_hdr_linear_dark``, ``standard_hdr_linear_zoom``); PQ, HLG and SDR displays
    expect display-encoded values and are refused. Report the display with the score.

    Args:
        pred: predicted linear HDR ``(3, H, W)`` or ``(B, 3, H, W)``; clipped to [0, 1].
        target: ground-truth linear HDR of the same shape, nominally in [0, 1], not clipped.
        display: ColorVideoVDP display model name (``display_models.json`` of the package).
        peak_luminance: cd/m^2 of linear 1.0.
        device: where ColorVideoVDP runs (its default: the first CUDA device, else the CPU).
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        float64 tensor, scalar or ``(B,)``, in JOD.
    """
    if "linear" not in display:
        raise HDRZooError(
            f"display: {display!r} expects display-encoded (PQ, HLG or sRGB) values, but hdrzoo "
            "passes absolute linear radiance; use 'standard_hdr_linear' or another *_linear display"
        )
    peak_luminance = _check_peak_luminance(peak_luminance)
    p, t = _prepare(pred, target)
    _reduce(torch.zeros(1), reduction)  # reject a bad reduction before the slow metric runs
    try:
        import pycvvdp
    except ImportError as err:
        raise HDRZooError(
            "cvvdp needs the ColorVideoVDP package, which is not installed: "
            "pip install hdrzoo[vdp]  (or: pip install cvvdp)"
        ) from err
    # ColorVideoVDP reads `device.type`, so a device given as a string must become a torch.device.
    device = None if device is None else torch.device(device)
    metric = pycvvdp.cvvdp(display_name=display, quiet=True, device=device)
    scores = []
    for test_image, reference_image in zip(p, t):
        # ColorVideoVDP's argument order is (test, reference); it is not symmetric.
        jod, _ = metric.predict(
            (test_image * peak_luminance).to(torch.float32),
            (reference_image * peak_luminance).to(torch.float32),
            dim_order="CHW",
        )
        scores.append(float(jod))
    return _reduce(torch.tensor(scores, dtype=torch.float64), reduction)


METRICS: dict[str, Callable[..., torch.Tensor]] = {
    "psnr_mu": psnr_mu,
    "psnr_l": psnr_l,
    "ssim_mu": ssim_mu,
    "ssim_l": ssim_l,
    "pu21_psnr": pu21_psnr,
    "cvvdp": cvvdp,
}
"""Metric functions by name, as :func:`evaluate` and the CLI accept them."""


def evaluate(
    pred: ArrayLike,
    target: ArrayLike,
    metrics: Sequence[str] = ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l"),
) -> dict[str, float]:
    """Several metrics at once, each averaged over the batch as the papers do.

    Args:
        pred: predicted linear HDR ``(3, H, W)`` or ``(B, 3, H, W)``; clipped to [0, 1].
        target: ground-truth linear HDR of the same shape.
        metrics: names from :data:`METRICS`, in the order wanted in the result.

    Returns:
        ``{name: value}`` as Python floats, in the order of ``metrics``.

    Examples:
        >>> t = torch.full((3, 16, 16), 0.5, dtype=torch.float64)
        >>> {k: round(v, 6) for k, v in evaluate(t + 0.1, t, metrics=("psnr_l",)).items()}
        {'psnr_l': 20.0}
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise HDRZooError(f"metrics: unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    # Validate and convert once; every metric re-checks cheaply on the prepared float64 pair.
    p, t = _prepare(pred, target)
    return {name: float(METRICS[name](p, t)) for name in metrics}
