"""VGG19 perceptual loss on tone-mapped images (MODELS.md 2.11), through timm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hdrzoo.errors import InputSizeError, WeightsError

__all__ = ["VGGPerceptual", "VGG19_LAYERS", "VGG19_HUB_ID"]

VGG19_LAYERS = {"relu1_2": 0, "relu2_2": 1, "relu3_4": 2, "relu4_4": 3, "relu5_4": 4}
"""Layer name -> timm ``vgg19`` ``features_only`` index (the ReLU before each max-pool)."""

VGG19_HUB_ID = "timm/vgg19.tv_in1k"
"""The torchvision ImageNet-1k VGG19 weights as timm publishes them (safetensors)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGPerceptual(nn.Module):
    """``sum over layers of mean |phi_l(a) - phi_l(b)|`` with a frozen ImageNet VGG19.

    Inputs are tone-mapped RGB images in [0, 1]; they are normalised with the ImageNet mean
    and std before the network. The backbone is always in eval mode with
    ``requires_grad=False``; gradients flow into the prediction only.

    The backbone is built on first use (so creating the loss costs nothing and needs no
    network) and is kept outside ``parameters()`` and ``state_dict()``: checkpoints do not
    carry 80 MB of ImageNet weights, and optimisers never see them. It follows the input's
    device and dtype.

    Args:
        layers: VGG19 layers to compare, from ``relu1_2, relu2_2, relu3_4, relu4_4, relu5_4``.
        pretrained: load the ImageNet weights from the Hugging Face Hub (``timm/vgg19.tv_in1k``,
            safetensors, cached by ``huggingface_hub``). ``False`` gives random frozen weights,
            useful for tests only.

    Raises:
        WeightsError: on first use, when the ImageNet weights cannot be downloaded (offline,
            ``HF_HUB_OFFLINE=1``); train without the perceptual term (weight 0) instead.

    Examples:
        >>> loss = VGGPerceptual(layers=("relu1_2",), pretrained=False)
        >>> x = torch.rand(1, 3, 32, 32)
        >>> float(loss(x, x))
        0.0
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise InputSizeError(
                f"VGGPerceptual: unknown layers {unknown or layers}; choose from {list(VGG19_LAYERS)}"
            )
        self.layers = layers
        self.pretrained = pretrained
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # Deliberately not a registered submodule (see the class docstring).
        self.__dict__["_backbone"] = None

    @property
    def backbone(self) -> nn.Module:
        """The frozen timm VGG19 feature extractor (built, and downloaded, on first access)."""
        if self.__dict__["_backbone"] is None:
            self.__dict__["_backbone"] = self._build_backbone()
        return self.__dict__["_backbone"]

    def _build_backbone(self) -> nn.Module:
        import timm

        out_indices = sorted({VGG19_LAYERS[name] for name in self.layers})
        overlay = {}
        if self.pretrained:
            overlay["file"] = self._download_weights()
        backbone = timm.create_model(
            "vgg19",
            features_only=True,
            out_indices=out_indices,
            pretrained=self.pretrained,
            pretrained_cfg_overlay=overlay,
        )
        backbone.eval()
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
        return backbone

    @staticmethod
    def _download_weights() -> str:
        from huggingface_hub import hf_hub_download

        try:
            # safetensors only: nothing pickled is fetched from the network.
            return hf_hub_download(VGG19_HUB_ID, "model.safetensors")
        except Exception as err:  # offline, DNS, HTTP, cache errors all mean "not available"
            raise WeightsError(
                f"VGGPerceptual: the ImageNet VGG19 weights ({VGG19_HUB_ID}, model.safetensors) could "
                f"not be downloaded from the Hugging Face Hub and are not in the local cache ({err}). "
                "Connect to the internet once (unset HF_HUB_OFFLINE) to cache them, or train without "
                "the perceptual term: set its weight to 0 (e.g. SAFNetModule(perceptual_weight=0.0), "
                "--model.perceptual_weight 0). VGGPerceptual(pretrained=False) gives random frozen "
                "weights for tests only."
            ) from err

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        backbone = self.backbone
        first = next(backbone.parameters())
        if first.device != x.device or first.dtype != x.dtype:
            backbone.to(device=x.device, dtype=x.dtype)
        normalised = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        features = backbone(normalised)
        # timm returns the requested indices in ascending order; map back to our layers.
        by_index = dict(zip(sorted({VGG19_LAYERS[n] for n in self.layers}), features))
        return [by_index[VGG19_LAYERS[name]] for name in self.layers]

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Perceptual distance of ``prediction`` and ``target``, both ``(B, 3, H, W)`` in [0, 1]."""
        if prediction.shape != target.shape or prediction.ndim != 4 or prediction.shape[1] != 3:
            raise InputSizeError(
                "VGGPerceptual: expected two RGB (B, 3, H, W) tensors of one shape, got "
                f"{tuple(prediction.shape)} and {tuple(target.shape)}"
            )
        predicted = self._features(prediction)
        with torch.no_grad():
            wanted = self._features(target)
        loss = prediction.new_zeros(())
        for a, b in zip(predicted, wanted):
            loss = loss + (a - b).abs().mean()
        return loss

    def train(self, mode: bool = True) -> VGGPerceptual:
        # The backbone stays in eval mode whatever the trainer does (VGG has no dropout in
        # features_only, but keep the contract explicit).
        super().train(mode)
        if self.__dict__["_backbone"] is not None:
            self.__dict__["_backbone"].eval()
        return self
