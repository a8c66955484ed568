"""float32_under_autocast: exact float32 inside autocast, untouched outside it."""

from __future__ import annotations

import torch
import torch.nn as nn

from hdrzoo.ops.precision import float32_under_autocast


class _Pair(nn.Module):
    """Two convs over a list of inputs: exercises nested arguments and keyword arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)

    def plain(self, inputs, scale=None):
        out = self.a(inputs[0]) + self.b(inputs[1])
        return out if scale is None else out * scale

    forward = float32_under_autocast(plain)


def _inputs():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)]


def test_outside_autocast_the_forward_is_untouched():
    torch.manual_seed(0)
    net = _Pair()
    x = _inputs()
    assert torch.equal(net(x, scale=torch.tensor(2.0)), net.plain(x, scale=torch.tensor(2.0)))


def test_under_autocast_the_module_runs_in_float32_on_upcast_inputs():
    torch.manual_seed(0)
    net = _Pair()
    x = [v.bfloat16() for v in _inputs()]
    scale = torch.tensor(0.5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = net(x, scale=scale)
        reduced = net.plain(x, scale=scale)
    expected = net.plain([v.float() for v in x], scale=scale.float())
    assert kept.dtype == torch.float32 and reduced.dtype == torch.bfloat16
    assert torch.equal(kept, expected)  # the same float32 computation, bit for bit
    assert not torch.equal(reduced.float(), expected)  # bf16 would have differed


def test_autocast_is_active_again_after_the_call():
    net = _Pair()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(_inputs())
        assert torch.is_autocast_enabled("cpu")
        assert net.a(_inputs()[0]).dtype == torch.bfloat16
