"""SAM and HINBlock (ops/attention.py) against direct float64 formulas and MODELS.md counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hdrzoo.errors import HDRZooError
from hdrzoo.ops.attention import SAM, HINBlock


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_models_md():
    assert _params(SAM(32, 3)) == 10_944
    assert _params(HINBlock(32, use_hin=True)) == 19_584
    assert _params(HINBlock(32, use_hin=False)) == 19_552
    assert all(conv.bias is None for conv in (SAM(4).feature, SAM(4).to_image, SAM(4).to_gate))


def test_sam_matches_direct_formula():
    torch.manual_seed(0)
    sam = SAM(6).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    base = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    image = F.conv2d(x, sam.to_image.weight, padding=1) + base
    gate = 1 / (1 + torch.exp(-F.conv2d(image, sam.to_gate.weight, padding=1)))
    expected = F.conv2d(x, sam.feature.weight, padding=1) * gate + x
    out, img = sam(x, base)
    torch.testing.assert_close(img, image)
    torch.testing.assert_close(out, expected)


def _instance_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    mean = x.mean((2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean((2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * weight[:, None, None] + bias[:, None, None]


@pytest.mark.parametrize("use_hin", [True, False])
def test_hin_block_matches_direct_formula(use_hin):
    torch.manual_seed(1)
    block = HINBlock(8, use_hin=use_hin).double()
    if use_hin:  # non-trivial affine parameters, so the test sees which half is normalised
        with torch.no_grad():
            block.norm.weight.uniform_(0.5, 2.0)
            block.norm.bias.normal_()
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    o = block.conv1(x)
    if use_hin:
        o = torch.cat([_instance_norm(o[:, :4], block.norm.weight, block.norm.bias), o[:, 4:]], 1)
    o = torch.where(o > 0, o, 0.2 * o)
    o = block.conv2(o)
    o = torch.where(o > 0, o, 0.2 * o)
    torch.testing.assert_close(block(x), o + block.identity(x))


def test_hin_block_and_sam_gradcheck_float64():
    torch.manual_seed(2)
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    base = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(HINBlock(4).double(), (x,))
    assert torch.autograd.gradcheck(SAM(4).double(), (x, base))


def test_hin_needs_an_even_channel_count():
    with pytest.raises(HDRZooError, match="even"):
        HINBlock(5, use_hin=True)
    assert HINBlock(5, use_hin=False)(torch.rand(1, 5, 3, 3)).shape == (1, 5, 3, 3)


def test_hin_on_a_single_pixel_is_the_formula_value():
    torch.manual_seed(3)
    block = HINBlock(4).double()
    with torch.no_grad():
        block.norm.bias.normal_()
    x = torch.randn(2, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    o = block.conv1(x)
    o = torch.cat([block.norm.bias[None, :, None, None].expand(2, 2, 1, 1), o[:, 2:]], 1)
    o = F.leaky_relu(block.conv2(F.leaky_relu(o, 0.2)), 0.2) + block.identity(x)
    torch.testing.assert_close(block(x), o)
    block(x).sum().backward()  # trains too (torch's InstanceNorm2d raises here)
    assert torch.isfinite(x.grad).all()
