"""Benchmark every model of the zoo; write ``benchmarks/results/{cpu,gpu}.json``.

    python benchmarks/run.py                                  # everything (hours on 2 CPU cores)
    python benchmarks/run.py --quick                          # tiny sizes: a smoke run (minutes)
    python benchmarks/run.py --only latency,memory --models safnet_s,sthdr --sizes 512x512
    python benchmarks/make_docs.py                            # docs/benchmarks.md from the JSON

Groups (``--only``): ``params``, ``macs`` (``FlopCounterMode`` total / 2), ``latency``
(warm-up, then the median of timed repeats; CUDA events on a GPU), ``memory`` (peak RSS of
one merge in a fresh process on CPU; ``torch.cuda.max_memory_allocated`` on a GPU),
``scaling`` (exponent of time against pixels, log-log least squares), ``training``
(samples/s at each synthetic config's crop size, batch 4), ``quality`` (PSNR-mu on fixed
synthetic scenes after training each model with its synthetic config for the same
wall-clock budget), ``precision`` (bf16 on CPU; tf32 / bf16 / fp16 on a GPU: time ratio
against fp32, interleaved, and the PSNR-mu change), ``safnet_speed`` (SAFNet against its
parity-first baseline, ``safnet_speed.py``) and ``synthetic_data`` (``synthetic_speed.py``).

A run of a subset replaces only the entries it measures: the JSON file keeps the others,
and ``runs`` records every run (date, machine, git commit, arguments) that an entry names in
its ``run`` field. Models run with untrained weights (timings do not depend on them) unless
stated, in ``eval`` mode under ``torch.inference_mode`` through :func:`hdrzoo.inference.merge`,
which reflect-pads to each model's size multiple. A size a model cannot take gives an entry
``{"na": reason}``. Timings are never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's hdrzoo, not an installed copy

import numpy as np  # noqa: E402
import torch  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SCHEMA = 1
MODELS = ("classic", "safnet_s", "safnet", "flexhdr", "lfdiff", "sthdr")
GROUPS = (
    "params",
    "macs",
    "latency",
    "memory",
    "scaling",
    "training",
    "quality",
    "precision",
    "safnet_speed",
    "synthetic_data",
)
EXPOSURES = (1.0, 4.0, 16.0)
QUALITY_SEED = 30_000_000  # disjoint from training (0..), validation (1e6) and test (2e6) seeds
DEFAULTS = {
    "macs_sizes": "512x512,1000x1500",
    "sizes": "512x512,1000x1500,4000x6000@1024",
    "scaling_sizes": "256x256,512x512,1024x1024,2048x2048",
    "precision_size": "1000x1500",
    "reps": 5,
    "warmup": 1,
    "point_seconds": 60.0,
    "train_steps": 3,
    "train_batch": 4,
    "budget_seconds": 300.0,
    "scenes": 8,
    "scene_size": 256,
}
QUICK = {
    "macs_sizes": "32x48",
    "sizes": "32x48,64x64@32",
    "scaling_sizes": "32x32,48x48,64x64",
    "precision_size": "32x48",
    "reps": 2,
    "warmup": 1,
    "point_seconds": 5.0,
    "train_steps": 1,
    "train_batch": 2,
    "budget_seconds": 2.0,
    "scenes": 2,
    "scene_size": 64,
    "crop": 64,
}
# Ops FlopCounterMode has no formula for but that do real arithmetic; found ones are listed
# beside each MAC count so that a reader knows what the count leaves out.
_NOTABLE_UNCOUNTED = (
    "deform_conv2d",
    "grid_sampler",
    "upsample",
    "_adaptive_avg_pool",
    "avg_pool",
    "max_pool",
    "im2col",
    "col2im",
    "cumsum",
    "fft",
)
# Times and goals quoted by issue 20, stored with the results so that the GPU table can set
# them beside the measurements (every figure of docs/benchmarks.md comes from the JSON).
PAPER_REFERENCE = {
    "size": [1000, 1500],
    "paper_seconds": {
        "safnet": {"seconds": 0.151, "device": "NVIDIA A30", "source": "SAFNet paper (ECCV 2024)"},
        "safnet_s": {
            "seconds": 0.049,
            "device": "NVIDIA A30",
            "source": "SAFNet paper (ECCV 2024)",
        },
        "flexhdr": {
            "seconds": 1.55,
            "device": "GPU",
            "source": "FlexHDR paper (as quoted by issue 20)",
        },
        "lfdiff": {
            "seconds": 0.72,
            "device": "GPU",
            "source": "LF-Diff paper (as quoted by issue 20)",
        },
    },
    "goal_seconds_h100": {
        "safnet_s": 0.005,
        "safnet": 0.010,
        "sthdr": 0.020,
        "lfdiff": 0.15,
        "flexhdr": 0.3,
    },
}


# ------------------------------------------------------------------ parsing ------
def parse_size(text: str) -> tuple[int, int, int | None]:
    """``"HxW"`` or ``"HxW@TILE"`` -> ``(H, W, tile or None)``.

    Examples:
        >>> parse_size("1000x1500"), parse_size("4000x6000@1024")
        ((1000, 1500, None), (4000, 6000, 1024))
    """
    body, _, tile = text.strip().partition("@")
    try:
        height, width = (int(v) for v in body.lower().split("x"))
        tile_px = int(tile) if tile else None
    except ValueError as err:
        raise SystemExit(
            f"bad size {text!r}: expected HxW or HxW@TILE, e.g. 4000x6000@1024"
        ) from err
    if min(height, width) < 1 or (tile_px is not None and tile_px < 1):
        raise SystemExit(f"bad size {text!r}: sizes must be positive")
    return height, width, tile_px


def tile_overlap(tile: int | None) -> int:
    """Overlap of neighbouring tiles: merge's default 64 px, or a quarter of a small tile."""
    return 64 if tile is None else min(64, tile // 4)


def size_key(height: int, width: int, tile: int | None = None) -> str:
    """The JSON key of a measurement size: ``"1000x1500"``, ``"4000x6000@1024"``."""
    return f"{height}x{width}" + (f"@{tile}" if tile else "")


def csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# ------------------------------------------------------------------ machine ------
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU features that decide reduced-precision speed (bf16 / AMX), where Linux says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
                return [f for f in wanted if f in flags]
    return []


def git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {
        "device": device.type,
        "device_name": cpu_model(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------- models ------
def build_model(name: str, device: torch.device | str = "cpu", seed: int = 0):
    """The registered model ``name`` with untrained weights (seeded), eval mode, on ``device``.

    Perceptual losses are switched off: they would fetch ImageNet VGG weights, and inference
    never uses them.
    """
    from hdrzoo.hub import create_model, list_models
    from hdrzoo.models.registry import get_entry

    list_models()  # imports the model families, which fills the registry
    torch.manual_seed(seed)
    overrides = {}
    if "perceptual_weight" in inspect.signature(get_entry(name).module_cls).parameters:
        overrides["perceptual_weight"] = 0.0
    return create_model(name, **overrides).eval().to(device)


def random_bracket(height: int, width: int, frames: int = 3, seed: int = 0):
    """A bracket of random frames (speed and memory do not depend on content), middle reference."""
    import hdrzoo

    generator = torch.Generator().manual_seed(seed)
    ldr = torch.rand(frames, 3, height, width, generator=generator)
    exposures = torch.tensor([4.0**i for i in range(frames)])
    return hdrzoo.Bracket(ldr, exposures, frames // 2)


def input_rule(
    module, height: int, width: int, frames: int = 3
) -> tuple[tuple[int, int] | None, str]:
    """What the network sees for an ``height x width`` bracket of ``frames`` frames.

    Returns ``((H', W'), note)``: the size after :func:`~hdrzoo.inference.merge` pads to the
    model's size multiple, and a note when it differs; or ``(None, reason)`` when the model
    cannot take such a bracket at all.

    Examples:
        >>> input_rule(build_model("classic"), 10, 10, frames=2)
        ((10, 10), '')
    """
    expected = module.frames
    if expected is not None and frames != expected:
        return None, f"{model_label(module)} takes exactly {expected} frames, not {frames}"
    if frames < 2:
        return None, "a bracket needs at least 2 frames"
    multiple = module.size_multiple
    padded = (math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple)
    if padded == (height, width):
        return padded, ""
    return padded, f"merge pads to {padded[0]}x{padded[1]} (multiple of {multiple})"


def model_label(module) -> str:
    return getattr(module, "registry_name", type(module).__name__)


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.net.parameters())


# ----------------------------------------------------------------- measuring ------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (CUDA events on a GPU, ``perf_counter`` on CPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        synchronize(device)
        start.record()
        fn()
        end.record()
        synchronize(device)
        return start.elapsed_time(end) / 1e3
    start_s = time.perf_counter()
    fn()
    return time.perf_counter() - start_s


def repeat_timing(
    fn: Callable[[], Any],
    device: torch.device,
    reps: int,
    warmup: int,
    point_seconds: float,
    predicted_s: float | None = None,
) -> dict[str, Any]:
    """Warm up, then time repeats; long calls get fewer repeats (at least one) so that one
    point takes about ``point_seconds``. A call predicted (from a smaller size of the same
    model in this process, which warmed it up) to take longer than that runs once, without a
    separate warm-up. Returns the times, their median and minimum."""
    if predicted_s is not None and predicted_s > point_seconds:
        warmup, reps = 0, 1
    warm = [timed_call(fn, device) for _ in range(max(warmup, 0))]
    estimate = warm[-1] if warm else None
    if estimate is not None and estimate > 0:
        reps = max(1, min(reps, int(point_seconds / estimate)))
    times = [timed_call(fn, device) for _ in range(max(reps, 1))]
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "warmup_s": warm,
        "reps": len(times),
    }


def fit_exponent(pixels: Iterable[float], seconds: Iterable[float]) -> float:
    """Least-squares slope of log(seconds) against log(pixels): time ~ pixels ** exponent.

    Examples:
        >>> round(fit_exponent([1e4, 1e5, 1e6], [2e-3, 2e-2, 2e-1]), 6)
        1.0
    """
    x, y = np.log(np.asarray(list(pixels), float)), np.log(np.asarray(list(seconds), float))
    if len(x) < 2:
        raise ValueError("fit_exponent needs at least two sizes")
    return float(np.polyfit(x, y, 1)[0])


def count_macs(module, bracket, device: torch.device) -> dict[str, Any]:
    """Multiply-accumulates of one merge (``FlopCounterMode`` total / 2) and the notable ops the
    counter has no formula for (their work is not in the total)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    counted = FlopCounterMode(display=False)
    seen: dict[str, int] = {}

    class _Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            seen[name] = seen.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), counted, _Seen():
        module.merge(bracket, device=device, max_pixels=None)
    registry = {getattr(k, "__name__", str(k)) for k in counted.flop_registry}
    missed = sorted(
        name
        for name in seen
        if name not in registry and any(tag in name for tag in _NOTABLE_UNCOUNTED)
    )
    return {"macs": counted.get_total_flops() // 2, "uncounted_ops": missed}


def vm_hwm_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ``VmHWM``)."""
    import resource

    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_rss_mib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(
    model: str, height: int, width: int, tile: int | None, threads: int, frames: int = 3
) -> dict:
    """One merge in this (fresh) process: its peak RSS and what was resident before it."""
    torch.set_num_threads(threads)
    module = build_model(model)
    bracket = random_bracket(height, width, frames)
    before = vm_rss_mib()
    start = time.perf_counter()
    hdr = module.merge(bracket, tile=tile, overlap=tile_overlap(tile), max_pixels=None)
    seconds = time.perf_counter() - start
    return {
        "peak_rss_mib": round(vm_hwm_mib(), 1),
        "rss_before_merge_mib": round(before, 1),
        "input_mib": round(bracket.ldr.numel() * 4 / 2**20, 1),
        "seconds": round(seconds, 3),
        "output_finite": bool(torch.isfinite(hdr).all()),
    }


def run_child(args: list[str], timeout: float | None = None) -> dict[str, Any]:
    """``python benchmarks/run.py --child ...`` in a fresh process; its last stdout line as JSON,
    or ``{"na": why}`` when it failed (killed for memory, an exception, a timeout)."""
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"na": f"did not finish within {timeout:.0f} s"}
    if done.returncode != 0:
        if done.returncode in (-9, 137):
            return {"na": "killed (out of memory?)"}
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"na": f"failed: {tail[:300]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def gpu_precision(precision: str):
    """TF32 matmuls and convolutions for ``"tf32"`` only: ``"fp32"`` means true float32 (torch
    lets cuDNN use TF32 by default). CPU maths does not read these flags."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def network_call(module, bracket, device: torch.device, precision: str, compile: bool):
    """A call of the network alone on inputs already on ``device`` and padded to its multiple,
    under ``inference_mode`` and the precision's autocast (as ``merge`` runs it)."""
    from hdrzoo.inference import _autocast, _compiled
    from hdrzoo.ops.windows import pad_to_multiple

    module.eval().to(device)
    ldr, _ = pad_to_multiple(bracket.ldr.to(device)[None], module.size_multiple, mode="reflect")
    times = bracket.exposures.to(device)[None]
    ref = torch.tensor([bracket.ref], device=device)
    runner = _compiled(module) if compile else module

    def call():
        with torch.inference_mode(), _autocast(device, autocast_precision(precision)):
            runner(ldr, times, ref)

    return call


def autocast_precision(precision: str) -> str | None:
    """The ``merge(precision=...)`` value of a benchmark precision (tf32 runs as fp32 maths)."""
    return {"fp32": None, "tf32": None, "bf16": "bf16", "fp16": "fp16"}[precision]


# ------------------------------------------------------------------- groups ------
class Harness:
    """Runs the selected groups and collects ``{group: {model: {key: entry}}}``."""

    def __init__(self, args: argparse.Namespace, device: torch.device, run_id: str) -> None:
        self.args = args
        self.device = device
        self.run_id = run_id
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self._last: dict[str, tuple[int, float]] = {}  # model -> (pixels, seconds) timed last

    def predicted(self, name: str, pixels: int) -> float | None:
        """Seconds a merge of ``pixels`` should take, linear from the model's last timing."""
        if name not in self._last:
            return None
        last_pixels, seconds = self._last[name]
        return seconds * pixels / last_pixels

    def remember(self, name: str, pixels: int, seconds: float) -> None:
        self._last[name] = (pixels, seconds)

    # -------------------------------------------------------------- helpers -----
    def record(self, group: str, model: str, key: str, entry: dict[str, Any]) -> None:
        entry = {**entry, "run": self.run_id}
        self.results.setdefault(group, {}).setdefault(model, {})[key] = entry
        shown = {k: v for k, v in entry.items() if not isinstance(v, (list, dict))}
        print(f"[{group}] {model} {key}: {json.dumps(shown, default=str)}", flush=True)

    def guarded(self, group: str, model: str, key: str, measure: Callable[[], dict]) -> None:
        """Record ``measure()``, or ``{"na": reason}`` when it fails (out of memory, refused)."""
        from hdrzoo.errors import HDRZooError

        try:
            entry = measure()
        except (
            HDRZooError,
            RuntimeError,
            MemoryError,
            NotImplementedError,
            ValueError,
            TypeError,
        ) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            entry = {"na": f"{type(err).__name__}: {first[:300]}"}
        finally:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.record(group, model, key, entry)

    def model(self, name: str):
        return build_model(name, self.device)

    def precisions(self) -> list[str]:
        if self.device.type == "cuda":
            return csv(self.args.precisions)
        return ["fp32"]

    def key_suffix(self, key: str) -> str:
        """``key``, marked with the frame count when it is not the usual 3."""
        return key if self.args.frames == 3 else f"{key} {self.args.frames} frames"

    def key(self, height: int, width: int, tile: int | None = None) -> str:
        return self.key_suffix(size_key(height, width, tile))

    def timing_key(self, height: int, width: int, tile: int | None, precision: str) -> str:
        key = self.key(height, width, tile)
        if precision != "fp32":
            key += f" {precision}"
        return key + (" compiled" if self.args.compile else "")

    # --------------------------------------------------------------- groups -----
    def params(self, name: str) -> None:
        module = self.model(name)
        self.record("params", name, "all", {"parameters": parameter_count(module)})

    def macs(self, name: str) -> None:
        module = self.model(name)
        for height, width, _ in map(parse_size, csv(self.args.macs_sizes)):
            padded, note = input_rule(module, height, width, self.args.frames)

            def measure(height=height, width=width, padded=padded, note=note) -> dict:
                if padded is None:
                    return {"na": note}
                entry = count_macs(
                    module, random_bracket(height, width, self.args.frames), self.device
                )
                return {**entry, "network_size": list(padded), "note": note}

            self.guarded("macs", name, self.key(height, width), measure)

    def latency(self, name: str) -> None:
        module = self.model(name)
        for height, width, tile in map(parse_size, csv(self.args.sizes)):
            padded, note = input_rule(module, height, width, self.args.frames)
            bracket = random_bracket(height, width, self.args.frames)
            for precision in self.precisions():
                key = self.timing_key(height, width, tile, precision)
                if padded is None:
                    self.record("latency", name, key, {"na": note})
                    continue
                self.guarded(
                    "latency",
                    name,
                    key,
                    lambda b=bracket, t=tile, p=precision, n=note: self._latency(
                        name, module, b, t, p, n
                    ),
                )

    def _latency(
        self, name: str, module, bracket, tile: int | None, precision: str, note: str
    ) -> dict:
        """Time ``merge`` end to end; on a GPU also the network alone on device-resident inputs
        (no host copies), which is what the papers' and the issue's GPU times measure."""

        def call():
            module.merge(
                bracket,
                tile=tile,
                overlap=tile_overlap(tile),
                device=self.device,
                precision=autocast_precision(precision),
                compile=self.args.compile,
                max_pixels=None,
            )

        args = (self.device, self.args.reps, self.args.warmup, self.args.point_seconds)
        pixels = bracket.size[0] * bracket.size[1]
        with gpu_precision(precision):
            entry = repeat_timing(call, *args, predicted_s=self.predicted(name, pixels))
            if precision == "fp32":
                self.remember(name, pixels, entry["median_s"])
            if self.device.type == "cuda" and tile is None:
                network = repeat_timing(
                    network_call(module, bracket, self.device, precision, self.args.compile), *args
                )
                entry["network_median_s"] = network["median_s"]
                entry["network_times_s"] = network["times_s"]
        overlap = tile_overlap(tile) if tile else None
        return {**entry, "tile": tile, "overlap": overlap, "precision": precision, "note": note}

    def memory(self, name: str) -> None:
        for height, width, tile in map(parse_size, csv(self.args.sizes)):
            key = self.key(height, width, tile)
            padded, note = input_rule(build_model(name), height, width, self.args.frames)
            if padded is None:
                self.record("memory", name, key, {"na": note})
                continue
            if self.device.type == "cuda":
                self.guarded(
                    "memory",
                    name,
                    key,
                    lambda h=height, w=width, t=tile: self._cuda_memory(name, h, w, t),
                )
                continue
            child = [
                "--child",
                "memory",
                "--models",
                name,
                "--sizes",
                size_key(height, width, tile),
                "--threads",
                str(self.args.threads),
                "--frames",
                str(self.args.frames),
            ]
            entry = run_child(child, timeout=self.args.child_timeout)
            self.record("memory", name, key, {**entry, "tile": tile, "note": note})

    def _cuda_memory(self, name: str, height: int, width: int, tile: int | None) -> dict:
        module = self.model(name)
        bracket = random_bracket(height, width, self.args.frames)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        module.merge(
            bracket, tile=tile, overlap=tile_overlap(tile), device=self.device, max_pixels=None
        )
        synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        return {
            "peak_allocated_mib": round(peak / 2**20, 1),
            "allocated_before_mib": round(before / 2**20, 1),
            "tile": tile,
        }

    def scaling(self, name: str) -> None:
        module = self.model(name)
        sizes = [parse_size(s)[:2] for s in csv(self.args.scaling_sizes)]
        points = []
        for height, width in sizes:
            padded, note = input_rule(module, height, width, self.args.frames)
            if padded is None:
                continue
            bracket = random_bracket(height, width, self.args.frames)
            try:
                timing = repeat_timing(
                    lambda bracket=bracket: module.merge(
                        bracket, device=self.device, max_pixels=None
                    ),
                    self.device,
                    self.args.reps,
                    self.args.warmup,
                    self.args.point_seconds,
                    predicted_s=self.predicted(name, height * width),
                )
                self.remember(name, height * width, timing["median_s"])
            except (RuntimeError, MemoryError) as err:
                points.append(
                    {"size": [height, width], "na": f"{type(err).__name__}: {str(err)[:200]}"}
                )
                break  # larger sizes would fail too
            points.append(
                {"size": [height, width], "pixels": height * width, **timing, "note": note}
            )
            gc.collect()
        timed = [p for p in points if "median_s" in p]
        entry: dict[str, Any] = {"points": points}
        if len(timed) >= 2:
            entry["exponent"] = fit_exponent(
                [p["pixels"] for p in timed], [p["median_s"] for p in timed]
            )
        else:
            entry["na"] = "fewer than two sizes could be timed"
        self.record("scaling", name, self.key_suffix("time_vs_pixels"), entry)

    def training(self, name: str) -> None:
        configs = synthetic_configs(name)
        if not configs:
            self.record("training", name, "synthetic", {"na": "no synthetic training config"})
            return
        for path in configs:
            self.guarded("training", name, path.stem, lambda path=path: self._throughput(path))

    def _throughput(self, path: Path) -> dict:
        config = read_config(path)
        crop = training_crop(config, self.args.crop)
        module = module_from_config(config, crop)
        if not any(p.requires_grad for p in module.parameters()):
            return {"na": "no trainable parameters"}
        module.train().to(self.device)
        batch = synthetic_batch(config, crop, self.args.train_batch, self.device)
        optimizer = module.configure_optimizers()
        optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
        clip = config.get("trainer", {}).get("gradient_clip_val")

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss, _ = module.compute_loss(module.training_forward(batch), batch)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
            optimizer.step()

        timing = repeat_timing(
            step, self.device, self.args.train_steps, 1, self.args.point_seconds * 4
        )
        return {
            "crop": crop,
            "batch": self.args.train_batch,
            "steps": timing["reps"],
            "step_median_s": timing["median_s"],
            "samples_per_s": self.args.train_batch / timing["median_s"],
            "note": "model step only (forward, loss, backward, optimiser); data generation excluded",
        }

    def quality(self, name: str) -> None:
        scenes = quality_scenes(self.args.scenes, self.args.scene_size)
        meta = {
            "scene_seeds": [QUALITY_SEED + i for i in range(self.args.scenes)],
            "scene_size": self.args.scene_size,
            "budget_s": self.args.budget_seconds,
        }
        if "reference_frame" not in self.results.get("quality", {}):
            self.record(
                "quality", "reference_frame", "synthetic", {**meta, **score_reference_frame(scenes)}
            )
        self.guarded(
            "quality", name, "synthetic", lambda: {**meta, **self._train_and_score(name, scenes)}
        )

    def _train_and_score(self, name: str, scenes: list) -> dict:
        configs = synthetic_configs(name)
        started = time.perf_counter()
        trained: dict[str, Any] = {}
        module = None
        if name == "classic" or not configs:
            module = self.model(name)
        else:
            share = self.args.budget_seconds / len(configs)
            for path in configs:  # LF-Diff: stage 1, then stage 2 starting from it
                config = read_config(path)
                crop = training_crop(config, self.args.crop)
                stage = module_from_config(config, crop)
                if module is not None and hasattr(stage, "load_stage1"):
                    stage.load_stage1(module.net)
                trained[path.stem] = fit_for(stage, config, crop, share, self.device, self.args)
                module = stage
        module.eval()
        scores, times = [], []
        for bracket in scenes:
            start = time.perf_counter()
            hdr = module.merge(bracket, device=self.device)
            times.append(time.perf_counter() - start)
            scores.append(psnr_mu(hdr, bracket.gt))
        return {
            "psnr_mu": statistics.fmean(scores),
            "psnr_mu_per_scene": scores,
            "merge_median_s": statistics.median(times),
            "trained": trained,
            "wall_s": time.perf_counter() - started,
        }

    def precision(self, name: str) -> None:
        module = self.model(name)
        choices = [p for p in csv(self.args.precisions) if p != "fp32"]
        if self.device.type == "cpu":
            choices = [p for p in choices if p == "bf16"]
        scenes, weights = precision_scenes(name, self.args)
        if weights is not None:
            module = weights
        for precision in choices:
            self.guarded(
                "precision", name, precision, lambda p=precision: self._precision(module, p, scenes)
            )

    def _precision(self, module, precision: str, scenes: dict) -> dict:
        accuracy = precision_accuracy(module, scenes["brackets"], precision, self.device)
        height, width, _ = parse_size(self.args.precision_size)
        bracket = random_bracket(height, width)

        def call(p: str):
            with gpu_precision(p):
                module.merge(
                    bracket, device=self.device, precision=autocast_precision(p), max_pixels=None
                )

        ratio = interleaved_ratio(
            lambda: call("fp32"),
            lambda: call(precision),
            self.device,
            self.args.reps,
            max(self.args.warmup, 1),
            self.args.point_seconds,
        )
        return {**accuracy, **ratio, "timing_size": [height, width], "scenes": scenes["what"]}

    def safnet_speed(self, name: str) -> None:
        if name not in ("safnet_s", "safnet"):
            return
        height, width, _ = parse_size(self.args.precision_size)
        variant = "s" if name == "safnet_s" else "full"
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "safnet_speed.json"
            reps = str(self.args.reps if variant == "s" else max(1, self.args.reps // 2))
            command = [
                sys.executable,
                str(ROOT / "benchmarks" / "safnet_speed.py"),
                "--size", str(height), str(width),
                "--variants", variant,
                "--reps", reps,
                "--reps-full", reps,
                "--threads", str(self.args.threads),
                "--json", str(out),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                entry = {"na": f"safnet_speed.py failed: {done.stderr.strip()[-300:]}"}
            else:
                entry = json.loads(out.read_text())[0]
        self.record("safnet_speed", name, size_key(height, width), entry)

    def synthetic_data(self) -> None:
        samples = "10" if self.args.quick else "50"
        for radiance in ("assets", "procedural"):
            command = [
                sys.executable,
                str(ROOT / "benchmarks" / "synthetic_speed.py"),
                "--json",
                "-n", samples,
                "--radiance", radiance,
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                entry = {"na": f"synthetic_speed.py failed: {done.stderr.strip()[-300:]}"}
            else:
                entry = json.loads(done.stdout.strip().splitlines()[-1])
            self.record("synthetic_data", "generator", f"256x256 {radiance}", entry)


# ---------------------------------------------------------- training helpers ------
def synthetic_configs(name: str) -> list[Path]:
    """``configs/<name>/synthetic*.yaml`` in training order (LF-Diff: stage 1, stage 2)."""
    return sorted((ROOT / "configs" / name).glob("synthetic*.yaml"))


def read_config(path: Path) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["_path"] = str(path.relative_to(ROOT))
    return config


def _class(path: str):
    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)


def _factory(spec: dict[str, Any] | None):
    """A ``class_path`` / ``init_args`` spec -> ``callable(first) -> instance`` (LightningCLI's way)."""
    if not spec:
        return None
    cls, kwargs = _class(spec["class_path"]), dict(spec.get("init_args") or {})
    return lambda first: cls(first, **kwargs)


def training_crop(config: dict[str, Any], override: int | None) -> int:
    """The config's training crop, or ``override`` rounded up to what the model trains on
    (STHDR: multiples of 64, at least 128)."""
    crop = int(config.get("data", {}).get("init_args", {}).get("crop_size", 128))
    if override is None:
        return crop
    if "sthdr" in config["model"]["class_path"]:
        return max(128, math.ceil(override / 64) * 64)
    return override


def module_from_config(config: dict[str, Any], crop: int):
    """The LightningModule a synthetic config describes, offline (no perceptual term).

    SAFNet's refine windows shrink to the crop when a quick run uses crops smaller than them.
    """
    import lightning as L

    L.seed_everything(int(config.get("seed_everything", 0)), verbose=False)
    spec = config["model"]
    cls = _class(spec["class_path"])
    kwargs = dict(spec.get("init_args") or {})
    for key in ("optimizer", "lr_scheduler"):
        if key in kwargs:
            kwargs[key] = _factory(kwargs[key])
    kwargs.pop("stage1_checkpoint", None)
    if "perceptual_weight" in kwargs:
        kwargs["perceptual_weight"] = 0.0
    window = kwargs.get("window_size")
    if window and crop % window:
        kwargs["window_size"] = crop
    module = cls(**kwargs)
    module.registry_name = spec["class_path"]
    return module


def datamodule_from_config(config: dict[str, Any], crop: int, batch: int | None = None):
    from hdrzoo.data.modules import SyntheticDataModule

    kwargs = dict(config.get("data", {}).get("init_args") or {})
    kwargs.update(crop_size=crop, num_workers=0)
    if batch is not None:
        kwargs["batch_size"] = batch
    return SyntheticDataModule(**kwargs)


def synthetic_batch(config: dict[str, Any], crop: int, batch: int, device: torch.device) -> dict:
    """One training batch of the config's synthetic data at ``crop``, on ``device``."""
    from torch.utils.data import default_collate

    data = datamodule_from_config(config, crop, batch)
    data.setup("fit")
    samples = [data.train_set[i] for i in range(batch)]
    collated = default_collate(samples)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in collated.items()}


def fit_for(module, config: dict, crop: int, seconds: float, device: torch.device, args) -> dict:
    """Train ``module`` on its config's synthetic data for ``seconds`` of wall clock (Lightning)."""
    import lightning as L

    trainer_cfg = config.get("trainer", {})
    batch = args.train_batch if args.quick else None
    data = datamodule_from_config(config, crop, batch)
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        max_time={"seconds": max(1, int(round(seconds)))},
        max_epochs=-1,
        max_steps=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=trainer_cfg.get("gradient_clip_val"),
        precision=trainer_cfg.get("precision", "32-true"),
        default_root_dir=tempfile.gettempdir(),
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    return {
        "config": config["_path"],
        "steps": int(trainer.global_step),
        "seconds": time.perf_counter() - start,
        "crop": crop,
        "batch": data.batch_size if hasattr(data, "batch_size") else None,
    }


# ------------------------------------------------------------ quality helpers ------
def quality_scenes(count: int, size: int) -> list:
    """The fixed synthetic test scenes: 3 frames at EV -2, 0, +2, seeds ``QUALITY_SEED + i``."""
    from hdrzoo.data.synthetic import synthesize

    return [synthesize(QUALITY_SEED + i, size=(size, size), evs=(-2, 0, 2)) for i in range(count)]


def psnr_mu(hdr: torch.Tensor, gt: torch.Tensor) -> float:
    from hdrzoo import metrics

    return float(metrics.psnr_mu(hdr.float(), gt.float()))


def score_reference_frame(scenes: list) -> dict:
    from hdrzoo.ops.tonemap import linearize

    scores = []
    for b in scenes:
        alone = linearize(b.ldr[b.ref], b.exposures[b.ref : b.ref + 1])[0]
        scores.append(psnr_mu(alone, b.gt))
    return {"psnr_mu": statistics.fmean(scores), "psnr_mu_per_scene": scores}


def shared_dir() -> Path | None:
    """``$HDRZOO_SHARED`` or ``shared/`` beside or inside the repository (reference fixtures)."""
    env = os.environ.get("HDRZOO_SHARED")
    for candidate in [Path(env)] if env else []:
        if (candidate / "reference").is_dir():
            return candidate
    for candidate in (ROOT.parent / "shared", ROOT / "shared"):
        if (candidate / "reference").is_dir():
            return candidate
    return None


def fixture_scenes() -> tuple[list, Path] | None:
    """SAFNet-S reference scenes and official weights, when ``shared/`` is present."""
    import hdrzoo

    shared = shared_dir()
    if shared is None:
        return None
    folder = shared / "reference" / "safnet_s"
    weights = folder / "SAFNet_S_siggraph17.pth"
    scenes = sorted(p for p in (folder / "scenes").glob("*") if p.is_dir())
    if not weights.is_file() or not scenes:
        return None
    return [hdrzoo.read_bracket(s, divisor=65536) for s in scenes], weights


def precision_scenes(name: str, args) -> tuple[dict, Any]:
    """Scenes for the accuracy of reduced precision, and the model to use (``None``: untrained).

    SAFNet-S: the reference fixture with the official weights, when present (unless
    ``--quick``); otherwise the fixed synthetic scenes.
    """
    import hdrzoo

    fixture = None if args.quick or name != "safnet_s" else fixture_scenes()
    if fixture is not None:
        brackets, weights = fixture
        module = hdrzoo.load("safnet_s", weights=weights, perceptual_weight=0.0)
        names = [b.name for b in brackets]
        return {"brackets": brackets, "what": f"fixture {names}, official weights"}, module
    brackets = quality_scenes(args.scenes, args.scene_size)
    what = f"{len(brackets)} synthetic {args.scene_size}x{args.scene_size}, untrained weights"
    return {"brackets": brackets, "what": what}, None


def precision_accuracy(
    module, brackets: list, precision: str, device: torch.device | str = "cpu"
) -> dict:
    """PSNR-mu against the ground truth in fp32 and in ``precision``, per scene, and the change."""
    fp32, reduced, diffs = [], [], []
    for bracket in brackets:
        with gpu_precision("fp32"):
            full = module.merge(bracket, device=device)
        with gpu_precision(precision):
            low = module.merge(bracket, device=device, precision=autocast_precision(precision))
        fp32.append(psnr_mu(full, bracket.gt))
        reduced.append(psnr_mu(low, bracket.gt))
        diffs.append(float((full - low).abs().max()))
    deltas = [r - f for r, f in zip(reduced, fp32)]
    return {
        "psnr_mu_fp32": fp32,
        "psnr_mu_reduced": reduced,
        "psnr_mu_change": deltas,
        "worst_change_db": max(deltas, key=abs),
        "max_abs_diff": max(diffs),
    }


def interleaved_ratio(
    baseline: Callable[[], Any],
    candidate: Callable[[], Any],
    device,
    pairs: int,
    warmup: int,
    point_seconds: float = math.inf,
) -> dict:
    """Median of per-pair time ratios ``candidate / baseline``, alternating which goes first.

    The warm-up pair is timed to bound the number of pairs (at least two) by about
    ``2 * point_seconds`` of calls.
    """
    warm = [(timed_call(baseline, device), timed_call(candidate, device)) for _ in range(warmup)]
    if warm and sum(warm[-1]) > 0:
        pairs = max(2, min(pairs, int(2 * point_seconds / sum(warm[-1]))))
    base_times, cand_times = [], []
    for i in range(max(pairs, 1)):
        order = (baseline, candidate) if i % 2 == 0 else (candidate, baseline)
        measured = {fn: timed_call(fn, device) for fn in order}
        base_times.append(measured[baseline])
        cand_times.append(measured[candidate])
    ratios = [c / b for c, b in zip(cand_times, base_times)]
    return {
        "time_ratio": statistics.median(ratios),
        "ratios": ratios,
        "fp32_median_s": statistics.median(base_times),
        "reduced_median_s": statistics.median(cand_times),
        "pairs": len(ratios),
    }


# -------------------------------------------------------------------- files ------
def results_path(device: torch.device, out: str | None) -> Path:
    if out:
        return Path(out)
    return RESULTS / ("gpu.json" if device.type == "cuda" else "cpu.json")


def merge_report(old: dict[str, Any] | None, new_results: dict, run: dict[str, Any]) -> dict:
    """The old report with the new entries (group -> model -> key) replacing theirs, and the run added."""
    report = dict(old or {})
    report["schema"] = SCHEMA
    report["reference"] = PAPER_REFERENCE
    report["machine"] = run["machine"]
    report.setdefault("runs", {})[run["id"]] = run
    results = report.setdefault("results", {})
    for group, models in new_results.items():
        for model, entries in models.items():
            results.setdefault(group, {}).setdefault(model, {}).update(entries)
    # Drop runs no entry names any more, so the file does not grow without bound.
    named = {
        entry.get("run")
        for models in results.values()
        for entries in models.values()
        for entry in entries.values()
        if isinstance(entry, dict)
    }
    report["runs"] = {k: v for k, v in report["runs"].items() if k in named or k == run["id"]}
    return report


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, sort_keys=False, allow_nan=False) + "\n")
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """Replace non-finite floats (``inf`` PSNR of identical images) by ``None`` for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# --------------------------------------------------------------------- main ------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(GROUPS), help=f"groups, from {','.join(GROUPS)}")
    parser.add_argument("--models", default=",".join(MODELS), help="registered model names")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats: a smoke run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--frames", type=int, default=3, help="frames per bracket for macs/latency/memory/scaling"
    )
    parser.add_argument(
        "--sizes", help=f"latency / memory sizes HxW[@TILE] (default {DEFAULTS['sizes']})"
    )
    parser.add_argument("--macs-sizes", help=f"MAC count sizes (default {DEFAULTS['macs_sizes']})")
    parser.add_argument(
        "--scaling-sizes", help=f"time-vs-pixels sizes (default {DEFAULTS['scaling_sizes']})"
    )
    parser.add_argument(
        "--precision-size",
        help=f"size of the precision and safnet_speed timings (default {DEFAULTS['precision_size']})",
    )
    parser.add_argument(
        "--precisions", default="fp32,tf32,bf16,fp16", help="GPU precisions; CPU runs fp32 and bf16"
    )
    parser.add_argument(
        "--compile", action="store_true", help="time merge(compile=True) (torch.compile)"
    )
    parser.add_argument(
        "--reps", type=int, help=f"timed repeats per point (default {DEFAULTS['reps']})"
    )
    parser.add_argument(
        "--warmup", type=int, help=f"untimed warm-up calls (default {DEFAULTS['warmup']})"
    )
    parser.add_argument(
        "--point-seconds", type=float, help="fewer repeats once one point would take longer"
    )
    parser.add_argument("--train-steps", type=int, help="timed training steps (default 3)")
    parser.add_argument("--train-batch", type=int, help="training batch size (default 4)")
    parser.add_argument(
        "--crop", type=int, help="training crop instead of each config's (quick: 64)"
    )
    parser.add_argument(
        "--budget-seconds", type=float, help="training budget per model for quality (default 300)"
    )
    parser.add_argument("--scenes", type=int, help="synthetic quality scenes (default 8)")
    parser.add_argument("--scene-size", type=int, help="side of the quality scenes (default 256)")
    parser.add_argument(
        "--child-timeout", type=float, default=3600.0, help="seconds per memory process"
    )
    parser.add_argument(
        "--out", help="results JSON (default benchmarks/results/cpu.json or gpu.json)"
    )
    parser.add_argument(
        "--docs", action="store_true", help="regenerate docs/benchmarks.md afterwards"
    )
    parser.add_argument("--child", choices=["memory"], help=argparse.SUPPRESS)
    return parser


def resolve_args(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    unknown = set(csv(args.only)) - set(GROUPS)
    if unknown:
        raise SystemExit(
            f"--only: unknown groups {sorted(unknown)}; choose from {', '.join(GROUPS)}"
        )
    return args


def resolve_device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no GPU is visible to torch here")
    return device


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = resolve_args(argv)
    torch.set_num_threads(args.threads)
    if args.child == "memory":
        height, width, tile = parse_size(csv(args.sizes)[0])
        print(
            json.dumps(
                memory_child(csv(args.models)[0], height, width, tile, args.threads, args.frames)
            )
        )
        return {}

    from hdrzoo.hub import list_models

    known = list_models()
    models = csv(args.models)
    missing = [m for m in models if m not in known]
    if missing:
        raise SystemExit(f"--models: not registered: {missing}; registered: {', '.join(known)}")
    device = resolve_device(args.device)
    run_id = f"{utc_now()}-{os.getpid()}"
    harness = Harness(args, device, run_id)
    path = results_path(device, args.out)
    run = {
        "id": run_id,
        "date": run_id.rsplit("-", 1)[0],
        "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": args.quick,
        "git": git_commit(),
        "machine": machine_info(device),
        "seconds": 0.0,
        "group_seconds": {},
        "complete": False,
    }
    started = time.perf_counter()

    def save() -> dict[str, Any]:
        # After every model of every group: a crash (or the OOM killer) hours into a full run
        # loses only the measurement in progress.
        run["seconds"] = round(time.perf_counter() - started, 1)
        old = json.loads(path.read_text()) if path.is_file() else None
        report = merge_report(old, _finite(harness.results), run)
        write_json(path, report)
        return report

    for group in [g for g in GROUPS if g in csv(args.only)]:
        group_started = time.perf_counter()
        if group == "synthetic_data":
            harness.synthetic_data()
            save()
        else:
            for model in models:
                print(f"== {group}: {model}", flush=True)
                getattr(harness, group)(model)
                save()
        run["group_seconds"][group] = round(time.perf_counter() - group_started, 1)
    run["complete"] = True
    report = save()
    print(f"wrote {path} ({run['seconds']} s)")
    if args.docs:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import make_docs  # beside this file

        make_docs.main([])
    return report


if __name__ == "__main__":
    main()
