"""Row-block convolutions equal plain ``F.conv2d`` (+ residual, PReLU) on odd sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError
from hdrzoo.ops import rowconv
from hdrzoo.ops.rowconv import (
    cat_channels_last,
    channels_last,
    conv2d_rows,
    conv_module_rows,
    conv_prelu_stack_rows,
    empty_channels_last,
    use_row_blocks,
)

DTYPE = torch.float64
# One row per block, a few rows per block, and the whole image in one block.
BLOCK_SIZES = [1, 3_000, None]


def reference(x, weight, bias, padding, dilation, groups, residual=None, slopes=None):
    """Plain float64 conv2d, then the residual, then PReLU written out as a where()."""
    y = F.conv2d(x, weight, bias, 1, padding, dilation, groups)
    if residual is not None:
        y = y + residual
    if slopes is not None:
        y = torch.where(y >= 0, y, slopes.view(1, -1, 1, 1) * y)
    return y


@pytest.mark.parametrize("block_bytes", BLOCK_SIZES)
@pytest.mark.parametrize(
    "kernel,dilation,groups,channels_in,channels_out",
    [(3, 1, 1, 5, 7), (3, 2, 1, 4, 4), (3, 4, 3, 6, 9), (5, 1, 2, 4, 6), (1, 1, 1, 3, 2)],
)
def test_conv2d_rows_equals_conv2d_with_residual_and_prelu(
    block_bytes, kernel, dilation, groups, channels_in, channels_out
):
    torch.manual_seed(kernel + dilation + groups)
    padding = dilation * (kernel - 1) // 2
    x = torch.randn(2, channels_in, 13, 11, dtype=DTYPE)
    weight = torch.randn(channels_out, channels_in // groups, kernel, kernel, dtype=DTYPE)
    bias = torch.randn(channels_out, dtype=DTYPE)
    residual = torch.randn(2, channels_out, 13, 11, dtype=DTYPE)
    slopes = torch.empty(channels_out, dtype=DTYPE).uniform_(-0.5, 1.5)
    out = torch.full((2, channels_out, 13, 11), float("nan"), dtype=DTYPE)

    got = conv2d_rows(
        x,
        weight,
        bias,
        padding,
        dilation,
        groups,
        out=out,
        prelu_weight=slopes,
        residual=residual,
        block_bytes=block_bytes,
    )

    assert got is out
    expected = reference(x, weight, bias, padding, dilation, groups, residual, slopes)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block_bytes", BLOCK_SIZES)
def test_conv2d_rows_allocates_its_output_and_allows_any_horizontal_padding(block_bytes):
    torch.manual_seed(1)
    x = channels_last(torch.randn(1, 3, 8, 9, dtype=DTYPE))
    weight = torch.randn(2, 3, 3, 5, dtype=DTYPE)
    # Vertical "same" padding, horizontal padding 0: the width shrinks by 4.
    got = conv2d_rows(x, weight, None, (1, 0), block_bytes=block_bytes)
    assert got.shape == (1, 2, 8, 5)
    torch.testing.assert_close(got, F.conv2d(x, weight, padding=(1, 0)), rtol=1e-12, atol=1e-12)


def test_conv2d_rows_uses_the_module_block_size_and_handles_a_single_row(monkeypatch):
    monkeypatch.setattr(rowconv, "BLOCK_BYTES", 1)
    torch.manual_seed(2)
    for height in (1, 2, 7):
        x = torch.randn(3, 2, height, 5, dtype=DTYPE)
        weight = torch.randn(4, 2, 3, 3, dtype=DTYPE)
        got = conv2d_rows(x, weight, None, 2, 2)
        torch.testing.assert_close(got, F.conv2d(x, weight, None, 1, 2, 2), rtol=0, atol=1e-12)


def test_conv_module_rows_equals_the_modules_on_channel_slices_of_a_buffer():
    torch.manual_seed(3)
    conv = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3).double()
    prelu = nn.PReLU(6).double()
    nn.init.uniform_(prelu.weight, -0.5, 1.5)
    x = torch.randn(2, 6, 17, 15, dtype=DTYPE)
    # The output is a channel slice of a wider channels-last buffer, as models use them.
    buffer = empty_channels_last(x, 10)
    with torch.no_grad():
        got = conv_module_rows(x, conv, buffer[:, 2:8], prelu=prelu, residual=x)
        expected = prelu(conv(x) + x)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(buffer[:, 2:8], expected, rtol=1e-12, atol=1e-12)


def test_conv_prelu_stack_rows_equals_the_stack_run_layer_by_layer(monkeypatch):
    monkeypatch.setattr(rowconv, "BLOCK_BYTES", 2_000)
    torch.manual_seed(4)
    layers = [
        (nn.Conv2d(5, 8, 3, padding=1).double(), nn.PReLU(8).double()),
        (nn.Conv2d(8, 8, 3, padding=4, dilation=4, groups=2).double(), nn.PReLU().double()),
        (nn.Conv2d(8, 3, 1).double(), None),
    ]
    for _, prelu in layers[:2]:
        nn.init.uniform_(prelu.weight, -0.5, 1.5)
    parts = [torch.randn(2, 2, 11, 13, dtype=DTYPE), torch.randn(2, 3, 11, 13, dtype=DTYPE)]
    # A wide input (more channels than any layer output) takes its own buffer.
    wide = [torch.randn(2, 5, 11, 13, dtype=DTYPE)] * 2
    wide_layers = [(nn.Conv2d(10, 4, 3, padding=1).double(), None)]
    with torch.no_grad():
        x = torch.cat(parts, 1)
        for conv, prelu in layers:
            x = conv(x) if prelu is None else prelu(conv(x))
        got = conv_prelu_stack_rows(parts, layers)
        wide_got = conv_prelu_stack_rows(wide, wide_layers)
        wide_expected = wide_layers[0][0](torch.cat(wide, 1))
    torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(wide_got, wide_expected, rtol=1e-12, atol=1e-12)


def test_conv2d_rows_refuses_convolutions_that_change_the_height():
    x = torch.randn(1, 2, 6, 6)
    with pytest.raises(InputSizeError, match="vertical padding 1"):
        conv2d_rows(x, torch.randn(2, 2, 3, 3), padding=0)
    with pytest.raises(InputSizeError, match="stride-1"):
        conv_module_rows(x, nn.Conv2d(2, 2, 3, stride=2, padding=1))
    with pytest.raises(InputSizeError, match="stride-1"):
        conv_module_rows(x, nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))


def test_channels_last_helpers_keep_values_and_set_the_layout():
    a, b = torch.randn(2, 3, 4, 5), torch.randn(2, 1, 4, 5)
    joined = cat_channels_last([a, b])
    assert joined.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(joined, torch.cat([a, b], 1), rtol=0, atol=0)
    buffer = empty_channels_last(a.double(), 7)
    assert buffer.shape == (2, 7, 4, 5) and buffer.dtype == DTYPE
    assert buffer.is_contiguous(memory_format=torch.channels_last)


def test_row_blocks_are_for_cpu_inference_only():
    x = torch.zeros(1)
    assert not use_row_blocks(x)
    with torch.no_grad():
        assert use_row_blocks(x)
    with torch.inference_mode():
        assert use_row_blocks(x)
    if torch.cuda.is_available():
        with torch.no_grad():
            assert not use_row_blocks(x.cuda())
