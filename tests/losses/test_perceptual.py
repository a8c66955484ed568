import os
import subprocess
import sys

import pytest
import timm
import torch

from hdrzoo.errors import InputSizeError
from hdrzoo.losses import VGGPerceptual
from hdrzoo.losses.perceptual import IMAGENET_MEAN, IMAGENET_STD

# Indices of each layer's ReLU in torchvision / timm VGG19 `features`.
RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26, "relu5_4": 35}


@pytest.fixture(scope="module")
def all_layers() -> VGGPerceptual:
    torch.manual_seed(0)
    return VGGPerceptual(pretrained=False)


def reference_vgg(loss: VGGPerceptual) -> torch.nn.Module:
    """A plain timm VGG19 holding the loss backbone's weights (features_i -> features.i)."""
    full = timm.create_model("vgg19", pretrained=False)
    weights = {
        k.replace("features_", "features."): v for k, v in loss.backbone.state_dict().items()
    }
    _, unexpected = full.load_state_dict(weights, strict=False)
    assert not unexpected
    return full.features.eval()


def reference_loss(features: torch.nn.Module, a, b, layers) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    total = torch.zeros(())
    for name in layers:
        head = features[: RELU_INDEX[name] + 1]
        # clone: timm's in-place ReLUs must not touch the normalised input between calls.
        fa = head(((a - mean) / std).clone())
        fb = head(((b - mean) / std).clone())
        total = total + (fa - fb).abs().mean()
    return total


def test_loss_matches_a_direct_vgg19_computation_for_each_layer_selection(all_layers):
    torch.manual_seed(1)
    a, b = torch.rand(2, 1, 3, 32, 48)
    features = reference_vgg(all_layers)
    with torch.no_grad():
        expected_all = reference_loss(features, a, b, list(RELU_INDEX))
        torch.testing.assert_close(all_layers(a, b), expected_all, rtol=1e-5, atol=1e-6)
        single = VGGPerceptual(layers=("relu2_2",), pretrained=False)
        got_single = single(a, b)
    # Different random weights: compare with its own backbone.
    with torch.no_grad():
        expected_single = reference_loss(reference_vgg(single), a, b, ["relu2_2"])
    torch.testing.assert_close(got_single, expected_single, rtol=1e-5, atol=1e-6)
    assert len(single.backbone.feature_info.out_indices) == 1


def test_backbone_is_frozen_eval_and_outside_parameters_and_state_dict(all_layers):
    all_layers.train()
    assert not all_layers.backbone.training
    assert all(not p.requires_grad for p in all_layers.backbone.parameters())
    assert list(all_layers.parameters()) == []
    assert all_layers.state_dict() == {}


def test_gradient_reaches_the_prediction_only(all_layers):
    prediction = torch.rand(1, 3, 32, 32, requires_grad=True)
    target = torch.rand(1, 3, 32, 32, requires_grad=True)
    all_layers(prediction, target).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None for p in all_layers.backbone.parameters())


def test_loss_is_zero_for_identical_inputs(all_layers):
    x = torch.rand(2, 3, 32, 32)
    assert float(all_layers(x, x.clone())) == 0.0


def test_pretrained_weights_come_from_the_downloaded_safetensors(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = timm.create_model("vgg19", pretrained=False)
    path = tmp_path / "model.safetensors"
    # The convolutional part is enough for features_only (keeps the test file small).
    features = {k: v for k, v in source.state_dict().items() if k.startswith("features.")}
    save_file(features, str(path))
    monkeypatch.setattr(VGGPerceptual, "_download_weights", staticmethod(lambda: str(path)))
    loss = VGGPerceptual(layers=("relu1_2",), pretrained=True)
    got = dict(loss.backbone.named_parameters())["features_2.weight"]
    assert torch.equal(got, source.state_dict()["features.2.weight"])


def test_offline_without_cached_weights_raises_a_clear_weights_error(tmp_path):
    code = (
        "from hdrzoo.losses import VGGPerceptual\n"
        "from hdrzoo.errors import WeightsError\n"
        "import torch\n"
        "try:\n"
        "    VGGPerceptual()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))\n"
        "except WeightsError as err:\n"
        "    print('WeightsError:', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    message = run.stdout
    assert message.startswith("WeightsError:")
    assert "ImageNet VGG19" in message and "could not be downloaded" in message
    assert "perceptual_weight=0" in message


def test_creating_the_loss_needs_no_weights():
    # Nothing is built or downloaded before first use (inference never touches VGG).
    loss = VGGPerceptual()
    assert loss.__dict__["_backbone"] is None


def test_bad_layers_and_shapes_are_rejected(all_layers):
    with pytest.raises(InputSizeError, match="unknown layers"):
        VGGPerceptual(layers=("relu9_9",), pretrained=False)
    with pytest.raises(InputSizeError, match="RGB"):
        all_layers(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
