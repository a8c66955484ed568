"""FlexHDR's memory claim: a default 1000 x 1500 merge on CPU stays under 4 GB peak RSS.

The attention and merge networks run in exact halo tiles of ``head_pixels`` frame-pixels
(``hdrzoo.ops.halo``); the flows and the shallow features stay whole-image. The default
tests check that tiling gives the whole-image output and that the default budget tiles a
1000 x 1500 merge; the slow test measures the peak RSS of that merge in a fresh process.
"""

from __future__ import annotations

import pytest
import torch
from _memory import run_memory_benchmark

import hdrzoo
from hdrzoo.errors import ModelError
from hdrzoo.models.flexhdr import HEAD_PIXELS, FlexHDR
from hdrzoo.ops.halo import halo_tiles


def test_head_halo_is_the_receptive_radius_of_attention_and_merge():
    # Attention: five 3x3 convs (two in stream fusions). Merge: conv0, 3 RDBs of six 3x3
    # dense convs (1x1 fusions reach nothing), conv1, conv2.
    assert FlexHDR().head_halo == 5 + 1 + 3 * 6 + 2 == 26


def test_default_budget_tiles_a_1000x1500_merge_and_every_window_fits():
    net = FlexHDR()
    assert net.head_pixels == HEAD_PIXELS
    height, width, frames = 1000, 1504, 3  # merge pads 1500 to a multiple of 8
    tile = net.head_tile(height, width, frames)
    tiles = halo_tiles(height, width, tile, net.head_halo)
    assert len(tiles) > 1
    for piece in tiles:
        rows = piece.window_rows.stop - piece.window_rows.start
        cols = piece.window_cols.stop - piece.window_cols.start
        assert frames * rows * cols <= HEAD_PIXELS
    # Small inputs (training crops) and head_pixels=None take the whole image at once.
    assert net.head_tile(256, 256, 3) == (256, 256)
    assert FlexHDR(head_pixels=None).head_tile(height, width, frames) == (height, width)


def test_head_pixels_must_be_a_positive_integer_or_none():
    for bad in (0, -5, 1.5, "many"):
        with pytest.raises(ModelError, match="head_pixels"):
            FlexHDR(head_pixels=bad)


def test_tiled_merge_equals_the_whole_image_merge(monkeypatch):
    torch.manual_seed(0)
    whole = hdrzoo.load("flexhdr", head_pixels=None, iterations=2)
    tiled = hdrzoo.load("flexhdr", iterations=2)
    tiled.load_state_dict(whole.state_dict())
    generator = torch.Generator().manual_seed(1)
    ldr = torch.rand(3, 3, 80, 96, generator=generator)
    # Motion, so that warps of a tile read outside it.
    ldr[0] = torch.roll(ldr[1], shifts=(3, -5), dims=(-2, -1)) * 0.5
    bracket = hdrzoo.Bracket(ldr, torch.tensor([1.0, 4.0, 16.0]), 1)
    calls = []

    def two_by_two(self, height, width, streams):
        calls.append((height, width, streams))
        return 40, 48

    expected = whole.merge(bracket)
    # Any tile gives the same output; the rule that picks it is tested above.
    monkeypatch.setattr(FlexHDR, "head_tile", two_by_two)
    got = tiled.merge(bracket)
    assert calls == [(80, 96, 3)]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert got.std() > 0.01  # a real image, not a constant that would match anyway


@pytest.mark.slow
def test_default_flexhdr_merge_of_1000x1500_on_cpu_stays_under_4_gb_peak_rss():
    result = run_memory_benchmark(
        "flexhdr_memory.py", "--height", "1000", "--width", "1500", "--threads", "2"
    )
    assert result["output_shape"] == [3, 1000, 1500] and result["output_finite"]
    assert result["head_tiles"] > 1, result
    assert result["peak_rss_gib"] * 2**30 < 4e9, result
