import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import hdrzoo
from hdrzoo.bracket import Bracket
from hdrzoo.errors import HDRZooError
from hdrzoo.models.base import NetOutput


def _scenes(count: int, size: int = 24) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(count):
        radiance = torch.rand(3, size, size, generator=g) * 0.8 + 0.01
        t = torch.tensor([1.0, 4.0, 16.0])
        ldr = (radiance[None] * t[:, None, None, None]).clamp(0, 1) ** (1 / 2.2)
        gt = radiance + 0.01 * (i + 1)  # a different, known error per scene
        out.append(Bracket(ldr, t, 1, gt, name=f"s{i}").sample())
    return out


def _trainer() -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )


def _numpy_psnr_mu(pred: np.ndarray, gt: np.ndarray) -> float:
    t = lambda x: np.log1p(5000 * x) / np.log1p(5000)  # noqa: E731
    return float(10 * np.log10(1 / np.mean((t(np.clip(pred, 0, 1)) - t(gt)) ** 2)))


def test_validation_logs_per_image_averaged_metrics():
    scenes = _scenes(4)
    model = hdrzoo.load("classic")
    results = _trainer().validate(model, DataLoader(scenes, batch_size=3), verbose=False)[0]
    assert set(results) == {"val/psnr_mu", "val/psnr_l", "val/ssim_mu", "val/ssim_l"}
    # Classic recovers this static scene exactly, so the error is the known offset per scene.
    expected = []
    for s in scenes:
        pred = model.merge(Bracket(s["ldr"], s["exposures"], int(s["ref"]))).double().numpy()
        expected.append(_numpy_psnr_mu(pred, s["gt"].double().numpy()))
    assert results["val/psnr_mu"] == pytest.approx(np.mean(expected), rel=1e-5)


def test_test_stage_logs_under_test_prefix():
    results = _trainer().test(
        hdrzoo.load("classic"), DataLoader(_scenes(2)[1:], batch_size=1), verbose=False
    )[0]
    assert results["test/psnr_mu"] > 30 and 0 < results["test/ssim_l"] <= 1


def test_predict_returns_hdr_batches():
    preds = _trainer().predict(hdrzoo.load("classic"), DataLoader(_scenes(2), batch_size=2))
    assert preds[0].shape == (2, 3, 24, 24)


def test_fitting_a_model_without_parameters_is_a_clear_error():
    with pytest.raises(HDRZooError, match="no trainable parameters|no training loss"):
        _trainer().fit(hdrzoo.load("classic").train(), DataLoader(_scenes(1)))


def test_forward_wraps_plain_tensors_in_net_output():
    out = hdrzoo.load("classic")(
        torch.rand(1, 2, 3, 4, 4), torch.tensor([[1.0, 4.0]]), torch.tensor([0])
    )
    assert isinstance(out, NetOutput) and out.hdr.shape == (1, 3, 4, 4) and out.aux == {}
