"""FlexHDR training through Lightning on synthetic brackets (bounded CPU steps).

FlexHDR runs 64-channel dense blocks at full resolution for every frame: a 64 x 64 step
costs seconds on a CPU, so the default test trains briefly and shows the held-out loss and
PSNR-mu improving; the comparison with `classic` and the reference frame alone needs longer
training and is marked slow.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

import hdrzoo
from hdrzoo import metrics
from hdrzoo.data.modules import SyntheticDataModule
from hdrzoo.data.synthetic import synthesize
from hdrzoo.hub import create_model
from hdrzoo.ops.tonemap import linearize

HELD_OUT_SEED = 3_000_000  # disjoint from training (0..), validation (1e6..) and test (2e6..)


@pytest.fixture(autouse=True)
def one_thread():
    # On a shared, busy machine two OpenMP threads wait on each other for every small op.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def mean_psnr_mu(merge, scenes) -> float:
    return sum(float(metrics.psnr_mu(merge(s), s.gt)) for s in scenes) / len(scenes)


def reference_alone(bracket) -> torch.Tensor:
    return linearize(bracket.ldr[bracket.ref], bracket.exposures[bracket.ref : bracket.ref + 1])[0]


def held_out_batch(scenes) -> dict:
    return {k: torch.stack([getattr(s, k) for s in scenes]) for k in ("ldr", "exposures", "gt")} | {
        "ref": torch.tensor([s.ref for s in scenes])
    }


def held_out_loss(module, batch) -> float:
    """The training loss on a fixed batch with all its frames (no random subsets)."""
    with torch.no_grad():
        out = module(batch["ldr"], batch["exposures"], batch["ref"])
        loss, _ = module.compute_loss(out, batch)
    return float(loss)


def fit(module, steps: int, crop: int, batch_size: int) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    data = SyntheticDataModule(crop_size=crop, batch_size=batch_size, seed=0, augment=True)
    trainer.fit(module, datamodule=data)
    return trainer


def test_training_on_synthetic_brackets_improves_held_out_loss_and_psnr_mu():
    L.seed_everything(0, verbose=False)
    module = create_model(
        "flexhdr",
        iterations=2,  # fewer flow steps than the default 8 keep this CPU test short
        perceptual_weight=0.0,  # no ImageNet weights offline
        random_subsets=True,  # also exercises subsets of 2..3 frames in random order
        optimizer=lambda params: torch.optim.Adam(params, lr=5e-4),
    )
    scenes = [synthesize(HELD_OUT_SEED + i, size=(32, 32)) for i in range(4)]
    batch = held_out_batch(scenes)
    loss_before = held_out_loss(module, batch)
    psnr_before = mean_psnr_mu(module.merge, scenes)

    trainer = fit(module, steps=30, crop=16, batch_size=4)
    assert trainer.global_step == 30

    loss_after = held_out_loss(module, batch)
    psnr_after = mean_psnr_mu(module.merge, scenes)
    print(
        f"held-out loss {loss_before:.4f} -> {loss_after:.4f}, PSNR-mu {psnr_before:.2f} -> {psnr_after:.2f}"
    )
    # Measured here: held-out loss 0.284 -> 0.207, PSNR-mu 13.6 -> 17.4 dB. Far from the
    # baselines still (classic about 21, the reference frame alone about 24 dB at 64 x 64):
    # beating them takes longer training, see the slow test below.
    assert loss_after < 0.85 * loss_before, (loss_before, loss_after)
    assert psnr_after > psnr_before + 2.5, (psnr_before, psnr_after)
    # The trained model merges brackets of other sizes (2 and 5 frames) too.
    for frames in (2, 5):
        bracket = synthesize(HELD_OUT_SEED + 10 + frames, size=(32, 32), n_frames=frames)
        assert torch.isfinite(module.merge(bracket)).all()


def test_training_step_with_all_frames_logs_every_loss_term():
    L.seed_everything(1, verbose=False)
    module = create_model("flexhdr", iterations=1, perceptual_weight=0.0)
    scenes = [synthesize(HELD_OUT_SEED + 20 + i, size=(16, 24), n_frames=3) for i in range(2)]
    out = module.training_forward(held_out_batch(scenes))
    loss, terms = module.compute_loss(out, held_out_batch(scenes))
    assert {"l_tm", "l_phot", "flow_magnitude", "confidence_mean", "attention_mean"} <= set(terms)
    assert torch.isclose(loss, terms["l_tm"] + terms["l_phot"])
    loss.backward()
    flow_grads = [p.grad for p in module.net.flow.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in flow_grads)


def test_config_files_parse_through_the_lightning_cli(tmp_path: Path, monkeypatch):
    from hdrzoo.cli import main

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    for name in ("synthetic", "kalantari17", "challenge123"):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", str(repo / f"configs/flexhdr/{name}.yaml"), "--print_config"])
        assert exit_info.value.code == 0


@pytest.mark.slow
def test_trained_flexhdr_beats_classic_and_the_reference_frame_on_held_out_brackets():
    L.seed_everything(0, verbose=False)
    module = create_model(
        "flexhdr",
        iterations=4,
        perceptual_weight=0.0,
        optimizer=lambda params: torch.optim.Adam(params, lr=5e-4),
    )
    fit(module, steps=SLOW_STEPS, crop=32, batch_size=4)
    scenes = [synthesize(HELD_OUT_SEED + i, size=(64, 64)) for i in range(6)]
    learned = mean_psnr_mu(module.merge, scenes)
    classic = mean_psnr_mu(hdrzoo.load("classic").merge, scenes)
    reference = mean_psnr_mu(reference_alone, scenes)
    assert learned > reference, (learned, reference, classic)
    assert learned > classic, (learned, reference, classic)
    for frames in (2, 5):
        brackets = [
            synthesize(HELD_OUT_SEED + 100 + i, size=(64, 64), n_frames=frames) for i in range(3)
        ]
        assert mean_psnr_mu(module.merge, brackets) > mean_psnr_mu(
            hdrzoo.load("classic").merge, brackets
        )


SLOW_STEPS = (
    400  # a manual run of this recipe: 25.5 dB after 250 steps vs 23.7 and 21.1 (docs card)
)
