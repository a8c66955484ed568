"""``hdrzoo fit`` under Lightning DDP: two CPU processes (gloo) on synthetic brackets.

One run (about 15 s on two cores) is checked three ways:

- the logged ``val/psnr_mu`` is the mean over *all* validation brackets, recomputed here
  from the checkpoint with a float64 numpy PSNR, and differs from the mean over either rank's
  half (so the test would notice metrics that are not synchronised);
- both ranks saw that same synchronised value;
- the checkpoint rank 0 wrote loads back with ``hdrzoo.load(ckpt)`` alone (it names its
  model), and the training batches of the two ranks were different brackets.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _rel_fit import TINY_FIT, TinyFitModule
from _rel_helpers import run_python
from _tiny_model import use_tiny_registry

import hdrzoo
from hdrzoo.data.modules import SyntheticDataModule
from hdrzoo.models.registry import register_model

DATA = {
    "train_size": 8,
    "val_size": 4,  # divisible by the world size: DistributedSampler pads nothing
    "test_size": 2,
    "crop_size": 16,
    "eval_size": 16,
    "batch_size": 2,
    "eval_batch_size": 1,
}

CONFIG = f"""
seed_everything: 0
model:
  class_path: _rel_fit.TinyFitModule
data:
  class_path: hdrzoo.data.modules.SyntheticDataModule
  init_args: {json.dumps(DATA)}
trainer:
  max_epochs: 1
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_model_summary: false
  callbacks:
    - class_path: _rel_fit.Recorder
      init_args: {{folder: record}}
"""


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    (root / "fit.yaml").write_text(CONFIG)
    args = ["-m", "hdrzoo.cli", "fit", "--config", "fit.yaml"]
    args += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    done = run_python(args, root, timeout=300, HDRZOO_TEST_REGISTER="1")
    assert done.returncode == 0, done.stderr[-4000:]
    return root


def psnr_mu_float64(pred: np.ndarray, target: np.ndarray, mu: float = 5000.0) -> float:
    """PSNR of mu-law tone-mapped images, prediction clipped to [0, 1] (DATA.md's metric)."""
    tone = lambda x: np.log1p(mu * x.astype(np.float64)) / np.log1p(mu)  # noqa: E731
    mse = np.mean((tone(np.clip(pred, 0.0, 1.0)) - tone(target)) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


def test_validation_metric_is_the_mean_over_both_ranks(ddp_run, monkeypatch):
    use_tiny_registry(monkeypatch)
    register_model(TINY_FIT)(TinyFitModule)
    last = next((ddp_run / "runs").rglob("last.ckpt"))
    model = hdrzoo.load(last)  # no name given: the checkpoint says which model it is
    assert isinstance(model, TinyFitModule) and not model.training

    data = SyntheticDataModule(**DATA)
    data.setup("validate")
    scores = []
    with torch.no_grad():
        for batch in data.val_dataloader():
            hdr = model(batch["ldr"], batch["exposures"], batch["ref"]).hdr
            scores.append(psnr_mu_float64(hdr[0].numpy(), batch["gt"][0].numpy()))
    assert len(scores) == DATA["val_size"]
    overall = float(np.mean(scores))
    # DistributedSampler without shuffling deals scenes round-robin: rank r gets r, r + 2.
    halves = [float(np.mean(scores[rank::2])) for rank in (0, 1)]
    assert min(abs(overall - half) for half in halves) > 0.01, (overall, halves, scores)

    with open(next((ddp_run / "runs").rglob("metrics.csv")), newline="") as handle:
        logged = [float(row["val/psnr_mu"]) for row in csv.DictReader(handle) if row["val/psnr_mu"]]
    assert logged == pytest.approx([overall], abs=2e-4)

    records = [
        json.loads(line)
        for line in (ddp_run / "record" / "steps.jsonl").read_text().split("\n")
        if line
    ]
    seen = {r["rank"]: r["metrics"]["val/psnr_mu"] for r in records if r["event"] == "val"}
    assert seen.keys() == {0, 1} and seen[0] == seen[1] == pytest.approx(overall, abs=2e-4)


def test_each_rank_trained_on_its_own_brackets(ddp_run):
    records = [
        json.loads(line)
        for line in (ddp_run / "record" / "steps.jsonl").read_text().split("\n")
        if line
    ]
    steps = [r for r in records if r["event"] == "step"]
    per_rank = {rank: [r["loss"] for r in steps if r["rank"] == rank] for rank in (0, 1)}
    # 8 brackets, batches of 2, 2 ranks: 2 steps each, on different data (different losses).
    assert {rank: len(losses) for rank, losses in per_rank.items()} == {0: 2, 1: 2}
    assert per_rank[0][0] != per_rank[1][0]
    starts = [torch.load(p, weights_only=True) for p in (ddp_run / "record").glob("start_*.pt")]
    assert sorted(s["rank"] for s in starts) == [0, 1]
