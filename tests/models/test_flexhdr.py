"""FlexHDR network: parameter budget, contract, permutation invariance, loading and merging."""

from __future__ import annotations

import pytest
import torch

import hdrzoo
from hdrzoo.data.synthetic import synthesize
from hdrzoo.errors import HDRZooError
from hdrzoo.models.flexhdr import ExposureConfidence, FlexHDR, FlexHDRModule, reference_first_order


@pytest.fixture(autouse=True)
def one_thread():
    # On a shared, busy machine two OpenMP threads wait on each other for every small op.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def net() -> FlexHDR:
    torch.manual_seed(0)
    return FlexHDR().eval()


def random_bracket(batch: int, frames: int, height: int = 16, width: int = 24, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ldr = torch.rand(batch, frames, 3, height, width, generator=generator)
    exposures = (
        4.0
        ** torch.stack([torch.randperm(frames, generator=generator) for _ in range(batch)]).float()
    )
    return ldr, exposures


def test_parameter_counts_match_models_md_exactly(net):
    assert count(net.flow) == 885_842
    assert count(net.attention) == 336_194
    assert count(net.merge) == 909_123
    assert count(net) == 2_131_159
    assert count(net.attention.encoder) == 3_520


def test_output_shape_range_and_aux(net):
    ldr, exposures = random_bracket(2, 3)
    ref = torch.tensor([1, 2])
    with torch.no_grad():
        out = net(ldr, exposures, ref)
    assert out.hdr.shape == (2, 3, 16, 24)
    assert out.hdr.min() >= 0 and out.hdr.max() <= 1 and torch.isfinite(out.hdr).all()
    assert out.aux["flows"].shape == (2, 3, 2, 16, 24)
    assert out.aux["confidences"].shape == (2, 3, 1, 16, 24)
    assert out.aux["attention"].shape == (2, 3, 1, 16, 24)
    # The reference's flow is zero; the others' are estimated (non-zero at random init).
    assert torch.equal(out.aux["flows"][0, 1], torch.zeros(2, 16, 24))
    assert torch.equal(out.aux["flows"][1, 2], torch.zeros(2, 16, 24))
    assert out.aux["flows"][0, 0].abs().max() > 0
    # Confidences are reported in the input order: those of frame j come from frame j.
    expected = ExposureConfidence()(ldr[1, 0][None])[0]
    torch.testing.assert_close(out.aux["confidences"][1, 0], expected)
    # The aux outputs are what hdrzoo.viz draws.
    from hdrzoo import viz

    assert viz.flow_to_color(out.aux["flows"][0, 0]).shape == (3, 16, 24)
    assert viz.mask_to_color(out.aux["attention"][0, 2]).shape == (3, 16, 24)
    assert viz.mask_to_color(out.aux["confidences"][0, 2]).shape == (3, 16, 24)


@pytest.mark.parametrize("frames", [2, 3, 5])
def test_output_is_invariant_to_permuting_the_frames(net, frames):
    ldr, exposures = random_bracket(2, frames, seed=frames)
    ref = torch.tensor([0, frames - 1])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        out = net(ldr, exposures, ref)
        for _ in range(2):
            perm = torch.randperm(frames, generator=generator)
            new_ref = torch.stack([(perm == r).nonzero()[0, 0] for r in ref])
            permuted = net(ldr[:, perm], exposures[:, perm], new_ref)
            torch.testing.assert_close(permuted.hdr, out.hdr, rtol=0, atol=1e-5)
            # Per-frame outputs follow their frames.
            torch.testing.assert_close(
                permuted.aux["flows"], out.aux["flows"][:, perm], rtol=0, atol=1e-4
            )


def test_reference_choice_matters(net):
    ldr, exposures = random_bracket(1, 3)
    with torch.no_grad():
        a = net(ldr, exposures, torch.tensor([0])).hdr
        b = net(ldr, exposures, torch.tensor([1])).hdr
    assert (a - b).abs().max() > 1e-4


def test_any_number_of_frames_runs_including_one(net):
    for frames in (1, 2, 4, 6):
        ldr, exposures = random_bracket(1, frames)
        with torch.no_grad():
            out = net(ldr, exposures, torch.tensor([frames // 2]))
        assert out.hdr.shape == (1, 3, 16, 24) and torch.isfinite(out.hdr).all()


def test_maps_smaller_than_16_pixels_run_padded_and_come_back_at_their_size(net):
    ldr, exposures = random_bracket(1, 3, 8, 24)
    with torch.no_grad():
        out = net(ldr, exposures, torch.tensor([1]))
    assert out.hdr.shape == (1, 3, 8, 24) and torch.isfinite(out.hdr).all()
    assert out.aux["flows"].shape == (1, 3, 2, 8, 24)


def test_on_demand_correlation_gives_the_all_pairs_result():
    torch.manual_seed(3)
    all_pairs = FlexHDR(iterations=3, correlation="all_pairs").eval()
    on_demand = FlexHDR(iterations=3, correlation="on_demand").eval()
    on_demand.load_state_dict(all_pairs.state_dict())
    ldr, exposures = random_bracket(1, 3, 32, 32)
    ref = torch.tensor([1])
    with torch.no_grad():
        a, b = all_pairs(ldr, exposures, ref), on_demand(ldr, exposures, ref)
    torch.testing.assert_close(b.hdr, a.hdr, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.aux["flows"], a.aux["flows"], rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "shape,ref,match",
    [
        ((1, 3, 3, 20, 24), 1, "multiples of 8"),
        ((1, 3, 1, 16, 16), 1, r"\(B, N, 3, H, W\)"),
        ((1, 3, 3, 16, 16), 3, "ref"),
    ],
)
def test_bad_inputs_raise_hdrzoo_errors_naming_the_fix(net, shape, ref, match):
    ldr = torch.rand(shape)
    exposures = torch.ones(shape[:2])
    with pytest.raises(HDRZooError, match=match):
        net(ldr, exposures, torch.tensor([ref]))


def test_constructor_arguments_are_checked():
    with pytest.raises(HDRZooError, match="correlation"):
        FlexHDR(correlation="dense")
    with pytest.raises(HDRZooError, match="iterations"):
        FlexHDR(iterations=0)
    with pytest.raises(HDRZooError, match="perceptual_weight"):
        FlexHDRModule(perceptual_weight=-1.0)
    assert FlexHDR.frames is None and FlexHDR.size_multiple == 8


def test_exposure_confidence_matches_the_piecewise_formula_and_keeps_alpha_beta_ordered():
    conf = ExposureConfidence()
    assert float(conf.alpha.detach()) == pytest.approx(0.1, abs=1e-6)
    assert float(conf.beta.detach()) == pytest.approx(0.9, abs=1e-6)
    values = torch.linspace(0, 1, 101, dtype=torch.float64)
    ldr = values.view(1, 1, 1, -1).expand(1, 3, 1, -1)
    got = conf.double()(ldr).flatten()
    expected = torch.tensor(
        [x / 0.1 if x < 0.1 else ((1 - x) / 0.1 if x > 0.9 else 1.0) for x in values.tolist()],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)  # alpha, beta stored in float32
    with torch.no_grad():
        conf.p_alpha.fill_(50.0)
        conf.p_beta.fill_(-50.0)
    assert 0 < float(conf.alpha.detach()) <= 0.5 <= float(conf.beta.detach()) < 1
    # Gradients reach both parameters.
    conf = ExposureConfidence()
    conf(torch.rand(1, 3, 8, 8) * 0.2).sum().backward()
    assert conf.p_alpha.grad is not None and conf.p_alpha.grad != 0
    conf.zero_grad()
    conf(0.8 + 0.2 * torch.rand(1, 3, 8, 8)).sum().backward()
    assert conf.p_beta.grad != 0


def test_reference_first_order_puts_each_samples_reference_first():
    order = reference_first_order(torch.tensor([2, 0, 4]), 5)
    assert order.tolist() == [[2, 0, 1, 3, 4], [0, 1, 2, 3, 4], [4, 0, 1, 2, 3]]


def test_registered_and_loadable_with_inference_iterations():
    assert "flexhdr" in hdrzoo.list_models()
    model = hdrzoo.load("flexhdr", iterations=12)
    assert isinstance(model, FlexHDRModule) and not model.training
    assert model.net.iterations == 12 and model.frames is None and model.size_multiple == 8
    assert hdrzoo.load("flexhdr").net.iterations == 8
    with pytest.raises(HDRZooError, match="no published weights"):
        hdrzoo.load("flexhdr", pretrained=True)


@pytest.mark.parametrize("frames", [2, 5])
def test_merge_pads_any_size_and_returns_the_bracket_geometry(frames):
    torch.manual_seed(0)
    model = hdrzoo.load("flexhdr", perceptual_weight=0.0)
    bracket = synthesize(7, size=(37, 53), n_frames=frames)
    hdr = model.merge(bracket)
    assert hdr.shape == (3, 37, 53) and torch.isfinite(hdr).all()
    assert hdr.min() >= 0 and hdr.max() <= 1


def test_cli_merges_a_five_frame_scene_with_flexhdr_weights(tmp_path):
    from safetensors.torch import save_file

    from hdrzoo.cli import main
    from hdrzoo.io import read_hdr, write_bracket

    torch.manual_seed(0)
    weights = tmp_path / "flexhdr.safetensors"
    save_file(FlexHDR().state_dict(), str(weights))
    scene = write_bracket(tmp_path / "scene", synthesize(11, size=(24, 40), n_frames=5))
    out = tmp_path / "out"
    code = main(
        ["merge", str(scene), "--model", "flexhdr", "--weights", str(weights), "-o", str(out)]
    )
    assert code == 0
    hdr = read_hdr(next(out.glob("*.exr")))
    expected = hdrzoo.load("flexhdr", weights=weights).merge(hdrzoo.read_bracket(scene))
    assert hdr.shape == (3, 24, 40)
    torch.testing.assert_close(hdr, expected, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_macs_at_512_with_three_frames_and_8_iterations_match_models_md():
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net = FlexHDR(correlation="all_pairs").eval()
    ldr, exposures = random_bracket(1, 3, 512, 512)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(ldr, exposures, torch.tensor([1]))
    gmac = counter.get_total_flops() / 2e9
    assert gmac == pytest.approx(1016.852, abs=0.01)  # MODELS.md section 1: 1016.9
