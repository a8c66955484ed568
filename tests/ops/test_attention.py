"""ops/attention.py: parameter counts of MODELS.md 2.7 and float64 einsum references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.attention import (
    GDFN,
    MDTA,
    ChannelAttention,
    CrossMDTA,
    CrossTransformerBlock,
    LayerNorm2d,
    ResBlock,
    TransformerBlock,
    transposed_attention,
)


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "module,count",
    [
        (lambda: LayerNorm2d(60), 120),
        (lambda: MDTA(60, 6), 16_026),
        (lambda: CrossMDTA(60, 3), 9_181),
        (lambda: GDFN(60, 2.66), 31_482),
        (lambda: TransformerBlock(60, 6, 2.66), 47_748),
        (lambda: CrossTransformerBlock(60, 3, 2.66), 40_903),
        (lambda: ChannelAttention(60, 4), 1_875),
        (lambda: ResBlock(60), 64_920),
    ],
)
def test_parameter_counts_match_models_md(module, count):
    assert _params(module()) == count


def _randomize(module, seed=0):
    # Temperatures, norm scales and biases start at 1 / 0; random values exercise them all.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.5)
    return module


# ----------------------------------------------------------- independent references ----
def _conv1x1(w, x):
    return torch.einsum("oi,bihw->bohw", w[:, :, 0, 0], x)


def _depthwise3x3(w, x):
    padded = F.pad(x, (1, 1, 1, 1))
    h, wd = x.shape[-2:]
    out = torch.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            out += w[:, 0, dy, dx][None, :, None, None] * padded[:, :, dy : dy + h, dx : dx + wd]
    return out


def _softmax(a):
    e = torch.exp(a - a.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def _attend(q, k, v, temperature):
    """einsum form of softmax(q^ k^T tau) v for (B, heads, d, P) tensors."""
    qn = q / torch.sqrt(torch.einsum("bhdp,bhdp->bhd", q, q))[..., None].clamp(min=1e-12)
    kn = k / torch.sqrt(torch.einsum("bhdp,bhdp->bhd", k, k))[..., None].clamp(min=1e-12)
    attn = _softmax(torch.einsum("bhip,bhjp->bhij", qn, kn) * temperature[None])
    return torch.einsum("bhij,bhjp->bhip", attn, v)


def _mdta_reference(m: MDTA, x):
    b, c, h, w = x.shape
    qkv = _depthwise3x3(m.qkv[1].weight, _conv1x1(m.qkv[0].weight, x))
    q, k, v = (t.reshape(b, m.heads, c // m.heads, h * w) for t in qkv.split(c, dim=1))
    out = _attend(q, k, v, m.temperature).reshape(b, c, h, w)
    return _conv1x1(m.project_out.weight, out)


def test_layernorm2d_matches_per_pixel_formula():
    ln = _randomize(LayerNorm2d(5).double())
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    for i in range(3):
        for j in range(4):
            v = x[:, :, i, j]
            expected = (v - v.mean(1, keepdim=True)) / torch.sqrt(
                v.var(1, unbiased=False, keepdim=True) + 1e-5
            )
            torch.testing.assert_close(ln(x)[:, :, i, j], expected * ln.weight + ln.bias)


def test_mdta_matches_float64_einsum():
    m = _randomize(MDTA(12, 3).double())
    x = torch.randn(2, 12, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), _mdta_reference(m, x), rtol=1e-10, atol=1e-10)


def test_cross_mdta_matches_float64_einsum():
    m = _randomize(CrossMDTA(8, 3).double())
    x, z = (
        torch.randn(2, 8, 6, 5, dtype=torch.float64),
        torch.randn(2, 3, 6, 5, dtype=torch.float64),
    )
    q = _depthwise3x3(m.q[1].weight, _conv1x1(m.q[0].weight, x)).reshape(2, 1, 8, 30)
    kv = _depthwise3x3(m.kv[1].weight, _conv1x1(m.kv[0].weight, z))
    k, v = (t.reshape(2, 1, 8, 30) for t in kv.split(8, dim=1))
    expected = _conv1x1(m.project_out.weight, _attend(q, k, v, m.temperature).reshape(2, 8, 6, 5))
    torch.testing.assert_close(m(x, z), expected, rtol=1e-10, atol=1e-10)


def test_gdfn_matches_float64_formula():
    m = _randomize(GDFN(6, 2.66).double())
    hidden = int(6 * 2.66)
    x = torch.randn(1, 6, 5, 4, dtype=torch.float64)
    y = _depthwise3x3(m.project_in[1].weight, _conv1x1(m.project_in[0].weight, x))
    a, b = y[:, :hidden], y[:, hidden:]
    gelu = 0.5 * a * (1 + torch.erf(a / 2**0.5))
    torch.testing.assert_close(m(x), _conv1x1(m.project_out.weight, gelu * b))


def test_transformer_blocks_are_pre_norm_residuals():
    block = _randomize(TransformerBlock(12, 2).double())
    x = torch.randn(1, 12, 4, 6, dtype=torch.float64)
    y = x + _mdta_reference(block.attn, block.norm1(x))
    torch.testing.assert_close(block(x), y + block.ffn(block.norm2(y)))
    cross = _randomize(CrossTransformerBlock(8, 3).double())
    x8, z = (
        torch.randn(1, 8, 4, 4, dtype=torch.float64),
        torch.randn(1, 3, 4, 4, dtype=torch.float64),
    )
    y = x8 + cross.attn(cross.norm1(x8), z)
    torch.testing.assert_close(cross(x8, z), y + cross.ffn(cross.norm2(y)))


def test_transposed_attention_is_pixel_permutation_equivariant():
    q, k, v = (torch.randn(2, 3, 4, 50, dtype=torch.float64) for _ in range(3))
    temperature = torch.rand(3, 1, 1, dtype=torch.float64) + 0.5
    perm = torch.randperm(50)
    out = transposed_attention(q, k, v, temperature)
    permuted = transposed_attention(q[..., perm], k[..., perm], v[..., perm], temperature)
    torch.testing.assert_close(permuted, out[..., perm], rtol=1e-12, atol=1e-12)
    # The map is C/h x C/h: it does not grow with the image.
    torch.testing.assert_close(out, _attend(q, k, v, temperature), rtol=1e-12, atol=1e-12)


def test_mdta_permutes_its_output_when_the_pixels_are_permuted():
    # The 3x3 depth-wise conv looks at neighbours; with only its centre tap the rest of MDTA
    # (1x1 convs and transposed attention) treats pixels as an unordered set.
    m = _randomize(MDTA(12, 3).double())
    with torch.no_grad():
        m.qkv[1].weight[:, :, [0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 2, 0, 2, 0, 1, 2]] = 0
    x = torch.randn(1, 12, 6, 7, dtype=torch.float64)
    perm = torch.randperm(42)
    shuffled = x.reshape(1, 12, 42)[..., perm].reshape(1, 12, 6, 7)
    expected = m(x).reshape(1, 12, 42)[..., perm].reshape(1, 12, 6, 7)
    torch.testing.assert_close(m(shuffled), expected, rtol=1e-10, atol=1e-10)


def test_channel_attention_and_resblock_formulas():
    ca = _randomize(ChannelAttention(8, 4).double())
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    s = x.mean(dim=(2, 3))
    hidden = torch.relu(s @ ca.squeeze.weight[:, :, 0, 0].T + ca.squeeze.bias)
    w = torch.sigmoid(hidden @ ca.excite.weight[:, :, 0, 0].T + ca.excite.bias)
    torch.testing.assert_close(ca(x), x * w[:, :, None, None])
    rb = _randomize(ResBlock(4).double())
    x4 = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    h = F.conv2d(x4, rb.conv1.weight, rb.conv1.bias, padding=1)
    h = torch.where(h > 0, h, 0.2 * h)
    torch.testing.assert_close(rb(x4), x4 + F.conv2d(h, rb.conv2.weight, rb.conv2.bias, padding=1))


def test_gradcheck_attention_blocks():
    m = _randomize(MDTA(4, 2).double())
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))
    c = _randomize(CrossMDTA(4, 2).double())
    z = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(c, (x, z))


def test_cross_mdta_rejects_a_prior_of_another_size():
    with pytest.raises(InputSizeError, match="z"):
        CrossMDTA(8, 3)(torch.randn(1, 8, 4, 4), torch.randn(1, 3, 2, 2))
    with pytest.raises(InputSizeError, match="heads"):
        MDTA(10, 3)
