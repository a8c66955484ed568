"""The reference-preserving property, reusable by any model's tests (issue 22).

On a bracket without motion and without a saturated reference pixel, every frame agrees
with the reference, so a merge has nothing to fix: it must return the reference frame's
radiance, up to the capture noise. A model that learned the simulator rather than how to
merge (a colour cast, a blur, a bias in the well-exposed range) fails it.

Tolerances (:data:`TOLERANCES`), against the noise-free reference radiance ``k R_ref``
(float64), over every pixel whose reference LDR value is well exposed (all channels in
``[0.1, 0.9]``), each compared with what the reference frame alone scores there (its
capture noise gives a median relative error of 2-5 % and a 99th percentile of 8-23 % on
these brackets: a merge that returns the reference exactly scores the same):

- bias: the median of the signed relative error within +-1 % (a gain or colour cast),
- median relative error at most 0.5 points above the reference frame alone's,
- 99th percentile of the relative error at most 2 points above the reference frame
  alone's (no local damage: halos, misplaced edges),
- PSNR-mu no more than 0.5 dB below the reference frame alone's.

Usage in a trained model's test::

    from _reference_preserving import assert_preserves_reference
    assert_preserves_reference(trained_module.merge)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from hdrzoo.bracket import Bracket
from hdrzoo.data.synthetic import synthesize
from hdrzoo.ops.tonemap import GAMMA, linearize, mu_law

TOLERANCES = {
    "bias": 0.01,
    "median_relative_excess": 0.005,
    "p99_relative_excess": 0.02,
    "psnr_mu_drop_db": 0.5,
}
WELL_EXPOSED = (0.1, 0.9)
STATIC = {
    "n_objects": (0, 0),
    "camera_translation": (0.0, 0.0),
    "camera_rotation": 0.0,
    "camera_scale": 0.0,
    "camera_perspective": 0.0,
}


def static_unsaturated_bracket(
    seed: int,
    size: tuple[int, int] = (96, 96),
    evs: tuple[float, ...] = (-2.0, 0.0, 2.0),
    peak: float = 0.8,
    shot_noise: float = 1e-4,
    read_noise: float = 2e-4,
    radiance: str | list[str] = "assets",
) -> Bracket:
    """A bracket of a still scene whose reference frame saturates nowhere.

    A static crop of ``radiance`` (a :class:`~hdrzoo.data.synthetic.SyntheticConfig`
    radiance source; default the packaged maps) is scaled so that the reference frame's
    brightest signal is ``peak`` (< 1), then captured as the simulator does (Gaussian form
    of Poisson-Gaussian noise, gamma 2.2, 16 bits): longer frames still clip, shorter
    ones are noisier. Ground truth: the scaled noise-free reference radiance.
    """
    ref = len(evs) // 2
    clean = synthesize(
        seed, size=size, evs=evs, ref=ref, radiance=radiance, keep_radiance=True, **STATIC
    )
    radiance = clean.meta["radiance"].double()
    exposures = clean.exposures.double()
    radiance = radiance * (peak / float(radiance[ref].max() * exposures[ref]))
    signal = radiance * exposures[:, None, None, None]
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(signal.shape, generator=generator, dtype=torch.float64)
    exposed = (signal + noise * (shot_noise * signal + read_noise**2).sqrt()).clamp(0.0, 1.0)
    ldr = torch.round(exposed.pow(1.0 / GAMMA) * 65535.0) / 65535.0
    return Bracket(
        ldr=ldr.float(),
        exposures=clean.exposures,
        ref=ref,
        gt=radiance[ref].float(),
        name=f"static-unsaturated-{seed}",
        meta={"source": clean.meta["source"], "seed": seed, "peak": peak},
    )


def well_exposed_mask(reference_ldr: torch.Tensor) -> torch.Tensor:
    """``(H, W)``: every channel of the reference's LDR value within :data:`WELL_EXPOSED`."""
    low, high = WELL_EXPOSED
    return ((reference_ldr >= low) & (reference_ldr <= high)).all(dim=0)


def _psnr_mu(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    error = (mu_law(pred.double().clamp(0.0, 1.0)) - mu_law(target.double()))[:, mask]
    return 10.0 * math.log10(1.0 / float(error.square().mean()))


def reference_preservation(
    merge: Callable[[Bracket], torch.Tensor], bracket: Bracket
) -> dict[str, float]:
    """How far ``merge(bracket)`` strays from the reference radiance on well-exposed pixels."""
    mask = well_exposed_mask(bracket.ldr[bracket.ref])
    keys = ("bias", "median_relative", "p99_relative", "psnr_mu")
    if not bool(mask.any()):  # e.g. a map with a sun: everything else is dark
        return {"well_exposed_fraction": 0.0} | dict.fromkeys(
            [*keys, *(f"{k}_reference_alone" for k in keys)], math.nan
        )
    with torch.no_grad():
        hdr = merge(bracket).double()
    alone = linearize(bracket.ldr[bracket.ref], bracket.exposures[bracket.ref : bracket.ref + 1])[0]
    scores = {"well_exposed_fraction": float(mask.double().mean())}
    scores |= _errors(hdr, bracket.gt.double(), mask)
    scores |= {f"{k}_reference_alone": v for k, v in _errors(alone, bracket.gt, mask).items()}
    return scores


def _errors(hdr: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    hdr, gt = hdr.double(), gt.double()
    signed = ((hdr - gt) / gt.clamp(min=1e-6))[:, mask]
    relative = signed.abs()
    return {
        "bias": float(signed.median()),
        "median_relative": float(relative.median()),
        "p99_relative": float(torch.quantile(relative.flatten(), 0.99)),
        "psnr_mu": _psnr_mu(hdr, gt, mask),
    }


def assert_preserves_reference(
    merge: Callable[[Bracket], torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    size: tuple[int, int] = (96, 96),
    tolerances: dict[str, float] | None = None,
    radiance: str | list[str] = "assets",
) -> list[dict[str, float]]:
    """Assert the reference-preserving property on static unsaturated brackets; returns the scores.

    ``radiance`` chooses the maps (e.g. ones the model never trained on)."""
    tol = {**TOLERANCES, **(tolerances or {})}
    results = []
    for seed in seeds:
        bracket = static_unsaturated_bracket(seed, size, radiance=radiance)
        scores = reference_preservation(merge, bracket)
        assert scores["well_exposed_fraction"] > 0.2, (bracket.name, scores)
        assert abs(scores["bias"]) <= tol["bias"], (bracket.name, scores)
        for key in ("median_relative", "p99_relative"):
            excess = scores[key] - scores[f"{key}_reference_alone"]
            assert excess <= tol[f"{key}_excess"], (bracket.name, key, scores)
        drop = scores["psnr_mu_reference_alone"] - scores["psnr_mu"]
        assert drop <= tol["psnr_mu_drop_db"], (bracket.name, scores)
        results.append(scores)
    return results
