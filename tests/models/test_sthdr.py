"""STHDR (MODELS.md 7): exact parameter counts and cost, scales sharing weights, inputs, loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import hdrzoo
from hdrzoo.errors import HDRZooError
from hdrzoo.losses import MuLawL1
from hdrzoo.models.base import NetOutput
from hdrzoo.models.registry import get_entry
from hdrzoo.models.sthdr import STHDR, STHDRModule
from hdrzoo.ops.deform import ModulatedDeformConv

EXPOSURES = torch.tensor([[1.0, 4.0, 16.0]])


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def net() -> STHDR:
    torch.manual_seed(0)
    return STHDR().eval()


def _bracket(height: int, width: int, batch: int = 1, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ldr = torch.rand(batch, 3, 3, height, width, generator=generator)
    return ldr, EXPOSURES.expand(batch, 3), torch.ones(batch, dtype=torch.long)


def test_parameter_counts_match_models_md(net):
    assert _params(net) == 1_574_123
    assert _params(net.align) == 66_984
    assert _params(net.merge) == 1_507_139
    assert _params(net.merge.u1) == _params(net.merge.u2) == 746_048
    assert _params(net.align.scm_s) == _params(net.align.scm_l) == 31_060
    # One Align Net and one Merge Net: the three scales share every weight.
    assert {name.split(".")[0] for name, _ in net.named_parameters()} == {"align", "merge"}


def _gmac(fn, *args) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(*args)
    return counter.get_total_flops() / 2e9


def _use_engine(net: STHDR, engine: str) -> STHDR:
    for module in net.modules():
        if isinstance(module, ModulatedDeformConv):
            module.engine = engine
    return net


def test_cost_at_512_is_48_478_gmac():
    # On the meta device (shapes only) so that the 512x512 count takes seconds; the test
    # below ties the meta count to a real forward pass.
    with torch.device("meta"):
        meta_net = _use_engine(STHDR().eval(), "torchvision")
        frames, base = torch.empty(1, 3, 6, 512, 512), torch.empty(1, 3, 512, 512)
    # MODELS.md 7.4 counts without the deformable convolutions (torchvision's call is not
    # counted by FlopCounterMode) ...
    assert _gmac(meta_net.forward_encoded, frames, base) == pytest.approx(48.478, abs=1e-3)
    # ... the default sampled engine's 1x1 matmul is: two 32 -> 32 3x3 deformable convs per
    # scale, 32 * 9 * 32 MACs per pixel, at 512^2, 256^2 and 128^2.
    deform_gmac = 2 * 32 * 9 * 32 * (512**2 + 256**2 + 128**2) / 1e9
    _use_engine(meta_net, "sampled")
    assert _gmac(meta_net.forward_encoded, frames, base) == pytest.approx(
        48.478 + deform_gmac, abs=1e-3
    )


def test_meta_cost_equals_the_cost_of_a_real_forward(net):
    ldr, exposures, ref = _bracket(64, 128)
    real = _gmac(_use_engine(net, "torchvision"), ldr, exposures, ref)
    _use_engine(net, "sampled")
    with torch.device("meta"):
        meta_net = _use_engine(STHDR().eval(), "torchvision")
        frames, base = torch.empty(1, 3, 6, 64, 128), torch.empty(1, 3, 64, 128)
    assert real == _gmac(meta_net.forward_encoded, frames, base)
    # The convolutions' cost grows with the area (the GC blocks' pooled transforms do not).
    assert real == pytest.approx(48.478 * 64 * 128 / 512**2, rel=1e-3)


def test_forward_equals_the_scales_run_by_hand(net):
    ldr, exposures, ref = _bracket(64, 64, batch=2)
    ldr64, exposures64 = ldr.double(), exposures.double()
    linear = ldr64**2.2 / exposures64[:, :, None, None, None]
    frames = torch.cat([ldr64, linear], dim=2)  # X_k = [I_k, H_k]
    base = linear[:, 1]
    net64 = STHDR().double().eval()
    net64.load_state_dict(net.state_dict())
    previous = None
    expected = {}
    with torch.no_grad():
        for factor in (4, 2, 1):
            frames_s = F.avg_pool2d(frames.flatten(0, 1), factor).unflatten(0, (2, 3))
            z = net64.align(frames_s)
            upsampled = None
            if previous is not None:
                upsampled = F.interpolate(previous, scale_factor=2, mode="bilinear")
            previous, sam_image = net64.merge(z, F.avg_pool2d(base, factor), upsampled)
            expected[factor] = previous, sam_image
        out = net64(ldr64, exposures64, ref)
    for factor, (hdr, sam_image) in expected.items():
        torch.testing.assert_close(out.aux[f"hdr_s{factor}"], hdr)
        torch.testing.assert_close(out.aux[f"sam_s{factor}"], sam_image)
    torch.testing.assert_close(out.hdr, expected[1][0])


def test_any_size_is_reflect_padded_to_64_and_cropped_back(net):
    ldr, exposures, ref = _bracket(40, 70)
    with torch.no_grad():
        out = net(ldr, exposures, ref)
        padded = F.pad(ldr.flatten(0, 1), (0, 58, 0, 24), mode="reflect").unflatten(0, (1, 3))
        expected = net(padded, exposures, ref)
    assert isinstance(out, NetOutput) and out.hdr.shape == (1, 3, 40, 70)
    torch.testing.assert_close(out.hdr, expected.hdr[..., :40, :70])
    for factor in (4, 2, 1):
        for key in (f"hdr_s{factor}", f"sam_s{factor}"):
            assert out.aux[key].shape == (1, 3, 40 // factor, 70 // factor)
    assert out.hdr.min() >= 0 and out.hdr.max() <= 1


def test_frames_are_sorted_by_exposure(net):
    ldr, exposures, ref = _bracket(64, 64)
    order = torch.tensor([2, 0, 1])  # long, short, middle: the reference is now index 2
    with torch.no_grad():
        sorted_out = net(ldr, exposures, ref).hdr
        shuffled_out = net(ldr[:, order], exposures[:, order], torch.tensor([2])).hdr
    torch.testing.assert_close(shuffled_out, sorted_out, rtol=0, atol=0)


@pytest.mark.parametrize("frames", [2, 4])
def test_exactly_three_frames(net, frames):
    ldr = torch.rand(1, frames, 3, 64, 64)
    with pytest.raises(HDRZooError, match="exactly 3 frames"):
        net(ldr, torch.arange(1.0, frames + 1)[None], torch.tensor([1]))


def test_bad_inputs_raise_hdrzoo_errors(net):
    ldr, exposures, ref = _bracket(64, 64)
    with pytest.raises(HDRZooError, match="middle exposure"):
        net(ldr, exposures, torch.tensor([0]))
    with pytest.raises(HDRZooError, match="positive"):
        net(ldr, torch.tensor([[1.0, -4.0, 16.0]]), ref)
    with pytest.raises(HDRZooError, match="ldr must be"):
        net(ldr[:, :, :2], exposures, ref)
    with pytest.raises(HDRZooError, match="ref must"):
        net(ldr, exposures, torch.tensor([5]))


def test_registered_loadable_and_merges_any_size():
    entry = get_entry("sthdr")
    assert entry.module_cls is STHDRModule and not entry.weights
    module = hdrzoo.load("sthdr")
    assert not module.training and module.frames == 3 and module.size_multiple == 64
    bracket = hdrzoo.Bracket(torch.rand(3, 3, 50, 45), torch.tensor([4.0, 1.0, 16.0]), 0)
    hdr = module.merge(bracket)
    assert hdr.shape == (3, 50, 45) and torch.isfinite(hdr).all()
    with pytest.raises(HDRZooError):
        module.merge(hdrzoo.Bracket(torch.rand(2, 3, 32, 32), torch.tensor([1.0, 4.0]), 1))


def test_loss_is_the_multiscale_mulaw_l1_of_the_three_outputs():
    torch.manual_seed(1)
    module = STHDRModule(scale_weights=(1.0, 0.5, 0.25), sam_weight=0.1)
    gt = torch.rand(2, 3, 16, 16)
    aux = {f"hdr_s{f}": torch.rand(2, 3, 16 // f, 16 // f) for f in (1, 2, 4)}
    aux |= {f"sam_s{f}": torch.rand(2, 3, 16 // f, 16 // f) for f in (1, 2, 4)}
    loss, terms = module.compute_loss(NetOutput(aux["hdr_s1"], aux), {"gt": gt})
    mulaw = MuLawL1()
    expected = {f: mulaw(aux[f"hdr_s{f}"], F.avg_pool2d(gt, f) if f > 1 else gt) for f in (1, 2, 4)}
    sam = sum(
        mulaw(aux[f"sam_s{f}"], F.avg_pool2d(gt, f) if f > 1 else gt) * w
        for f, w in ((1, 1.0), (2, 0.5), (4, 0.25))
    )
    for f in (1, 2, 4):
        torch.testing.assert_close(terms[f"mulaw_s{f}"], expected[f])
    torch.testing.assert_close(
        loss, expected[1] + 0.5 * expected[2] + 0.25 * expected[4] + 0.1 * sam
    )


def test_module_arguments_are_checked():
    with pytest.raises(HDRZooError, match="scale_weights"):
        STHDRModule(scale_weights=(1.0, 1.0))
    with pytest.raises(HDRZooError, match="sam_weight"):
        STHDRModule(sam_weight=-1.0)


REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(REPO)) for p in REPO.glob("configs/sthdr/*.yaml"))


def test_the_four_configs_exist():
    assert [Path(c).name for c in CONFIGS] == [
        "challenge123.yaml",
        "kalantari17.yaml",
        "kalantari17_finetune384.yaml",
        "synthetic.yaml",
    ]


@pytest.mark.parametrize("config", CONFIGS)
def test_configs_resolve_to_the_module_with_crops_the_network_takes(config, capsys):
    from hdrzoo.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / config), "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "hdrzoo.models.sthdr.STHDRModule" in out and "sam_weight: 0.0" in out
    crop = int(out.split("crop_size: ")[1].split()[0])
    assert crop % 64 == 0 and crop >= 128
    if "finetune384" in config:
        assert crop == 384 and "batch_size: 8" in out


def test_untrained_network_returns_the_reference_radiance():
    # Zero output conv: every scale's output is the reference's linear image, clamped to [0, 1].
    torch.manual_seed(0)
    net = STHDR().eval()
    ldr, exposures, ref = _bracket(64, 96)
    with torch.no_grad():
        hdr = net(ldr, exposures, ref).hdr
    times = sorted(exposures[0].tolist())
    middle = exposures[0].tolist().index(times[1])
    expected = (ldr[:, middle] ** 2.2 / (times[1] / times[0])).clamp(0, 1)
    torch.testing.assert_close(hdr, expected, rtol=0, atol=1e-6)
