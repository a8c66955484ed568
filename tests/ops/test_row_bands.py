"""`map_row_bands`: a local function computed band by band equals the whole-image call."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError
from hdrzoo.ops import rowconv
from hdrzoo.ops.attention import GDFN, ResBlock
from hdrzoo.ops.rowconv import band_rows, map_row_bands

DTYPE = torch.float64


def _two_outputs(convs: nn.ModuleList):
    """Three 3x3 convs deep (radius 3) for the first output, one deep for the second."""

    def fn(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = convs[0](torch.cat([a, b], 1))
        deep = convs[2](F.leaky_relu(convs[1](first), 0.2))
        return deep, first

    return fn


@pytest.mark.parametrize("rows", [1, 2, 5, 11, 100])
def test_bands_equal_the_whole_image_for_any_band_height(rows):
    torch.manual_seed(0)
    convs = nn.ModuleList(
        [
            nn.Conv2d(3, 4, 3, padding=1),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.Conv2d(4, 2, 3, padding=1),
        ]
    ).to(DTYPE)
    a, b = torch.randn(2, 1, 11, 7, dtype=DTYPE), torch.randn(2, 2, 11, 7, dtype=DTYPE)
    fn = _two_outputs(convs)
    with torch.no_grad():
        expected = fn(a, b)
        banded = map_row_bands(fn, [a, b], halo=3, rows=rows)
    assert len(banded) == 2
    for got, want in zip(banded, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_a_halo_smaller_than_the_receptive_field_is_wrong_at_band_edges():
    # The halo is what makes the bands exact: one row short and the band edges differ.
    torch.manual_seed(0)
    convs = nn.ModuleList(
        [
            nn.Conv2d(3, 4, 3, padding=1),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.Conv2d(4, 2, 3, padding=1),
        ]
    ).to(DTYPE)
    a, b = torch.randn(1, 1, 12, 5, dtype=DTYPE), torch.randn(1, 2, 12, 5, dtype=DTYPE)
    fn = _two_outputs(convs)
    with torch.no_grad():
        deep, _ = map_row_bands(fn, [a, b], halo=2, rows=4)
        error = (deep - fn(a, b)[0]).abs().amax(dim=(0, 1, 3))
    assert error[[0, 1, 2]].max() < 1e-12  # rows of the first band away from its lower edge
    assert error[3] > 1e-6 and error[4] > 1e-6  # rows that needed a third halo row


def test_one_band_returns_the_function_output_and_bad_arguments_raise():
    x = torch.randn(1, 2, 4, 4)
    out = torch.zeros(1, 2, 4, 4)
    assert map_row_bands(lambda t: out, [x], halo=1, rows=4)[0] is out
    with pytest.raises(InputSizeError, match="halo"):
        map_row_bands(lambda t: t, [x], halo=-1, rows=2)
    with pytest.raises(InputSizeError, match="height"):
        map_row_bands(lambda s, t: s, [x, torch.randn(1, 2, 5, 4)], halo=1, rows=2)
    assert (
        band_rows(torch.zeros(2, 3, 5, 10), widest_channels=4, block_bytes=2 * 10 * 4 * 4 * 3) == 3
    )
    assert band_rows(torch.zeros(1, 3, 5, 10), widest_channels=4, block_bytes=1) == 1


@pytest.mark.parametrize("block", [ResBlock(6), GDFN(6)])
def test_resblock_and_gdfn_take_row_bands_in_cpu_inference_with_the_same_values(block, monkeypatch):
    torch.manual_seed(0)
    block = block.to(DTYPE)
    x = torch.randn(2, 6, 13, 9, dtype=DTYPE)
    plain = block(x).detach()  # autograd on: the whole-image path
    calls = []
    original = rowconv.map_row_bands

    def spy(fn, inputs, halo, rows):
        calls.append(rows)
        return original(fn, inputs, halo, rows)

    monkeypatch.setattr("hdrzoo.ops.attention.map_row_bands", spy)
    monkeypatch.setattr(rowconv, "BLOCK_BYTES", 2 * 9 * 8 * 40)  # a few rows per band
    with torch.no_grad():
        banded = block(x)
    assert calls and calls[0] < 13
    torch.testing.assert_close(banded, plain, rtol=0, atol=1e-12)
