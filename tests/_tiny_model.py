"""A tiny trainable model of the zoo, for tests of loading, export and training plumbing.

``hdrzoo`` registers only parameter-free ``classic`` on its own; the Hub, checkpoint and
strictness tests need a network *with* tensors (weights, biases and BatchNorm buffers of two
dtypes). :func:`tiny_registry` registers it into a private copy of the registry, so that the
names never leak into other tests (``hdrzoo models`` output, ``list_models()``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from hdrzoo.models import registry
from hdrzoo.models.base import HDRModule, NetOutput
from hdrzoo.models.registry import WeightTag, register_model
from hdrzoo.ops.tonemap import linearize, mu_law

TINY = "tiny_test"
TINY_TAGGED = "tiny_tagged"


class TinyNet(nn.Module):
    """Mean of the linearised frames plus a small convolutional residual.

    Shapes: ``ldr (B, N, 3, H, W)``, ``exposures (B, N)``, ``ref (B,)`` -> ``(B, 3, H, W)``.
    """

    frames = None
    size_multiple = 1

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.encode = nn.Conv2d(3, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)  # buffers: float running stats + int64 counter
        self.decode = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(
        self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor
    ) -> torch.Tensor:
        mean = linearize(ldr, exposures).mean(1)
        return mean + self.decode(torch.relu(self.norm(self.encode(mean))))


class TinyModule(HDRModule):
    """Tiny test network (not a published model)."""

    def __init__(self, channels: int = 4, optimizer: Any = None, lr_scheduler: Any = None) -> None:
        super().__init__(optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.net = TinyNet(channels)

    @staticmethod
    def convert_foreign_weights(raw: Any, path: Any) -> dict[str, torch.Tensor]:
        """An "official" checkpoint: ``{"model": state}`` with DataParallel's ``module.`` prefixes."""
        return {k.removeprefix("module."): v for k, v in raw["model"].items()}

    def compute_loss(
        self, out: NetOutput, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        l1_mu = (mu_law(out.hdr) - mu_law(batch["gt"])).abs().mean()
        return l1_mu, {"l1_mu": l1_mu}


def register_tiny_models(hub_id: str | None = None, revision: str = "main") -> None:
    """Register ``tiny_test`` (no weight tags) and ``tiny_tagged`` (a Hub tag and an off-Hub tag).

    Registering the same class again is a no-op for the registry, so calling this in every
    test is safe.
    """
    register_model(TINY)(TinyModule)
    register_model(
        TINY_TAGGED,
        channels=6,
        weights=[
            WeightTag("demo", hub_id=hub_id, revision=revision, licence="CC0-1.0"),
            WeightTag("authors", source="tiny_authors.pth from the paper's website"),
        ],
    )(TinyModule)


def use_tiny_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Register the tiny models into a copy of the registry that ``monkeypatch`` throws away.

    The model families are imported first: importing them later, while the copy is in place,
    would register ``classic`` into the copy only and lose it for the rest of the session.
    Returns the registry copy.
    """
    from hdrzoo import hub

    hub._import_models()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_tiny_models()
    return registry._REGISTRY


def random_batch(batch: int = 2, frames: int = 3, size: int = 8, seed: int = 0) -> dict[str, Any]:
    """A batch dict of the data contract with random frames, exposures 1/4/16 and a random target."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "ldr": torch.rand(batch, frames, 3, size, size, generator=gen),
        "exposures": torch.tensor([4.0**i for i in range(frames)]).expand(batch, frames).clone(),
        "ref": torch.full((batch,), frames // 2, dtype=torch.long),
        "gt": torch.rand(batch, 3, size, size, generator=gen) * 4,
    }


def randomize(module: HDRModule, seed: int = 1) -> HDRModule:
    """Fill every tensor of ``module.net`` (buffers included) with seeded random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.net.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=gen) + 0.5 * ("running_var" in name)
                tensor.copy_(values)
            else:
                tensor.fill_(int(torch.randint(1, 100, (), generator=gen)))
    return module
