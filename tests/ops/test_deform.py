"""ops/deform.py against independent computations: F.conv2d, shifted inputs, float64 gradcheck."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from hdrzoo.errors import HDRZooError
from hdrzoo.ops.deform import SCM, GCContext, ModulatedDeformConv, modulated_deform_conv2d

ENGINES = pytest.mark.parametrize("engine", ["sampled", "torchvision"])


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_models_md():
    assert _params(GCContext(32, ratio=0.25)) == 601
    assert _params(ModulatedDeformConv(32, 32, 3, deform_groups=1)) == 17_051
    assert _params(SCM(32)) == 31_060


@ENGINES
def test_zero_offsets_and_unit_mask_equal_conv2d_exactly(engine):
    torch.manual_seed(0)
    dcn = ModulatedDeformConv(5, 4, engine=engine).double()
    with torch.no_grad():
        dcn.bias.normal_()
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    offset = torch.zeros(2, 18, 7, 9, dtype=torch.float64)
    mask = torch.ones(2, 9, 7, 9, dtype=torch.float64)
    expected = F.conv2d(x, dcn.weight, dcn.bias, padding=1)
    torch.testing.assert_close(dcn.deform(x, offset, mask), expected, rtol=0, atol=1e-12)


@ENGINES
@pytest.mark.parametrize(("dy", "dx"), [(1, 0), (0, -2), (-1, 2)])
def test_integer_offset_equals_conv_of_shifted_input(dy, dx, engine):
    torch.manual_seed(1)
    dcn = ModulatedDeformConv(3, 2, engine=engine).double()
    x = torch.randn(1, 3, 8, 10, dtype=torch.float64)
    height, width = x.shape[-2:]
    offset = torch.zeros(1, 18, height, width, dtype=torch.float64)
    offset[:, 0::2] = dy  # torchvision interleaving: (dy, dx) per tap
    offset[:, 1::2] = dx
    mask = torch.ones(1, 9, height, width, dtype=torch.float64)
    # Output(p) = sum_t W_t x(p + t + d) with x zero outside: pad by 1 + |shift|, then slice.
    margin = 3
    padded = F.pad(x, (margin,) * 4)
    top, left = margin - 1 + dy, margin - 1 + dx
    shifted = padded[:, :, top : top + height + 2, left : left + width + 2]
    expected = F.conv2d(shifted, dcn.weight, dcn.bias)
    torch.testing.assert_close(dcn.deform(x, offset, mask), expected, rtol=0, atol=1e-12)


@ENGINES
def test_offsets_are_dy_then_dx_per_tap(engine):
    # Only the centre tap (t = 4) is non-zero, so each output pixel reads one shifted input pixel.
    dcn = ModulatedDeformConv(1, 1, engine=engine).double()
    with torch.no_grad():
        dcn.weight.zero_()
        dcn.weight[0, 0, 1, 1] = 1.0
    x = torch.arange(36, dtype=torch.float64).reshape(1, 1, 6, 6)
    offset = torch.zeros(1, 18, 6, 6, dtype=torch.float64)
    offset[:, 8] = 1.0  # dy of the centre tap: read one row below
    out = dcn.deform(x, offset, torch.ones(1, 9, 6, 6, dtype=torch.float64))
    torch.testing.assert_close(out[0, 0, :5], x[0, 0, 1:], rtol=0, atol=1e-12)
    torch.testing.assert_close(
        out[0, 0, 5], torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_module_at_init_is_half_the_plain_convolution():
    torch.manual_seed(2)
    dcn = ModulatedDeformConv(6, 4)
    with torch.no_grad():
        dcn.bias.normal_()
    x = torch.randn(2, 6, 9, 11)
    guide = torch.randn(2, 6, 9, 11)
    expected = 0.5 * F.conv2d(x, dcn.weight, padding=1) + dcn.bias[None, :, None, None]
    torch.testing.assert_close(dcn(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dcn(x, guide), expected, rtol=1e-5, atol=1e-5)
    assert dcn.offset_mask.weight.abs().sum() == 0 and dcn.offset_mask.bias.abs().sum() == 0


@ENGINES
def test_gradcheck_through_offsets_and_mask_float64(engine):
    torch.manual_seed(3)
    dcn = ModulatedDeformConv(2, 2, engine=engine).double()
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # Fractional offsets away from integers: bilinear sampling is smooth there.
    offset = (0.3 + 0.4 * torch.rand(1, 18, 4, 5, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(1, 9, 4, 5, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(dcn.deform, (x, offset, mask), eps=1e-6, atol=1e-5)


def test_gradcheck_through_predicted_offsets_float64():
    torch.manual_seed(4)
    dcn = ModulatedDeformConv(2, 2).double()
    with torch.no_grad():
        dcn.offset_mask.weight.normal_(std=0.1)
        dcn.offset_mask.bias.uniform_(0.2, 0.4)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dcn, (x,), eps=1e-6, atol=1e-5)


def test_gc_context_matches_direct_formula():
    torch.manual_seed(5)
    block = GCContext(8, ratio=0.5, fusion="add").double()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    logits = block.attention(x).flatten(2)  # (B, 1, HW)
    softmax = logits.exp() / logits.exp().sum(-1, keepdim=True)
    pooled = (x.flatten(2) * softmax).sum(-1)[:, :, None, None]
    hidden = block.transform[0](pooled)
    normalised = (hidden - hidden.mean((1, 2, 3), keepdim=True)) / torch.sqrt(
        hidden.var((1, 2, 3), unbiased=False, keepdim=True) + 1e-5
    )
    normalised = normalised * block.transform[1].weight + block.transform[1].bias
    transformed = block.transform[3](normalised.clamp(min=0))
    torch.testing.assert_close(block(x), x + transformed)
    block.fusion = "mul"
    torch.testing.assert_close(block(x), x * torch.sigmoid(transformed))
    block.fusion = "weights"
    torch.testing.assert_close(block(x), torch.sigmoid(transformed))


def test_scm_follows_its_recipe_and_gradcheck():
    torch.manual_seed(6)
    scm = SCM(4).double()
    with torch.no_grad():
        scm.deform.offset_mask.weight.normal_(std=0.1)
        scm.deform.offset_mask.bias.uniform_(0.2, 0.4)
    f_i = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    f_r = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)

    def lrelu(t):
        return F.leaky_relu(t, 0.2)

    a = lrelu(scm.attend(torch.cat([f_i, f_r], 1)))
    b = lrelu(scm.fuse(torch.cat([f_r, f_i * scm.context(a)], 1)))
    c = lrelu(scm.deform(b, b))
    torch.testing.assert_close(scm(f_i, f_r), lrelu(scm.out(c) + f_r))
    assert torch.autograd.gradcheck(scm, (f_i, f_r), eps=1e-6, atol=1e-5)


def test_bad_arguments_raise_hdrzoo_errors():
    with pytest.raises(HDRZooError, match="kernel_size"):
        ModulatedDeformConv(4, 4, kernel_size=2)
    with pytest.raises(HDRZooError, match="deform_groups"):
        ModulatedDeformConv(4, 4, deform_groups=3)
    with pytest.raises(HDRZooError, match="engine"):
        ModulatedDeformConv(4, 4, engine="cuda")
    with pytest.raises(HDRZooError, match="ratio"):
        GCContext(6, ratio=0.25)
    with pytest.raises(HDRZooError, match="fusion"):
        GCContext(8, fusion="concat")


@ENGINES
def test_row_bands_give_the_same_result_with_large_offsets(engine):
    torch.manual_seed(7)
    dcn = ModulatedDeformConv(3, 2, engine=engine).double()
    x = torch.randn(2, 3, 23, 9, dtype=torch.float64, requires_grad=True)
    offset = 4.0 * torch.randn(2, 18, 23, 9, dtype=torch.float64)  # reaching several rows away
    mask = torch.rand(2, 9, 23, 9, dtype=torch.float64)
    whole = dcn.deform(x, offset, mask)
    dcn.column_budget_bytes = 3 * 9 * 2 * 9 * 8 * 4  # four rows per band
    banded = dcn.deform(x, offset, mask)
    torch.testing.assert_close(banded, whole, rtol=0, atol=1e-12)
    (grad_banded,) = torch.autograd.grad(banded.sum(), x)
    (grad_whole,) = torch.autograd.grad(whole.sum(), x)
    torch.testing.assert_close(grad_banded, grad_whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kernel", "groups", "height", "width"),
    [(3, 1, 7, 9), (3, 2, 5, 6), (5, 2, 8, 4), (1, 1, 1, 3)],
)
def test_sampled_engine_equals_torchvision_values_and_gradients(kernel, groups, height, width):
    # Offsets up to +-6 px read far outside the image: both must treat it as zeros.
    torch.manual_seed(8)
    taps = groups * kernel * kernel
    x = torch.randn(2, 4, height, width, dtype=torch.float64, requires_grad=True)
    offset = (3.0 * torch.randn(2, 2 * taps, height, width, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(2, taps, height, width, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, kernel, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    inputs = (x, offset, weight, bias, mask)
    ours = modulated_deform_conv2d(*inputs)
    theirs = deform_conv2d(x, offset, weight, bias, padding=kernel // 2, mask=mask)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)
    upstream = torch.randn_like(ours)
    for mine, reference in zip(
        torch.autograd.grad(ours, inputs, upstream),
        torch.autograd.grad(theirs, inputs, upstream),
        strict=True,
    ):
        torch.testing.assert_close(mine, reference, rtol=0, atol=1e-9)


def test_sampled_engine_bands_keep_the_tap_stack_under_budget():
    torch.manual_seed(9)
    x = torch.randn(1, 3, 12, 5, dtype=torch.float64)
    offset = 2.0 * torch.randn(1, 18, 12, 5, dtype=torch.float64)
    mask = torch.rand(1, 9, 12, 5, dtype=torch.float64)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    whole = modulated_deform_conv2d(x, offset, weight, None, mask)
    one_row = 3 * 9 * 5 * 8  # bytes of the tap stack per output row
    banded = modulated_deform_conv2d(x, offset, weight, None, mask, budget_bytes=one_row)
    torch.testing.assert_close(banded, whole, rtol=0, atol=1e-12)
    # Without autograd the bands are modulated in place and written into one output.
    with torch.no_grad():
        inference = modulated_deform_conv2d(x, offset, weight, None, mask, budget_bytes=one_row)
    torch.testing.assert_close(inference, whole, rtol=0, atol=1e-12)
