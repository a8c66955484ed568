"""STHDR training on CPU through ``Trainer.fit``, measured on held-out synthetic brackets.

An STHDR training step is slow on a CPU (3 GMAC per 128x128 forward, torchvision's CPU
deformable-conv backward, 60 HIN blocks on tiny maps), so the convincing test (beats
``classic`` and the reference frame alone) is marked slow; the default-suite test runs four
steps and checks that the loss and PSNR-mu on held-out brackets both improve.
"""

from __future__ import annotations

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


def _mean_psnr_mu(merge, scenes) -> float:
    return sum(float(metrics.psnr_mu(merge(s), s.gt)) for s in scenes) / len(scenes)


def _reference_alone(bracket) -> torch.Tensor:
    return linearize(bracket.ldr[bracket.ref], bracket.exposures[bracket.ref : bracket.ref + 1])[0]


class _LossHistory(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _train(steps: int, crop: int, batch: int, lr: float, accelerator: str = "cpu"):
    torch.set_num_threads(2)
    L.seed_everything(0, verbose=False)
    module = create_model(
        "sthdr", optimizer=lambda params: torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    )
    history = _LossHistory()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[history],
    )
    data = SyntheticDataModule(crop_size=crop, batch_size=batch, seed=0)
    return module, trainer, data, history


def _held_out_loss(module, scenes) -> float:
    batch = {
        "ldr": torch.stack([s.ldr for s in scenes]),
        "exposures": torch.stack([s.exposures for s in scenes]),
        "ref": torch.tensor([s.ref for s in scenes]),
        "gt": torch.stack([s.gt for s in scenes]),
    }
    with torch.no_grad():
        out = module(batch["ldr"], batch["exposures"], batch["ref"])
        return float(module.compute_loss(out, batch)[0])


def test_sthdr_training_steps_lower_the_held_out_loss_and_raise_psnr_mu():
    # Four Adam steps from PyTorch's default init: the random output residual over the
    # reference image starts far off (about 11 dB), and the first steps must pull it in.
    module, trainer, data, history = _train(steps=4, crop=128, batch=1, lr=2e-3)
    scenes = [synthesize(HELD_OUT_SEED + i, size=(128, 128)) for i in range(2)]
    module.eval()
    psnr_before, loss_before = _mean_psnr_mu(module.merge, scenes), _held_out_loss(module, scenes)
    trainer.fit(module.train(), datamodule=data)
    assert trainer.global_step == 4 and len(history.losses) == 4
    module.eval()
    psnr_after, loss_after = _mean_psnr_mu(module.merge, scenes), _held_out_loss(module, scenes)
    print(
        f"held-out PSNR-mu {psnr_before:.2f} -> {psnr_after:.2f}, loss {loss_before:.4f} -> "
        f"{loss_after:.4f}; training losses {history.losses}"
    )
    # Measured here: 11.19 -> 13.25 dB, held-out loss 0.576 -> 0.533.
    assert loss_after < 0.95 * loss_before, (loss_before, loss_after)
    assert psnr_after > psnr_before + 1.0, (psnr_before, psnr_after)


@pytest.mark.slow
def test_sthdr_trained_from_scratch_beats_classic_and_the_reference_frame():
    # Hours on a 2-core CPU; minutes on a GPU (accelerator auto).
    module, trainer, data, history = _train(
        steps=300, crop=128, batch=4, lr=1e-3, accelerator="auto"
    )
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 300
    module = module.cpu().eval()
    scenes = [synthesize(HELD_OUT_SEED + i, size=(128, 192)) for i in range(6)]
    learned = _mean_psnr_mu(module.merge, scenes)
    classic = _mean_psnr_mu(hdrzoo.load("classic").merge, scenes)
    reference = _mean_psnr_mu(_reference_alone, scenes)
    print(
        f"held-out PSNR-mu: sthdr {learned:.2f}, reference {reference:.2f}, classic {classic:.2f}"
    )
    assert learned > reference + 1.0, (learned, reference)
    assert learned > classic + 1.0, (learned, classic)
