"""ops/align.py: SpatialAttention's parameter count and formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.align import SpatialAttention


def test_spatial_attention_parameter_count():
    assert sum(p.numel() for p in SpatialAttention(60).parameters()) == 194_580


def test_spatial_attention_matches_formula_in_float64():
    att = SpatialAttention(3).double()
    f, f_ref = (torch.randn(2, 3, 6, 5, dtype=torch.float64) for _ in range(2))
    both = torch.cat([f, f_ref], dim=1)
    hidden = F.conv2d(both, att.conv1.weight, att.conv1.bias, padding=1)
    hidden = torch.maximum(hidden, 0.2 * hidden)
    expected = 1 / (1 + torch.exp(-F.conv2d(hidden, att.conv2.weight, att.conv2.bias, padding=1)))
    torch.testing.assert_close(att(f, f_ref), expected)
    # The order matters: the frame first, the reference second.
    assert not torch.allclose(att(f_ref, f), expected)


def test_spatial_attention_gradcheck_and_shape_error():
    att = SpatialAttention(2).double()
    f, f_ref = (torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(att, (f, f_ref))
    with pytest.raises(InputSizeError, match="f_ref"):
        att(f, f_ref[:, :, :2])
