"""Shared helpers of the reliability tests: scenes on disk, the in-process CLI, output checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hdrzoo.bracket import Bracket
from hdrzoo.cli import main

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
HERE = Path(__file__).resolve().parent


def make_bracket(
    n: int = 3, h: int = 6, w: int = 8, seed: int = 0, gt: bool = True, step: float = 4.0
) -> Bracket:
    """Random frames in [0, 1] quantised to 16-bit codes, exposures ``step ** i``, middle reference."""
    gen = torch.Generator().manual_seed(seed)
    ldr = torch.round(torch.rand(n, 3, h, w, generator=gen) * 65535) / 65535
    exposures = torch.tensor([step**i for i in range(n)], dtype=torch.float32)
    target = torch.rand(3, h, w, generator=gen) * 2 if gt else None
    return Bracket(ldr, exposures, n // 2, target, f"scene{seed}")


def static_scene(radiance: np.ndarray, exposures: list[float], gamma: float = 2.2) -> Bracket:
    """Frames a noiseless linear camera with gamma ``gamma`` records of a static scene.

    ``radiance`` is float64 ``(3, H, W)`` in units where ``t = 1``; frame ``i`` is
    ``clip(radiance * t_i, 0, 1) ** (1 / gamma)``, rounded to 16-bit codes.
    """
    frames = [
        np.round(np.clip(radiance * t, 0.0, 1.0) ** (1.0 / gamma) * 65535) / 65535
        for t in exposures
    ]
    ldr = torch.from_numpy(np.stack(frames).astype(np.float32))
    return Bracket(ldr, torch.tensor(exposures), len(exposures) // 2, name="static")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``hdrzoo.cli.main(argv)`` in this process; returns the exit code, stdout and stderr.

    An exception escaping ``main`` (instead of an error message and exit code) fails the
    calling test right here.

    Rich wraps long lines at the terminal width; COLUMNS is set wide by the ``wide_console``
    fixture so that paths stay whole, and the text is whitespace-normalised here anyway.
    """
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, squash(captured.out), squash(captured.err)


def squash(text: str) -> str:
    """Collapse runs of whitespace (Rich's line wrapping) into single spaces."""
    return re.sub(r"\s+", " ", text)


def listing(folder: Path) -> list[str]:
    """Every entry below ``folder`` (hidden ones included), relative, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def hidden_or_temporary(folder: Path) -> list[str]:
    """Leftovers of interrupted atomic writes (``.{stem}.*.tmp{suffix}``) or other hidden files."""
    return [name for name in listing(folder) if Path(name).name.startswith(".") or ".tmp" in name]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m hdrzoo.cli`` children: this worktree's hdrzoo, tests/ importable."""
    env = dict(os.environ)
    paths = [str(REPO), str(TESTS), str(HERE)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["COLUMNS"] = "300"
    env["PYTHONUNBUFFERED"] = "1"
    # Two cores are shared by every test: one intra-op thread per process avoids oversubscription.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def run_python(args: list[str], cwd: Path, timeout: float = 120, **env: str):
    """Run ``python ARGS`` to completion; returns the CompletedProcess (text output)."""
    return subprocess.run(
        python_cmd(*args),
        cwd=cwd,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
