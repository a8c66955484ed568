"""Reduced-precision control: parts of a network that stay in float32 under autocast.

``merge(precision="bf16")`` runs a model under ``torch.autocast``. Most convolutions lose
nothing measurable in bfloat16 (8 bits of mantissa), but a few parts accumulate small
differences into large ones: a coarse-to-fine flow decoder whose bf16 rounding at 1/16
resolution is enlarged 16x, or a refine head whose residual is added to a radiance that
spans 16 stops. Decorating such a module's ``forward`` with :func:`float32_under_autocast`
keeps it exact while the rest of the network runs in reduced precision. Outside autocast
the decorator does nothing (no cast, no copy), so fp32 outputs are unchanged bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["float32_under_autocast"]

F = TypeVar("F", bound=Callable[..., Any])


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


def _device_type(args: tuple, kwargs: dict) -> str | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device.type
        if isinstance(value, (list, tuple)):
            found = _device_type(tuple(value), {})
            if found is not None:
                return found
    return None


def float32_under_autocast(forward: F) -> F:
    """Decorate a ``forward`` so that it runs in float32 even inside ``torch.autocast``.

    Under an active autocast of the inputs' device type, floating-point tensor arguments
    (also inside lists and tuples) are cast to float32 and autocast is disabled for the
    call; the outputs are float32. Otherwise ``forward`` runs untouched.

    Examples:
        >>> import torch.nn as nn
        >>> class Head(nn.Conv2d):
        ...     @float32_under_autocast
        ...     def forward(self, x):
        ...         return super().forward(x)
        >>> head = Head(2, 2, 1)
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     head(torch.ones(1, 2, 4, 4).bfloat16()).dtype
        torch.float32
    """

    @functools.wraps(forward)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        device = _device_type(args, kwargs)
        if device is None or not torch.is_autocast_enabled(device):
            return forward(*args, **kwargs)
        with torch.autocast(device_type=device, enabled=False):
            return forward(*_to_float32(args), **{k: _to_float32(v) for k, v in kwargs.items()})

    return wrapped  # type: ignore[return-value]
