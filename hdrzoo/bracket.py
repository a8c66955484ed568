"""The one data contract of hdrzoo: a bracket of LDR frames with their exposures.

A :class:`Bracket` is what readers return, what the synthetic generator produces, what
datasets yield (as :meth:`Bracket.sample`) and what ``merge()`` accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hdrzoo.errors import BracketError

__all__ = ["Bracket"]


def _as_float_tensor(value: Any, what: str, integers_ok: bool = False) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    elif not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise BracketError(
                f"{what} must be a tensor or array, got {type(value).__name__}"
            ) from err
    if not value.is_floating_point() and not (
        integers_ok and not value.is_complex() and value.dtype != torch.bool
    ):
        raise BracketError(
            f"{what} must be floating point in [0, 1] (got dtype {value.dtype}); "
            "divide integer frames by their divisor, e.g. u16 / 65535, or use hdrzoo.read_bracket"
        )
    return value.to(torch.float32)


def _as_index(value: Any, what: str) -> int:
    if isinstance(value, torch.Tensor | np.ndarray):
        count = value.size if isinstance(value, np.ndarray) else value.numel()
        if count != 1:
            raise BracketError(
                f"{what} must be one integer frame index, got an array of shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise BracketError(f"{what} must be an integer frame index, got {value!r}")
    if not float(value).is_integer():
        raise BracketError(f"{what} must be an integer frame index, got {value}")
    return int(value)


@dataclass
class Bracket:
    """One bracketed capture of a (possibly moving) scene.

    Attributes:
        ldr: frames as stored (gamma-encoded), RGB, float32 in [0, 1], shape ``(N, 3, H, W)``.
        exposures: relative exposure times ``t_i = 2 ** (ev_i - min ev)``, shape ``(N,)``.
            The shortest is 1; other positive values (e.g. seconds) are divided by their
            minimum on construction.
        ref: index of the reference frame, whose geometry the HDR output takes.
        gt: optional linear HDR ground truth ``(3, H, W)`` in units where ``t = 1``.
        name: scene name.
        meta: free-form provenance (source path, layout, divisor, bit depth, true flow...).

    Frames need not be sorted by exposure; models sort internally where they need to.

    Examples:
        >>> b = Bracket(torch.rand(3, 3, 8, 8), torch.tensor([1.0, 4.0, 16.0]), ref=1)
        >>> b.batch()["ldr"].shape
        torch.Size([1, 3, 3, 8, 8])
    """

    ldr: torch.Tensor
    exposures: torch.Tensor
    ref: int
    gt: torch.Tensor | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f" (scene {self.name!r})" if self.name else ""
        self.ldr = _as_float_tensor(self.ldr, f"ldr{where}")
        if self.ldr.ndim != 4 or self.ldr.shape[1] != 3:
            raise BracketError(
                f"ldr{where} must have shape (N, 3, H, W) with RGB frames, got {tuple(self.ldr.shape)}; "
                "convert grey or RGBA frames to RGB first"
            )
        n, _, h, w = self.ldr.shape
        if n < 1 or h < 1 or w < 1:
            raise BracketError(f"ldr{where} is empty: shape {tuple(self.ldr.shape)}")
        if not torch.isfinite(self.ldr).all():
            raise BracketError(
                f"ldr{where} contains NaN or Inf pixels; frames must be finite values in [0, 1]"
            )
        low, high = float(self.ldr.min()), float(self.ldr.max())
        if low < 0.0 or high > 1.0:
            raise BracketError(
                f"ldr{where} has values in [{low:.4g}, {high:.4g}], outside [0, 1]; frames are gamma-encoded "
                "values divided by their white level (e.g. u16 / 65535); clamp with ldr.clamp(0, 1) if the "
                "overshoot comes from resampling"
            )

        self.exposures = _as_float_tensor(
            self.exposures, f"exposures{where}", integers_ok=True
        ).reshape(-1)
        if self.exposures.numel() != n:
            raise BracketError(
                f"exposures{where}: {self.exposures.numel()} values for {n} frames; give one exposure per frame"
            )
        if not torch.isfinite(self.exposures).all() or (self.exposures <= 0).any():
            raise BracketError(
                f"exposures{where} must be finite and positive, got {self.exposures.tolist()}; "
                "exposure times are t = 2 ** (ev - min ev)"
            )
        if torch.unique(self.exposures).numel() != n:
            raise BracketError(
                f"exposures{where} contain duplicates {self.exposures.tolist()}; "
                "each frame of a bracket needs its own exposure"
            )
        relative = self.exposures.double() / self.exposures.double().min()
        if not torch.isfinite(relative.float()).all():
            raise BracketError(
                f"exposures{where} span too many stops ({self.exposures.tolist()}): the ratio of the longest "
                "to the shortest must fit in float32"
            )
        self.exposures = relative.float()

        self.ref = _as_index(self.ref, f"ref{where}")
        if not 0 <= self.ref < n:
            raise BracketError(
                f"ref{where} = {self.ref} is out of range for {n} frames (0..{n - 1})"
            )

        if self.gt is not None:
            self.gt = _as_float_tensor(self.gt, f"gt{where}")
            if tuple(self.gt.shape) != (3, h, w):
                raise BracketError(
                    f"gt{where} must have shape (3, {h}, {w}) to match the frames, got {tuple(self.gt.shape)}"
                )
            if not torch.isfinite(self.gt).all():
                raise BracketError(f"gt{where} contains NaN or Inf values")

    @property
    def num_frames(self) -> int:
        """N, the number of frames of the bracket."""
        return int(self.ldr.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames."""
        return int(self.ldr.shape[-2]), int(self.ldr.shape[-1])

    @property
    def evs(self) -> list[float]:
        """Exposure values relative to the shortest frame (``log2 t``)."""
        return [math.log2(t) for t in self.exposures.tolist()]

    def sample(self) -> dict[str, Any]:
        """The unbatched dict a dataset yields: ``ldr, exposures, ref`` (long), ``name`` and ``gt`` if known."""
        out: dict[str, Any] = {
            "ldr": self.ldr,
            "exposures": self.exposures,
            "ref": torch.tensor(self.ref, dtype=torch.long),
            "name": self.name,
        }
        if self.gt is not None:
            out["gt"] = self.gt
        return out

    def batch(self) -> dict[str, Any]:
        """The dict a DataLoader would yield for a batch of this one bracket (leading dim 1)."""
        out: dict[str, Any] = {
            "ldr": self.ldr[None],
            "exposures": self.exposures[None],
            "ref": torch.tensor([self.ref], dtype=torch.long),
            "name": [self.name],
        }
        if self.gt is not None:
            out["gt"] = self.gt[None]
        return out

    def crop(self, top: int, left: int, height: int, width: int) -> Bracket:
        """A spatial crop of frames and ground truth (meta is copied, flows are not cropped)."""
        h, w = self.size
        if top < 0 or left < 0 or height < 1 or width < 1 or top + height > h or left + width > w:
            raise BracketError(
                f"crop ({top}, {left}, {height}, {width}) does not fit inside the {h}x{w} frames of {self.name or 'the bracket'}"
            )
        sl = (..., slice(top, top + height), slice(left, left + width))
        return Bracket(
            self.ldr[sl],
            self.exposures,
            self.ref,
            None if self.gt is None else self.gt[sl],
            self.name,
            dict(self.meta),
        )
