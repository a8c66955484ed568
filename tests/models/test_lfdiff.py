"""LF-Diff network and module: MODELS.md 6 parameter counts, input contract, sampler, loading."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import hdrzoo
from hdrzoo.errors import HDRZooError, ModelError, WeightsError
from hdrzoo.hub import create_model
from hdrzoo.models.lfdiff import (
    FRM,
    PIM,
    Alignment,
    Denoiser,
    DHRNet,
    LFDiff,
    LFDiffModule,
    LPENet,
)
from hdrzoo.ops.diffusion import q_sample
from hdrzoo.ops.windows import pad_to_multiple

SMALL = dict(
    channels=16, heads=2, low_band_blocks=1, frms_per_group=1, prior_width=16, denoiser_width=16
)


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _bracket(batch=1, size=(32, 48), seed=0):
    generator = torch.Generator().manual_seed(seed)
    ldr = torch.rand(batch, 3, 3, *size, generator=generator)
    exposures = torch.tensor([[1.0, 4.0, 16.0]]).expand(batch, 3)
    return ldr, exposures, torch.ones(batch, dtype=torch.long)


@pytest.mark.parametrize(
    "variant,total",
    [("full", 7_532_337), ("stage1", 5_266_779), ("baseline", 5_160_363), ("direct", 5_849_118)],
)
def test_variant_parameter_counts_match_models_md(variant, total):
    net = LFDiff(variant)
    assert _params(net) == total
    parts = {
        "full": ("align", "dhrnet", "lpenet", "lpenet_dm", "denoiser"),
        "stage1": ("align", "dhrnet", "lpenet"),
        "baseline": ("align", "dhrnet"),
        "direct": ("align", "dhrnet", "lpenet", "lpenet_dm"),
    }[variant]
    for name in ("align", "dhrnet", "lpenet", "lpenet_dm", "denoiser"):
        assert hasattr(net, name) == (name in parts)


def test_component_parameter_counts_match_models_md():
    assert _params(Alignment()) == 496_320
    assert _params(FRM()) == 377_715
    assert _params(PIM()) == 343_490
    assert _params(DHRNet(use_prior=True)) == 4_561_368
    assert _params(DHRNet(use_prior=False)) == 4_664_043
    assert _params(LPENet(6)) == 209_091
    assert _params(LPENet(60)) == 582_339
    assert _params(Denoiser()) == 1_683_219
    # Modules used at inference by `full` (no LPENet).
    assert _params(LFDiff("full")) - _params(LPENet(6)) == 7_323_246


def test_full_costs_836_7_gmac_at_512_with_ten_steps():
    # The convolutions and the transposed attention cost a fixed amount per pixel; the time
    # MLP and the channel attention's squeeze cost a fixed amount per image. Two small sizes
    # give both, hence the cost at 512x512 without running it. Counted with autograd on: the
    # network layer by layer, as MODELS.md states it.
    net = LFDiff("full").eval()

    def gmac(height, width, grad=True):
        ldr, exposures, ref = _bracket(size=(height, width))
        with torch.set_grad_enabled(grad), FlopCounterMode(display=False) as counter:
            net(ldr, exposures, ref)
        return counter.get_total_flops() / 2 / 1e9

    small, large = gmac(64, 64), gmac(64, 128)
    per_pixel = (large - small) / (64 * 64)
    at_512 = small + per_pixel * (512 * 512 - 64 * 64)
    assert at_512 == pytest.approx(836.7, abs=0.05)
    # Inference recomputes f_ref (a 6 -> 60 3x3 conv, 3,240 MAC per pixel) at DHRNet's tail
    # instead of holding it through the groups; nothing else changes the count.
    assert (gmac(64, 64, grad=False) - small) * 1e9 == pytest.approx(3240 * 64 * 64, rel=1e-9)


def test_output_shapes_range_and_aux():
    net = LFDiff("full", **SMALL).eval()
    ldr, exposures, ref = _bracket(batch=2)
    with torch.no_grad():
        out = net(ldr, exposures, ref)
    assert out.hdr.shape == (2, 3, 32, 48)
    assert float(out.hdr.min()) >= 0.0 and float(out.hdr.max()) <= 1.0
    assert out.aux["z_hat"].shape == out.aux["condition"].shape == (2, 3, 8, 12)
    assert "z" not in out.aux
    with torch.no_grad():
        out = net(ldr, exposures, ref, gt=torch.rand(2, 3, 32, 48))
    assert out.aux["z"].shape == (2, 3, 8, 12)


def test_frames_are_sorted_by_exposure_internally():
    net = LFDiff("baseline", **SMALL).eval()
    ldr, exposures, ref = _bracket()
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        expected = net(ldr, exposures, ref).hdr
        shuffled = net(ldr[:, order], exposures[:, order], torch.tensor([2])).hdr
    torch.testing.assert_close(shuffled, expected)


@pytest.mark.parametrize(
    "ldr,exposures,ref,match",
    [
        (torch.rand(1, 2, 3, 32, 32), torch.tensor([[1.0, 4.0]]), 1, "exactly 3 frames"),
        (torch.rand(1, 4, 3, 32, 32), torch.ones(1, 4).cumsum(1), 1, "exactly 3 frames"),
        (torch.rand(1, 3, 3, 32, 40), torch.tensor([[1.0, 4.0, 16.0]]), 1, "multiples of 16"),
        (torch.rand(1, 3, 3, 32, 32), torch.tensor([[1.0, 4.0, 16.0]]), 0, "middle exposure"),
        (torch.rand(1, 3, 3, 32, 32), torch.tensor([[1.0, -4.0, 16.0]]), 1, "positive"),
        (torch.rand(3, 32, 32), torch.tensor([[1.0, 4.0, 16.0]]), 1, r"\(B, 3, 3, H, W\)"),
    ],
)
def test_bad_inputs_raise_hdrzoo_errors(ldr, exposures, ref, match):
    with pytest.raises(HDRZooError, match=match):
        LFDiff("baseline", **SMALL)(ldr, exposures, ref)


def test_stage1_needs_gt_and_bad_arguments_are_refused():
    ldr, exposures, ref = _bracket()
    with pytest.raises(HDRZooError, match="gt"):
        LFDiff("stage1", **SMALL)(ldr, exposures, ref)
    with pytest.raises(HDRZooError, match="gt must have shape"):
        LFDiff("stage1", **SMALL)(ldr, exposures, ref, gt=torch.rand(1, 3, 16, 16))
    with pytest.raises(ModelError, match="variant"):
        LFDiff("tiny")
    with pytest.raises(ModelError, match="sampling_steps"):
        LFDiff("full", sampling_steps=0)
    with pytest.raises(ModelError, match="stage"):
        LFDiffModule(variant="stage1", stage=2)
    with pytest.raises(ModelError, match="stage1_checkpoint"):
        LFDiffModule(variant="baseline", stage1_checkpoint="x.ckpt")
    with pytest.raises(ModelError, match="sizes"):
        LFDiffModule(variant="baseline", sizes={"width": 3})


def test_load_by_name_with_sampler_settings_and_same_seed_same_output():
    model = hdrzoo.load("lfdiff", sampling_steps=20, sizes=SMALL)
    assert isinstance(model, LFDiffModule) and not model.training
    assert model.net.variant == "full" and model.stage == 2
    assert model.net.timesteps == list(range(199, -1, -10))
    assert model.frames == 3 and model.size_multiple == 16
    ldr, exposures, ref = _bracket()
    with torch.no_grad():
        first = model(ldr, exposures, ref)
        second = model(ldr, exposures, ref)
        other = hdrzoo.load("lfdiff", sampling_steps=20, sample_seed=1, sizes=SMALL)
        other.net.load_state_dict(model.net.state_dict())
        third = other(ldr, exposures, ref)
    assert torch.equal(first.hdr, second.hdr)
    assert torch.equal(first.aux["z_hat"], second.aux["z_hat"])
    assert not torch.allclose(first.aux["z_hat"], third.aux["z_hat"])
    assert "lfdiff" in hdrzoo.list_models()


def test_sampler_uses_the_schedule_and_the_seeded_noise():
    # With a denoiser that returns the true epsilon of a known prior, the DDIM sampler inside
    # the network returns that prior: the network wires z_T, D and the schedule correctly.
    net = LFDiff("full", **SMALL).eval()
    ldr, exposures, ref = _bracket()
    prior = torch.randn(1, 3, 8, 12)
    z_T = torch.randn(1, 3, 8, 12, generator=torch.Generator().manual_seed(net.sample_seed))
    eps = (z_T - net.abar[199].sqrt() * prior) / (1 - net.abar[199]).sqrt()
    seen = []

    def fake_denoiser(x, t):
        seen.append((t, x.shape[1]))
        return eps

    net.denoiser.forward = fake_denoiser
    with torch.no_grad():
        out = net(ldr, exposures, ref)
    torch.testing.assert_close(out.aux["z_hat"], prior, atol=1e-4, rtol=1e-4)
    assert seen == [(t, 6) for t in range(199, 0, -20)]
    torch.testing.assert_close(q_sample(prior, 199, eps, net.abar), z_T)


def test_stage2_training_forward_backpropagates_through_sampler_and_freezes_lpenet():
    module = LFDiffModule(variant="full", perceptual_weight=0.0, sizes=SMALL)
    ldr, exposures, ref = _bracket(batch=2)
    batch = {"ldr": ldr, "exposures": exposures, "ref": ref, "gt": torch.rand(2, 3, 32, 48)}
    out = module.training_forward(batch)
    loss, terms = module.compute_loss(out, batch)
    assert set(terms) >= {"mulaw", "l_rec", "l_diff"}
    torch.testing.assert_close(loss, terms["l_rec"] + terms["l_diff"])
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in module.net.lpenet.parameters())
    for name in ("align", "dhrnet", "lpenet_dm", "denoiser"):
        grads = [p.grad for p in getattr(module.net, name).parameters()]
        assert all(g is not None for g in grads), name
    # The first layer of the denoiser only learns through the sampler's steps.
    assert float(module.net.denoiser.conv_in.weight.grad.abs().sum()) > 0
    optimizer = module.configure_optimizers()
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in module.net.lpenet.parameters()}


def test_stage2_fit_without_a_stage1_checkpoint_is_refused():
    with pytest.raises(WeightsError, match="stage1_checkpoint"):
        create_model("lfdiff", sizes=SMALL).setup("fit")
    create_model("lfdiff", sizes=SMALL).setup("test")  # evaluating random weights is allowed


def test_stage2_prior_warmup_keeps_align_and_dhrnet_then_scales_the_learning_rate():
    import lightning as L

    from hdrzoo.data.modules import SyntheticDataModule

    module = LFDiffModule(
        variant="full",
        perceptual_weight=0.0,
        sizes=SMALL,
        prior_warmup_steps=2,
        joint_lr_scale=0.5,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    )
    module.load_stage1(LFDiff("stage1", **SMALL))
    parts = ("align", "dhrnet", "lpenet_dm", "denoiser")
    snapshots, rates = [], []

    def copy(net):
        return {n: {k: v.clone() for k, v in getattr(net, n).state_dict().items()} for n in parts}

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            snapshots.append(copy(pl_module.net))
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    start = copy(module.net)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[Record()],
    )
    trainer.fit(module, datamodule=SyntheticDataModule(train_size=4, crop_size=32, batch_size=1))

    def changed(before, after, name):
        return any(not torch.equal(before[name][k], after[name][k]) for k in before[name])

    # Steps 1 and 2 (warm-up): only the prior generator moves, at the configured rate.
    for step in (0, 1):
        previous = start if step == 0 else snapshots[step - 1]
        assert not changed(previous, snapshots[step], "align")
        assert not changed(previous, snapshots[step], "dhrnet")
        assert changed(previous, snapshots[step], "denoiser")
        assert changed(previous, snapshots[step], "lpenet_dm")
    # Step 3: joint training at half the rate.
    assert changed(snapshots[1], snapshots[2], "align")
    assert changed(snapshots[1], snapshots[2], "dhrnet")
    assert rates == [1e-3, 1e-3, 5e-4]
    with pytest.raises(ModelError, match="prior_warmup_steps"):
        LFDiffModule(variant="stage1", sizes=SMALL, prior_warmup_steps=10)
    with pytest.raises(ModelError, match="joint_lr_scale"):
        LFDiffModule(sizes=SMALL, joint_lr_scale=0.0)


def test_load_stage1_copies_align_dhrnet_and_lpenet():
    stage1 = LFDiff("stage1", **SMALL)
    module = LFDiffModule(variant="full", sizes=SMALL)
    module.load_stage1(stage1)
    for name in ("align", "dhrnet", "lpenet"):
        for key, value in getattr(stage1, name).state_dict().items():
            assert torch.equal(getattr(module.net, name).state_dict()[key], value)
    with pytest.raises(WeightsError, match="baseline"):
        module.load_stage1(LFDiff("baseline", **SMALL))


def test_stage1_checkpoint_files_initialise_the_shared_parts_through_the_hub(tmp_path):
    from safetensors.torch import save_file

    stage1 = LFDiff("stage1", **SMALL)
    state = {k: v.contiguous() for k, v in stage1.state_dict().items()}
    save_file(state, str(tmp_path / "stage1.safetensors"))
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, tmp_path / "s1.ckpt")
    for name in ("stage1.safetensors", "s1.ckpt"):
        module = LFDiffModule(variant="full", sizes=SMALL, stage1_checkpoint=str(tmp_path / name))
        untouched = {k: v.clone() for k, v in module.net.denoiser.state_dict().items()}
        assert not torch.equal(module.net.align.fuse.weight, stage1.align.fuse.weight)  # not yet
        module.setup("fit")
        for part in ("align", "dhrnet", "lpenet"):
            for key, value in getattr(stage1, part).state_dict().items():
                assert torch.equal(getattr(module.net, part).state_dict()[key], value), key
        for key, value in module.net.denoiser.state_dict().items():
            assert torch.equal(value, untouched[key])  # stage 2's own parts keep their init
        module.setup("test")  # only once: `fit` then `test` tests the trained network
    # A network trained without a prior has no LPENet (and another first block per group).
    baseline = {k: v.contiguous() for k, v in LFDiff("baseline", **SMALL).state_dict().items()}
    save_file(baseline, str(tmp_path / "baseline.safetensors"))
    module = LFDiffModule(sizes=SMALL, stage1_checkpoint=str(tmp_path / "baseline.safetensors"))
    with pytest.raises(WeightsError, match="'dhrnet'.*missing"):
        module.setup("fit")
    wider = LFDiff("stage1", **{**SMALL, "channels": 24})
    save_file(
        {k: v.contiguous() for k, v in wider.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    module = LFDiffModule(sizes=SMALL, stage1_checkpoint=str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError, match="shape mismatch"):
        module.setup("fit")


def test_stage1_validation_takes_the_prior_from_the_batch_ground_truth():
    module = LFDiffModule(variant="stage1", sizes=SMALL).eval()
    ldr, exposures, ref = _bracket()
    gt = torch.rand(1, 3, 32, 48)
    batch = {"ldr": ldr, "exposures": exposures, "ref": ref, "gt": gt}
    with torch.no_grad():
        out = module.evaluation_forward(batch)
        direct = module(ldr, exposures, ref, gt=gt)
    torch.testing.assert_close(out.hdr, direct.hdr)
    torch.testing.assert_close(out.aux["z"], module.net.prior_from_gt(gt))
    with pytest.raises(HDRZooError, match="gt"):
        module.evaluation_forward({"ldr": ldr, "exposures": exposures, "ref": ref})


def test_module_forward_pads_whole_frames_and_crops_back():
    module = LFDiffModule(variant="full", sizes=SMALL).eval()
    ldr, exposures, ref = _bracket(size=(40, 50))
    with torch.no_grad():
        out = module(ldr, exposures, ref)
        padded, _ = pad_to_multiple(ldr, 16)
        direct = module.net(padded, exposures, ref)
    assert out.hdr.shape == (1, 3, 40, 50) and out.aux["z_hat"].shape == (1, 3, 10, 13)
    torch.testing.assert_close(out.hdr, direct.hdr[..., :40, :50])
    with pytest.raises(HDRZooError, match="multiples of 16"):
        module.net(ldr, exposures, ref)
