"""Halo tiling: a local network computed tile by tile equals the whole-image computation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.halo import halo_tiles, map_halo_tiles, receptive_radius, tile_shape_for
from hdrzoo.ops.rdb import RDB
from hdrzoo.ops.streams import StreamFusion

STREAMS = 2


class LocalNet(nn.Module):
    """Convolutions in a chain and in parallel (a dense block), dilation, stream fusion."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.dilated = nn.Conv2d(6, 6, 3, padding=2, dilation=2)
        self.fuse = StreamFusion(6, kernel_size=3)
        self.dense = RDB(6, 2, 2)
        self.head = nn.Conv2d(6, 2, (5, 3), padding=(2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dilated(F.relu(self.stem(x))))
        x = self.dense(F.leaky_relu(self.fuse(x, STREAMS), 0.2))
        return self.head(x)


@pytest.fixture(scope="module")
def local_net() -> LocalNet:
    torch.manual_seed(0)
    return LocalNet().double()


def test_receptive_radius_adds_the_reach_of_every_convolution(local_net):
    # stem 1 + dilated 2 + fusion 1 + dense 1 + 1 (+ 1x1 fusion 0) + head max(2, 1) = 8.
    assert receptive_radius(local_net) == 8
    assert receptive_radius(nn.Conv2d(1, 1, (7, 3), padding=(3, 1))) == 3
    with pytest.raises(InputSizeError, match="stride"):
        receptive_radius(nn.Conv2d(1, 1, 3, stride=2))


def test_receptive_radius_is_the_true_reach_of_a_chain(local_net):
    # A single changed input pixel moves outputs exactly up to the radius (vertically,
    # where the 5-row head kernel makes the chain longest) and no further.
    torch.manual_seed(1)
    x = torch.randn(STREAMS, 3, 41, 41, dtype=torch.float64)
    poked = x.clone()
    poked[:, :, 20, 20] += 1.0
    with torch.no_grad():
        changed = (local_net(poked) - local_net(x)).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    assert rows.min() == 20 - 8 and rows.max() == 20 + 8


@pytest.mark.parametrize("tile", [(4, 8), (7, 11), (12, 4), (17, 30), (40, 40)])
def test_map_halo_tiles_equals_the_whole_image(local_net, tile):
    torch.manual_seed(2)
    x = torch.randn(STREAMS, 3, 17, 30, dtype=torch.float64)
    halo = receptive_radius(local_net)
    with torch.no_grad():
        whole = local_net(x)
        tiled, doubled = map_halo_tiles(
            lambda rows, cols: [local_net(x[..., rows, cols]), 2 * x[..., rows, cols]],
            17,
            30,
            tile,
            halo,
        )
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(doubled, 2 * x, rtol=0, atol=0)


def test_a_halo_smaller_than_the_radius_changes_the_result(local_net):
    torch.manual_seed(3)
    x = torch.randn(STREAMS, 3, 17, 30, dtype=torch.float64)
    with torch.no_grad():
        whole = local_net(x)
        short = map_halo_tiles(lambda r, c: [local_net(x[..., r, c])], 17, 30, (6, 6), 7)[0]
    # One pixel short: far above the 1e-12 the right halo is held to.
    assert (short - whole).abs().max() > 1e-9


def test_gradients_through_the_tiles_equal_the_whole_image_gradients(local_net):
    torch.manual_seed(4)
    x = torch.randn(STREAMS, 3, 11, 13, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(STREAMS, 2, 11, 13, dtype=torch.float64)
    (whole_grad,) = torch.autograd.grad((local_net(x) * weight).sum(), x)
    tiled = map_halo_tiles(lambda r, c: [local_net(x[..., r, c])], 11, 13, (6, 7), 8)[0]
    (tiled_grad,) = torch.autograd.grad((tiled * weight).sum(), x)
    torch.testing.assert_close(tiled_grad, whole_grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "height,width,tile,halo", [(10, 7, (3, 4), 2), (9, 9, (9, 9), 5), (5, 12, (2, 5), 0)]
)
def test_tiles_cover_every_pixel_once_and_windows_add_the_clipped_halo(height, width, tile, halo):
    count = torch.zeros(height, width, dtype=torch.long)
    for piece in halo_tiles(height, width, tile, halo):
        count[piece.rows, piece.cols] += 1
        assert piece.window_rows.start == max(piece.rows.start - halo, 0)
        assert piece.window_rows.stop == min(piece.rows.stop + halo, height)
        assert piece.window_cols.start == max(piece.cols.start - halo, 0)
        assert piece.window_cols.stop == min(piece.cols.stop + halo, width)
        crop_rows, crop_cols = piece.crop
        window = torch.arange(height * width).view(height, width)[
            piece.window_rows, piece.window_cols
        ]
        assert torch.equal(
            window[crop_rows, crop_cols],
            torch.arange(height * width).view(height, width)[piece.rows, piece.cols],
        )
    assert bool((count == 1).all())
    with pytest.raises(InputSizeError, match="halo_tiles"):
        halo_tiles(height, width, (0, 3), halo)


def brute_force_tile_count(height: int, width: int, pixels: int, halo: int) -> int:
    """Fewest even splits whose interior window fits, over every (rows, cols)."""
    best = math.inf
    for rows, cols in itertools.product(range(1, height + 1), range(1, width + 1)):
        window_h = min(height, math.ceil(height / rows) + 2 * halo)
        window_w = min(width, math.ceil(width / cols) + 2 * halo)
        if window_h * window_w <= pixels:
            best = min(best, rows * cols)
    return best


@pytest.mark.parametrize(
    "height,width,pixels,halo",
    [(40, 60, 2400, 3), (40, 60, 700, 3), (40, 60, 300, 4), (33, 17, 200, 2), (50, 9, 90, 1)],
)
def test_tile_shape_for_fits_the_budget_with_the_fewest_tiles(height, width, pixels, halo):
    tile_h, tile_w = tile_shape_for(height, width, pixels, halo)
    tiles = halo_tiles(height, width, (tile_h, tile_w), halo)
    if height * width <= pixels:
        assert (tile_h, tile_w) == (height, width)
    for piece in tiles:
        area = (piece.window_rows.stop - piece.window_rows.start) * (
            piece.window_cols.stop - piece.window_cols.start
        )
        assert area <= pixels
    assert len(tiles) == brute_force_tile_count(height, width, pixels, halo)


def test_tile_shape_for_refuses_a_budget_smaller_than_one_tile_with_its_halo():
    with pytest.raises(InputSizeError, match="at least 49 pixels"):
        tile_shape_for(40, 60, 48, halo=3)
