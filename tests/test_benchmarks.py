"""The benchmark harness (``benchmarks/run.py``) and the page it feeds (``make_docs.py``).

A smoke run at tiny sizes checks the JSON schema, that a run of a subset replaces only its
own entries, and that ``make_docs`` renders the results; the committed page must be what
``make_docs`` makes of the committed JSON. Nothing here is timed: timings are written, never
compared. The CPU bf16 accuracy of SAFNet-S on the reference fixture is checked against the
bound of issue 20.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"hdrzoo_benchmarks_{name}", BENCHMARKS / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load("run")
make_docs = _load("make_docs")

SMOKE_GROUPS = ("params", "macs", "latency", "scaling", "training", "quality", "precision")
SMOKE_ARGS = [
    "--quick",
    "--models", "classic,safnet_s",
    "--only", ",".join(SMOKE_GROUPS),
    "--sizes", "24x40,48x64@32",
    "--macs-sizes", "24x40",
    "--scaling-sizes", "16x16,24x24,32x32",
    "--precision-size", "24x40",
    "--reps", "1",
    "--scenes", "1",
    "--scene-size", "32",
    "--budget-seconds", "1",
    "--crop", "32",
    "--train-batch", "1",
]  # fmt: skip

# What a measured entry of each group must hold (an entry may instead be {"na": reason}).
REQUIRED = {
    "params": {"parameters"},
    "macs": {"macs", "uncounted_ops", "network_size"},
    "latency": {"median_s", "min_s", "times_s", "reps", "precision"},
    "memory": {"peak_rss_mib", "rss_before_merge_mib"},
    "scaling": {"points", "exponent"},
    "training": {"crop", "batch", "steps", "samples_per_s"},
    "quality": {"psnr_mu", "psnr_mu_per_scene", "scene_seeds", "budget_s"},
    "precision": {"time_ratio", "psnr_mu_change", "max_abs_diff", "scenes"},
}


def _check_schema(report: dict) -> None:
    assert report["schema"] == run.SCHEMA
    for field in ("device", "device_name", "cpu_model", "torch", "threads", "python"):
        assert field in report["machine"], field
    assert report["machine"]["torch"] == torch.__version__
    for run_id, info in report["runs"].items():
        assert info["id"] == run_id and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["date"]
        )
        assert info["machine"]["device"] in ("cpu", "cuda")
    assert report["reference"]["paper_seconds"]["safnet_s"]["seconds"] == 0.049
    for group, models in report["results"].items():
        for model, entries in models.items():
            for key, entry in entries.items():
                where = f"{group}/{model}/{key}"
                assert entry["run"] in report["runs"], where
                if "na" in entry:
                    assert isinstance(entry["na"], str) and entry["na"], where
                    continue
                assert REQUIRED.get(group, set()) <= set(entry), (where, sorted(entry))
                for value in _numbers(entry):
                    assert math.isfinite(value), where


def _numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict, dict]:
    """A quick run of most groups on classic and SAFNet-S, then a run of a subset into the same file."""
    out = tmp_path_factory.mktemp("bench") / "cpu.json"
    first = run.main([*SMOKE_ARGS, "--out", str(out)])
    second = run.main(
        ["--quick", "--models", "classic,safnet_s", "--only", "memory", "--sizes", "16x16"]
        + ["--frames", "5", "--out", str(out)]
    )
    return out, first, second


def test_smoke_run_writes_every_selected_group_for_every_model(smoke):
    out, first, _ = smoke
    results = first["results"]
    assert set(SMOKE_GROUPS) <= set(results)
    for group in SMOKE_GROUPS:
        assert {"classic", "safnet_s"} <= set(results[group]), group
    _check_schema(first)
    _check_schema(json.loads(out.read_text()))


def test_smoke_run_measures_what_it_claims(smoke):
    _, first, _ = smoke
    results = first["results"]
    assert results["params"]["safnet_s"]["all"]["parameters"] == 566_713  # MODELS.md
    assert results["params"]["classic"]["all"]["parameters"] == 0
    macs = results["macs"]["safnet_s"]["24x40"]
    assert macs["macs"] > 0 and "grid_sampler" in " ".join(macs["uncounted_ops"])
    assert results["macs"]["classic"]["24x40"]["macs"] == 0  # a per-pixel merge: no conv, no matmul
    tiled = results["latency"]["safnet_s"]["48x64@32"]
    assert tiled["tile"] == 32 and tiled["overlap"] == 8 and tiled["reps"] >= 1
    points = results["scaling"]["safnet_s"]["time_vs_pixels"]["points"]
    assert [p["size"] for p in points] == [[16, 16], [24, 24], [32, 32]]
    assert "n/a" not in json.dumps(results["training"]["safnet_s"])
    assert results["training"]["classic"]["synthetic"]["na"] == "no trainable parameters"
    trained = results["quality"]["safnet_s"]["synthetic"]["trained"]["synthetic"]
    assert trained["config"] == "configs/safnet_s/synthetic.yaml" and trained["steps"] >= 1
    assert "reference_frame" in results["quality"]
    assert "na" not in results["precision"]["safnet_s"]["bf16"]


def test_a_subset_run_replaces_only_its_own_entries(smoke):
    out, first, second = smoke
    merged = json.loads(out.read_text())
    first_id = first["results"]["latency"]["classic"]["24x40"]["run"]
    second_id = next(iter(second["runs"].keys() - {first_id}))
    assert set(merged["runs"]) == {first_id, second_id}
    for group in SMOKE_GROUPS:
        assert merged["results"][group] == first["results"][group], group
    memory = merged["results"]["memory"]
    assert memory["classic"]["16x16 5 frames"]["run"] == second_id
    assert (
        memory["classic"]["16x16 5 frames"]["peak_rss_mib"]
        >= memory["classic"]["16x16 5 frames"]["rss_before_merge_mib"]
        > 0
    )
    # SAFNet-S takes exactly three frames: a clear n/a, no process started for it
    assert "exactly 3 frames" in memory["safnet_s"]["16x16 5 frames"]["na"]
    assert merged["runs"][second_id]["argv"][:2] == ["--quick", "--models"]


def test_make_docs_renders_the_smoke_results(smoke, tmp_path):
    out, _, _ = smoke
    page = make_docs.render(make_docs.load_reports(out.parent), tmp_path / "img", "img")
    for heading in (
        "Per model",
        "Inference latency",
        "Peak memory",
        "Time against image size",
        "Quality",
    ):
        assert f"### {heading}" in page
    assert "| safnet_s | 566,713 |" in page
    assert "Smoke-run entries" in page  # quick runs are flagged as such
    assert "--only safnet_speed" in page  # an unmeasured group says how to measure it
    images = re.findall(r"!\[[^\]]*\]\(img/([^)]+)\)", page)
    assert sorted(images) == ["benchmarks_cpu_latency.png", "benchmarks_cpu_quality.png"]
    for name in images:
        assert (tmp_path / "img" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_committed_page_is_generated_from_the_committed_json(tmp_path):
    reports = make_docs.load_reports(BENCHMARKS / "results")
    assert "cpu" in reports, "benchmarks/results/cpu.json must be committed"
    page = make_docs.render(reports, tmp_path / "img", "img")
    assert page == (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"), (
        "docs/benchmarks.md is stale: run `python benchmarks/make_docs.py` and commit the result"
    )
    for name in re.findall(r"\]\(img/([^)]+)\)", page):
        assert (ROOT / "docs" / "img" / name).is_file(), name


# ------------------------------------------------------------------ pieces ------
def test_count_macs_matches_the_closed_form_of_a_convolution():
    class OneConv:
        def merge(self, bracket, device=None, max_pixels=None):
            return torch.nn.functional.conv2d(bracket, weight)

    weight = torch.randn(5, 3, 3, 3)
    height, width = 10, 12
    result = run.count_macs(OneConv(), torch.randn(1, 3, height, width), torch.device("cpu"))
    assert result["macs"] == 5 * 3 * 3 * 3 * (height - 2) * (width - 2)
    assert result["uncounted_ops"] == []


def test_count_macs_lists_the_warps_it_cannot_count():
    class Warp:
        def merge(self, bracket, device=None, max_pixels=None):
            grid = torch.zeros(1, 4, 4, 2)
            return torch.nn.functional.grid_sample(bracket, grid, align_corners=True)

    result = run.count_macs(Warp(), torch.randn(1, 3, 4, 4), torch.device("cpu"))
    assert result["macs"] == 0 and result["uncounted_ops"] == ["grid_sampler_2d"]


def test_fit_exponent_recovers_a_power_law():
    pixels = [256**2, 512**2, 1024**2, 2048**2]
    assert run.fit_exponent(pixels, [3e-7 * p**1.3 for p in pixels]) == pytest.approx(1.3)


def test_input_rules_pad_or_refuse():
    lfdiff, sthdr = run.build_model("lfdiff"), run.build_model("sthdr")
    assert run.input_rule(lfdiff, 1000, 1500) == (
        (1008, 1504),
        "merge pads to 1008x1504 (multiple of 16)",
    )
    assert run.input_rule(sthdr, 1000, 1500)[0] == (1024, 1536)
    padded, reason = run.input_rule(sthdr, 64, 64, frames=2)
    assert padded is None and "exactly 3 frames" in reason
    assert run.input_rule(run.build_model("flexhdr"), 64, 64, frames=5) == ((64, 64), "")


def test_sizes_parse_and_bad_ones_are_refused():
    assert run.parse_size("4000x6000@1024") == (4000, 6000, 1024)
    assert run.size_key(4000, 6000, 1024) == "4000x6000@1024"
    with pytest.raises(SystemExit, match="HxW"):
        run.parse_size("big")
    with pytest.raises(SystemExit, match="unknown groups"):
        run.resolve_args(["--only", "latency,speed"])


def test_merging_reports_keeps_other_entries():
    old = {"results": {"latency": {"a": {"1x1": {"median_s": 1.0, "run": "r1"}}}}, "runs": {}}
    old["runs"]["r1"] = {"id": "r1"}
    old["runs"]["stale"] = {"id": "stale"}
    new = {"latency": {"a": {"2x2": {"median_s": 2.0, "run": "r2"}}}}
    report = run.merge_report(old, new, {"id": "r2", "machine": {"device": "cpu"}})
    assert set(report["results"]["latency"]["a"]) == {"1x1", "2x2"}
    assert set(report["runs"]) == {"r1", "r2"}  # runs no entry names are dropped


# -------------------------------------------------------- reduced precision ------
BF16_BOUND_DB = 0.05  # issue 20: CPU bf16 SAFNet-S on the fixture scenes, official weights


# Before the flow decoder and the refine net were kept in float32 (hdrzoo.ops.precision)
# the changes were -0.085 / -0.163 dB; with them in float32, -0.006 / -0.008 dB.
def test_cpu_bf16_safnet_s_stays_within_the_accuracy_bound(safnet_s_fixture):
    import hdrzoo

    torch.set_num_threads(2)
    weights = safnet_s_fixture / "SAFNet_S_siggraph17.pth"
    scenes = sorted(p for p in (safnet_s_fixture / "scenes").iterdir() if p.is_dir())
    brackets = [hdrzoo.read_bracket(s, divisor=65536) for s in scenes]
    module = hdrzoo.load("safnet_s", weights=weights, perceptual_weight=0.0)
    accuracy = run.precision_accuracy(module, brackets, "bf16")
    # fp32 reproduces the official PSNR-mu (fixture README), so the change is bf16's alone.
    assert accuracy["psnr_mu_fp32"] == pytest.approx([33.2079, 37.3750], abs=0.01)
    changes = accuracy["psnr_mu_change"]
    assert max(abs(c) for c in changes) <= BF16_BOUND_DB, f"PSNR-mu changes {changes} dB"


def test_docstring_examples_of_the_harness_run():
    import doctest

    for module in (run, make_docs):
        failures, tried = doctest.testmod(module, verbose=False)
        assert tried > 0 and failures == 0, module.__name__
