"""Shared fixtures: the `../shared` reference data (skipped when absent) and seeding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """`$HDRZOO_SHARED` or the `shared/` folder beside the repository, if present."""
    env = os.environ.get("HDRZOO_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared", REPO / "shared"]
    for c in candidates:
        if (c / "reference").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if path is None:
        pytest.skip("../shared (reference fixtures) is not present beside the repository")
    return path


@pytest.fixture(scope="session")
def safnet_s_fixture(shared: Path) -> Path:
    return shared / "reference" / "safnet_s"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny(monkeypatch):
    """The tiny test models of ``tests/_tiny_model.py``, registered for this test only."""
    from _tiny_model import use_tiny_registry

    return use_tiny_registry(monkeypatch)


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny):
    """A local server that serves repositories the way the Hugging Face Hub does (HF_ENDPOINT)."""
    from hub_server import serve_hub

    server = serve_hub(tmp_path, monkeypatch)
    yield server
    server.stop()
