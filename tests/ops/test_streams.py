import doctest

import pytest
import torch

import hdrzoo.ops.streams as stream_ops
from hdrzoo.errors import HDRZooError
from hdrzoo.ops.streams import StreamFusion, broadcast_stream_max, stream_max


def test_docstring_examples_run():
    result = doctest.testmod(stream_ops, extraglobs={"torch": torch})
    assert result.attempted >= 3 and result.failed == 0


def test_stream_max_is_the_elementwise_maximum_per_sample():
    x = torch.randn(2 * 3, 4, 5, 6)
    expected = torch.stack(
        [torch.maximum(torch.maximum(x[3 * b], x[3 * b + 1]), x[3 * b + 2]) for b in range(2)]
    )
    assert torch.equal(stream_max(x, 3), expected)
    broadcast = broadcast_stream_max(x, 3)
    for i in range(6):
        assert torch.equal(broadcast[i], expected[i // 3])


def test_fusion_is_conv_of_own_features_and_the_max_and_equivariant_to_stream_order():
    torch.manual_seed(0)
    fuse = StreamFusion(4, kernel_size=3).double()
    x = torch.randn(2 * 3, 4, 5, 5, dtype=torch.float64)
    maxima = broadcast_stream_max(x, 3)
    expected = torch.nn.functional.conv2d(
        torch.cat([x, maxima], 1), fuse.conv.weight, fuse.conv.bias, padding=1
    )
    torch.testing.assert_close(fuse(x, 3), expected, rtol=0, atol=1e-12)
    order = torch.tensor([1, 2, 0, 5, 3, 4])
    torch.testing.assert_close(fuse(x[order], 3), fuse(x, 3)[order], rtol=0, atol=1e-12)
    assert sum(p.numel() for p in StreamFusion(64, 3).parameters()) == 73_792
    assert sum(p.numel() for p in StreamFusion(64, 1).parameters()) == 8_256


def test_stream_count_must_divide_the_batch():
    with pytest.raises(HDRZooError, match="groups of 4 streams"):
        stream_max(torch.rand(6, 1, 2, 2), 4)
    with pytest.raises(HDRZooError, match=r"\(B \* n, C, H, W\)"):
        stream_max(torch.rand(6, 2, 2), 3)
