import math

import pytest
import torch
from torch import nn

import hdrzoo
from hdrzoo.errors import BracketError, HDRZooError, InputSizeError
from hdrzoo.inference import blend_window, merge, tile_starts
from hdrzoo.models.base import HDRModule


class _PositionNet(nn.Module):
    """Needs H, W multiples of 16; output = reference frame's linear value + a 3x3 box blur of it.

    The blur makes every output pixel depend on its neighbours, so wrong padding or tiling
    shows up at borders and seams.
    """

    frames = None
    size_multiple = 16

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, ldr, exposures, ref):
        assert ldr.shape[-2] % 16 == 0 and ldr.shape[-1] % 16 == 0
        x = ldr[torch.arange(ldr.shape[0]), ref] ** 2.2
        return self.scale * (x + nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False))


class _PositionModule(HDRModule):
    def __init__(self):
        super().__init__()
        self.net = _PositionNet()


def test_merge_pads_to_the_size_multiple_and_crops_back():
    module = _PositionModule()
    ldr = torch.rand(3, 3, 37, 53)
    hdr = merge(module, ldr, exposures=[1.0, 4.0, 16.0])
    assert hdr.shape == (3, 37, 53)
    x = ldr[1] ** 2.2
    # Away from the bottom/right padding the result is the plain formula.
    inner = x + nn.functional.avg_pool2d(x[None], 3, 1, 1, count_include_pad=False)[0]
    torch.testing.assert_close(hdr[:, :36, :52], inner[:, :36, :52])


def test_tiled_merge_matches_untiled_merge_of_classic_above_50db():
    from hdrzoo import metrics

    model = hdrzoo.load("classic")
    ldr = torch.rand(3, 3, 150, 211)
    full = model.merge(ldr, exposures=[1.0, 4.0, 16.0])
    tiled = model.merge(ldr, exposures=[1.0, 4.0, 16.0], tile=64, overlap=16)
    assert float(metrics.psnr_mu(tiled.clamp(0, 1), full.clamp(0, 1))) >= 50.0
    torch.testing.assert_close(tiled, full, rtol=1e-5, atol=1e-6)


def test_tiled_merge_blends_seams_of_a_context_dependent_net():
    module = _PositionModule()
    ldr = torch.rand(3, 3, 96, 130)
    full = merge(module, ldr, exposures=[1.0, 4.0, 16.0])
    tiled = merge(module, ldr, exposures=[1.0, 4.0, 16.0], tile=48, overlap=16)
    # Inside the image only pixels next to a tile edge see different context, and there the
    # blend window gives the cut-off tile almost no weight. (The outermost pixels differ by
    # design: the untiled pass sees reflect padding there, the last tile does not.)
    diff = (tiled - full)[:, 1:-1, 1:-1].abs()
    assert diff.max() < 0.02
    assert diff.mean() < 1e-3


def test_tile_starts_cover_the_axis_with_the_requested_overlap():
    for length, tile, overlap in [
        (100, 32, 8),
        (64, 64, 16),
        (65, 64, 16),
        (1000, 256, 64),
        (10, 32, 8),
    ]:
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        for a, b in zip(starts, starts[1:]):
            assert b - a <= tile - overlap


def test_blend_window_is_positive_flat_inside_and_ramps_only_at_shared_edges():
    w = blend_window(40, 50, 8, top=True, bottom=False, left=False, right=True)[0]
    assert (w > 0).all() and w.max() == 1.0
    assert torch.all(w[20, :40] == 1.0)  # no ramp on the left edge
    assert w[0, 20] < 0.05 and w[-1, 20] == 1.0
    expected = math.sin(0.5 * math.pi * 0.5 / 8) ** 2
    assert float(w[0, 20]) == pytest.approx(expected, rel=1e-6)


def test_merge_rejects_bad_arguments_with_clear_errors():
    model = hdrzoo.load("classic")
    ldr = torch.rand(3, 3, 20, 20)
    with pytest.raises(InputSizeError, match="overlap"):
        model.merge(ldr, exposures=[1, 4, 16], tile=16, overlap=16)
    with pytest.raises(InputSizeError, match="tile"):
        model.merge(ldr, exposures=[1, 4, 16], tile=0)
    with pytest.raises(InputSizeError, match="tile=1024"):
        model.merge(ldr, exposures=[1, 4, 16], max_pixels=100)
    with pytest.raises(HDRZooError, match="exposures"):
        model.merge(ldr)
    with pytest.raises(BracketError, match="3 frames"):
        model.merge(ldr, exposures=[1, 4])
    with pytest.raises(HDRZooError, match="precision"):
        model.merge(ldr, exposures=[1, 4, 16], precision="int8")


def test_merge_defaults_the_reference_to_the_middle_exposure_and_accepts_tuples():
    module = _PositionModule()
    ldr = torch.rand(3, 3, 16, 16)
    # Frames given long, short, middle: the middle exposure is at index 2.
    hdr = merge(module, (ldr, [16.0, 1.0, 4.0]))
    x = ldr[2] ** 2.2
    torch.testing.assert_close(
        hdr, x + nn.functional.avg_pool2d(x[None], 3, 1, 1, count_include_pad=False)[0]
    )


def test_merge_bf16_autocast_on_cpu_runs_and_stays_close():
    module = _PositionModule()
    ldr = torch.rand(3, 3, 32, 32)
    a = merge(module, ldr, exposures=[1, 4, 16])
    b = merge(module, ldr, exposures=[1, 4, 16], precision="bf16")
    assert b.dtype == torch.float32 and (a - b).abs().max() < 2e-2
    assert module.training  # merge restores the mode it found


@pytest.mark.slow
def test_merge_with_torch_compile_matches_eager_and_keeps_the_state_dict_clean():
    module = _PositionModule()
    ldr = torch.rand(3, 3, 32, 48)
    eager = merge(module, ldr, exposures=[1, 4, 16])
    compiled = merge(module, ldr, exposures=[1, 4, 16], compile=True)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    assert list(module.state_dict()) == ["net.scale"]
