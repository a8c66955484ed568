"""Generate ``docs/benchmarks.md`` and its plots from ``benchmarks/results/*.json``.

    python benchmarks/make_docs.py            # after python benchmarks/run.py

Every number and every plot of the page comes from the committed JSON files: nothing here
measures anything. Groups without entries are listed as not measured, with the command
that measures them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
IMG_SUBDIR = "img"
DEVICES = ("cpu", "gpu")
MODEL_ORDER = ("classic", "safnet_s", "safnet", "flexhdr", "lfdiff", "sthdr")
HEADLINE_SIZE = "1000x1500"


# ------------------------------------------------------------------ formatting ----
def fmt_seconds(value: float | None) -> str:
    """``0.0123`` -> ``"12.3 ms"``, ``2.5`` -> ``"2.50 s"``.

    Examples:
        >>> fmt_seconds(0.0123), fmt_seconds(2.5), fmt_seconds(None)
        ('12.3 ms', '2.50 s', 'n/a')
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1.0:
        return f"{value * 1e3:.1f} ms"
    if value < 100:
        return f"{value:.2f} s"
    return f"{value:.0f} s"


def fmt_number(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def na_text(entry: dict[str, Any] | None) -> str | None:
    """``"n/a (reason)"`` for an entry that holds no measurement, else ``None``."""
    if entry is None:
        return "-"
    if "na" in entry:
        return f"n/a ({entry['na']})".replace("|", "/")
    return None


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("\n", " ") for c in row) + " |" for row in rows]
    return lines + [""]


def ordered(models: dict[str, Any]) -> list[str]:
    known = [m for m in MODEL_ORDER if m in models]
    return known + sorted(m for m in models if m not in known)


def size_order(key: str) -> tuple:
    body = key.split(" ")[0]
    size, _, tile = body.partition("@")
    try:
        h, w = (int(v) for v in size.split("x"))
    except ValueError:
        return (math.inf, key)
    return (h * w, 1 if tile else 0, key)


def columns_of(models: dict[str, dict[str, Any]]) -> list[str]:
    keys = {k for entries in models.values() for k in entries}
    return sorted(keys, key=size_order)


def not_measured(group: str, device: str) -> list[str]:
    flag = " --device cuda" if device == "gpu" else ""
    return [f"_Not measured yet: `python benchmarks/run.py --only {group}{flag}`._", ""]


# ----------------------------------------------------------------------- groups ----
def section_models(results: dict, device: str) -> list[str]:
    """One row per model, the figures its model card points to; "-" where not measured."""
    groups = ("params", "macs", "latency", "memory", "scaling")
    models = ordered({m: None for g in groups for m in results.get(g, {})})
    if not models:
        return not_measured(",".join(groups), device)

    def pick(group: str, model: str, key: str) -> dict[str, Any] | None:
        return results.get(group, {}).get(model, {}).get(key)

    rows = []
    for model in models:
        count = (pick("params", model, "all") or {}).get("parameters")
        macs = pick("macs", model, "512x512")
        memory = pick("memory", model, "1000x1500")
        scaling = pick("scaling", model, "time_vs_pixels")
        rows.append(
            [
                model,
                f"{count:,}" if count is not None else "-",
                (na_text(macs) or fmt_number(macs["macs"] / 1e9)) if macs else "-",
                _timing_cell(pick("latency", model, "1000x1500"))
                if pick("latency", model, "1000x1500")
                else "-",
                (
                    na_text(memory)
                    or f"{memory.get('peak_rss_mib', memory.get('peak_allocated_mib', 0)):.0f} MiB"
                )
                if memory
                else "-",
                (fmt_number(scaling["exponent"]) if "exponent" in scaling else na_text(scaling))
                if scaling
                else "-",
            ]
        )
    header = ["model", "parameters", "GMAC 512x512", "merge 1000x1500", "peak memory 1000x1500"]
    lines = table(header + ["time exponent"], rows)
    lines += [
        "The row each model card links to; the sections below give every size, the runs and "
        "how each figure is measured.",
        "",
    ]
    return lines


def section_cost(results: dict, device: str) -> list[str]:
    params, macs = results.get("params", {}), results.get("macs", {})
    if not params and not macs:
        return not_measured("params,macs", device)
    sizes = columns_of(macs)
    header = ["model", "parameters"] + [f"GMAC {s}" for s in sizes] + ["not counted"]
    rows = []
    for model in ordered({**params, **macs}):
        count = params.get(model, {}).get("all", {}).get("parameters")
        row = [model, f"{count:,}" if count is not None else "-"]
        missed: set[str] = set()
        for size in sizes:
            entry = macs.get(model, {}).get(size)
            text = na_text(entry)
            if text is None:
                row.append(fmt_number(entry["macs"] / 1e9))
                missed.update(entry.get("uncounted_ops", []))
            else:
                row.append(text)
        row.append(", ".join(f"`{m}`" for m in sorted(missed)) or "-")
        rows.append(row)
    lines = table(header, rows)
    lines += [
        "MACs are `torch.utils.flop_counter.FlopCounterMode` totals / 2 for one `merge` (batch 1, "
        "no gradient), at the size the network sees after `merge` pads to its size multiple. "
        "The counter has formulas for convolutions, matrix products and attention only; the "
        "last column lists the heavier ops it ran past without counting (e.g. the deformable "
        "convolutions' `deform_conv2d`, `grid_sampler` warps), so those models' totals are "
        "lower bounds.",
        "",
    ]
    return lines


def _timing_cell(entry: dict[str, Any] | None, key: str = "median_s") -> str:
    text = na_text(entry)
    if text is not None:
        return text
    reps = entry.get("reps")
    text = fmt_seconds(entry[key]) + (f" ({reps})" if reps else "")
    if entry.get("network_median_s") is not None:
        text += f"; network {fmt_seconds(entry['network_median_s'])}"
    return text


def section_latency(results: dict, device: str) -> list[str]:
    latency = results.get("latency", {})
    if not latency:
        return not_measured("latency", device)
    sizes = columns_of(latency)
    rows = [[m] + [_timing_cell(latency[m].get(s)) for s in sizes] for m in ordered(latency)]
    notes = sorted(
        {
            f"{m} {s}: {e['note']}"
            for m in latency
            for s, e in latency[m].items()
            if isinstance(e, dict) and e.get("note")
        }
    )
    lines = table(["model"] + sizes, rows)
    lines += [
        "Median of the timed repeats (their number in brackets) after one warm-up call; "
        "`HxW@T` merges in tiles of T pixels. One call is `hdrzoo.inference.merge` on a "
        "3-frame bracket, including padding and the copies to and from the device; on a GPU "
        "`network` is the network alone on inputs already there (CUDA events)."
        + (" Sizes the network pads: " + "; ".join(notes) + "." if notes else ""),
        "",
    ]
    return lines


def section_memory(results: dict, device: str) -> list[str]:
    memory = results.get("memory", {})
    if not memory:
        return not_measured("memory", device)
    sizes = columns_of(memory)
    rows = []
    for model in ordered(memory):
        row = [model]
        for size in sizes:
            entry = memory[model].get(size)
            text = na_text(entry)
            if text is not None:
                row.append(text)
            elif "peak_rss_mib" in entry:
                row.append(f"{entry['peak_rss_mib']:.0f} MiB")
            else:
                row.append(f"{entry['peak_allocated_mib']:.0f} MiB")
        rows.append(row)
    lines = table(["model"] + sizes, rows)
    if device == "cpu":
        lines += [
            "Peak resident set size (Linux `VmHWM`) of a fresh process that builds the model and "
            "a random bracket and merges it once: it includes the Python interpreter, torch and "
            "the input frames.",
            "",
        ]
    else:
        lines += ["`torch.cuda.max_memory_allocated` during one merge.", ""]
    return lines


def section_scaling(results: dict, device: str, img: str | None) -> list[str]:
    scaling = results.get("scaling", {})
    if not scaling:
        return not_measured("scaling", device)
    rows = []
    for model in ordered(scaling):
        entry = scaling[model].get("time_vs_pixels", {})
        points = [p for p in entry.get("points", []) if "median_s" in p]
        sizes = ", ".join(
            f"{p['size'][0]}x{p['size'][1]}: {fmt_seconds(p['median_s'])}" for p in points
        )
        exponent = fmt_number(entry.get("exponent")) if "exponent" in entry else na_text(entry)
        rows.append([model, exponent, sizes or "-"])
    lines = table(["model", "exponent", "median time per size"], rows)
    lines += [
        "The exponent is the least-squares slope of log(time) against log(pixels): 1 means time "
        "linear in the number of pixels.",
        "",
    ]
    if img:
        lines += [f"![Latency against image size]({img})", ""]
    return lines


def section_training(results: dict, device: str) -> list[str]:
    training = results.get("training", {})
    if not training:
        return not_measured("training", device)
    rows = []
    for model in ordered(training):
        for config, entry in sorted(training[model].items()):
            text = na_text(entry)
            if text is not None:
                rows.append([model, config, "-", "-", text])
                continue
            rows.append(
                [
                    model,
                    config,
                    f"{entry['crop']}, batch {entry['batch']}",
                    fmt_seconds(entry["step_median_s"]),
                    fmt_number(entry["samples_per_s"]),
                ]
            )
    lines = table(["model", "config", "crop", "step (median)", "samples/s"], rows)
    lines += [
        "One optimiser step of the model's loss on a fixed synthetic batch at the config's crop "
        "size (data generation excluded; see the synthetic data table), perceptual term off.",
        "",
    ]
    return lines


def quality_points(results: dict) -> tuple[dict[str, tuple[float, float]], str]:
    """``{model: (latency s, PSNR-mu)}`` and the latency's description.

    The latency is the 1000x1500 merge time when every scored model has one, else each
    model's median merge time on the quality scenes themselves.
    """
    quality = results.get("quality", {})
    latency = results.get("latency", {})
    scored = {
        m: q["synthetic"]
        for m, q in quality.items()
        if m != "reference_frame" and "psnr_mu" in q.get("synthetic", {})
    }
    headline = {m: latency.get(m, {}).get(HEADLINE_SIZE, {}).get("median_s") for m in scored}
    if scored and all(v is not None for v in headline.values()):
        return {m: (headline[m], e["psnr_mu"]) for m, e in scored.items()}, (
            f"merge time at {HEADLINE_SIZE}"
        )
    points = {m: (e["merge_median_s"], e["psnr_mu"]) for m, e in scored.items()}
    size = next(iter(scored.values()), {}).get("scene_size", "?")
    return points, f"merge time at {size}x{size} (the quality scenes)"


def section_quality(results: dict, device: str, img: str | None) -> list[str]:
    quality = results.get("quality", {})
    if not quality:
        return not_measured("quality", device)
    rows = []
    meta: dict[str, Any] = {}
    for model in ordered(quality):
        entry = quality[model].get("synthetic")
        text = na_text(entry)
        if text is not None:
            rows.append([model, text, "-", "-", "-"])
            continue
        meta = meta or entry
        trained = entry.get("trained") or {}
        steps = ", ".join(
            f"{k}: {v['steps']} steps in {v['seconds']:.0f} s" for k, v in trained.items()
        )
        merge_s = entry.get("merge_median_s")
        rows.append(
            [
                model,
                fmt_number(entry["psnr_mu"]),
                steps or ("not trained" if model != "reference_frame" else "-"),
                fmt_seconds(merge_s) if merge_s is not None else "-",
                " / ".join(fmt_number(v) for v in entry.get("psnr_mu_per_scene", [])),
            ]
        )
    lines = table(["model", "PSNR-mu (dB)", "training", "merge (scene)", "per scene"], rows)
    if meta:
        seeds = meta.get("scene_seeds", [])
        lines += [
            f"Each learned model is trained from scratch with its `configs/<model>/synthetic*.yaml` "
            f"(perceptual term off, offline) for the same wall-clock budget of "
            f"{meta.get('budget_s', 0):.0f} s (LF-Diff: half for stage 1, half for stage 2 from "
            f"it), then scored on {len(seeds)} fixed synthetic scenes of "
            f"{meta.get('scene_size')}x{meta.get('scene_size')} (seeds {seeds[0] if seeds else '?'} "
            f"onward, EV -2 / 0 / +2). `reference_frame` is the reference exposure alone.",
            "",
        ]
    if img:
        lines += [f"![Quality against latency]({img})", ""]
    return lines


def section_precision(results: dict, device: str) -> list[str]:
    precision = results.get("precision", {})
    if not precision:
        return not_measured("precision", device)
    rows = []
    for model in ordered(precision):
        for name, entry in sorted(precision[model].items()):
            text = na_text(entry)
            if text is not None:
                rows.append([model, name, text, "-", "-", "-"])
                continue
            changes = " / ".join(f"{v:+.3f}" for v in entry["psnr_mu_change"])
            size = entry.get("timing_size", ["?", "?"])
            rows.append(
                [
                    model,
                    name,
                    f"{entry['time_ratio']:.2f} at {size[0]}x{size[1]}",
                    changes,
                    f"{entry['max_abs_diff']:.2g}",
                    entry.get("scenes", ""),
                ]
            )
    lines = table(
        ["model", "precision", "time / fp32", "PSNR-mu change (dB)", "max abs diff", "scenes"],
        rows,
    )
    lines += [
        "Autocast through `merge(precision=...)`; the time ratio is the median of per-pair "
        "ratios of fp32 and reduced-precision calls alternated in one process.",
        "",
    ]
    return lines


def section_safnet_speed(results: dict, device: str) -> list[str]:
    speed = results.get("safnet_speed", {})
    if not speed:
        return not_measured("safnet_speed", device)
    rows = []
    for model in ordered(speed):
        for size, entry in speed[model].items():
            text = na_text(entry)
            if text is not None:
                rows.append([model, size, text, "-", "-", "-"])
                continue
            rss = entry.get("peak_rss_mib")
            rows.append(
                [
                    model,
                    size,
                    f"{fmt_seconds(entry['baseline_median_s'])} -> {fmt_seconds(entry['hdrzoo_median_s'])}",
                    f"{entry['ratio_median']:.2f}",
                    f"{rss['baseline']:.0f} -> {rss['hdrzoo']:.0f} MiB" if rss else "-",
                    f"{entry['max_abs_diff_hdr']:.1e}",
                ]
            )
    lines = table(
        ["model", "size", "baseline -> hdrzoo", "ratio (median)", "peak RSS", "max abs diff"], rows
    )
    lines += [
        "`benchmarks/safnet_speed.py`: the official SAFNet code is not available here; the "
        "baseline is hdrzoo's first implementation that matched the official outputs, kept "
        "unoptimised in `benchmarks/safnet_baseline.py`. Calls alternate within one process.",
        "",
    ]
    return lines


def section_synthetic(results: dict, device: str) -> list[str]:
    data = results.get("synthetic_data", {}).get("generator", {})
    if not data:
        return not_measured("synthetic_data", device)
    rows = []
    for key, entry in sorted(data.items()):
        text = na_text(entry)
        if text is not None:
            rows.append([key, text, "-"])
            continue
        rows.append([key, f"{entry['median_ms']:.0f} ms", f"{entry['p90_ms']:.0f} ms"])
    return table(["sample (3 frames, one thread)", "median", "p90"], rows)


def section_gpu_reference(report: dict) -> list[str]:
    reference = report.get("reference", {})
    latency = report.get("results", {}).get("latency", {})
    papers = reference.get("paper_seconds", {})
    goals = reference.get("goal_seconds_h100", {})
    models = ordered({**papers, **goals, **latency})
    keys = sorted(
        {k for m in latency.values() for k in m if k.startswith(HEADLINE_SIZE)}, key=size_order
    )
    rows = []
    for model in models:
        paper = papers.get(model)
        row = [
            model,
            f"{fmt_seconds(paper['seconds'])} ({paper['device']})" if paper else "-",
            fmt_seconds(goals[model]) if model in goals else "-",
        ]
        row += [_timing_cell(latency.get(model, {}).get(k)) for k in keys]
        rows.append(row)
    return table(["model", "paper", "goal (H100/H200)"] + keys, rows)


def section_legacy(report: dict) -> list[str]:
    legacy = report.get("legacy")
    if not legacy:
        return []
    lines = ["## Earlier measurements", "", legacy.get("note", ""), ""]
    for block in legacy.get("tables", []):
        lines += [f"### {block['title']}", ""]
        if block.get("source"):
            lines += [block["source"], ""]
        if block.get("columns"):
            lines += table(block["columns"], block["rows"])
        lines += [p for text in block.get("text", []) for p in (text, "")]
    return lines


# ------------------------------------------------------------------------ plots ----
def plot_latency(results: dict, path: Path, title: str) -> bool:
    """Log-log median merge time against pixels, one line per model (scaling + latency)."""
    scaling, latency = results.get("scaling", {}), results.get("latency", {})
    series: dict[str, list[tuple[int, float]]] = {}
    for model, entries in scaling.items():
        for p in entries.get("time_vs_pixels", {}).get("points", []):
            if "median_s" in p:
                series.setdefault(model, []).append((p["size"][0] * p["size"][1], p["median_s"]))
    for model, entries in latency.items():
        for key, entry in entries.items():
            if " " in key or "@" in key or "median_s" not in entry:
                continue  # untiled fp32 points only
            h, w = (int(v) for v in key.split("x"))
            series.setdefault(model, []).append((h * w, entry["median_s"]))
    if not series:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model in ordered(series):
        points = sorted(set(series[model]))
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=model)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pixels (H x W)")
    ax.set_ylabel("merge time (s)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, path)
    return True


def plot_quality(results: dict, path: Path, title: str) -> bool:
    points, what = quality_points(results)
    if not points:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model in ordered(points):
        x, y = points[model]
        ax.scatter([x], [y], s=40)
        ax.annotate(model, (x, y), textcoords="offset points", xytext=(5, 5))
    reference = results.get("quality", {}).get("reference_frame", {}).get("synthetic", {})
    if "psnr_mu" in reference:
        ax.axhline(
            reference["psnr_mu"], linestyle="--", color="grey", label="reference frame alone"
        )
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel(f"{what} (s)")
    ax.set_ylabel("PSNR-mu (dB)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No software / date metadata: the same JSON gives the same bytes.
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)


# ------------------------------------------------------------------------- page ----
def machine_lines(device: str, report: dict, source: str) -> list[str]:
    lines = [f"Source: `{source}`.", ""]
    runs = report.get("runs", {})
    if runs:
        rows = []
        for run in sorted(runs.values(), key=lambda r: r["date"]):
            m = run.get("machine", {})
            rows.append(
                [
                    run["date"],
                    m.get("device_name", "?"),
                    str(m.get("threads", "?")),
                    m.get("torch", "?"),
                    ", ".join(m.get("cpu_flags", [])) or "-",
                    f"`{run.get('git', '?')[:12]}`",
                    (" ".join(run.get("argv", [])) or "(defaults)")
                    + ("" if run.get("complete", True) else " (interrupted)"),
                ]
            )
        lines += table(
            ["run", "device", "threads", "torch", "CPU features", "commit", "arguments"], rows
        )
    if any(run.get("quick") for run in runs.values()):
        lines += [
            '!!! warning "Smoke-run entries"',
            "    Some entries come from a `--quick` run at tiny sizes; they test the harness and "
            "say nothing about speed.",
            "",
        ]
    return lines


def render(reports: dict[str, dict], img_dir: Path, img_link: str) -> str:
    """The page's markdown; writes the plots into ``img_dir`` (linked as ``img_link/NAME``)."""
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/make_docs.py from benchmarks/results/*.json; do not edit. -->",
        "",
        "Every figure on this page comes from the committed results in `benchmarks/results/` "
        "(`cpu.json`, and `gpu.json` where a GPU was measured), each entry naming the run "
        "(date, machine, commit, arguments) that measured it. Timings are measured, never "
        "asserted in tests.",
        "",
        "```bash",
        "python benchmarks/run.py                        # every group, every model (CPU)",
        "python benchmarks/run.py --only latency --models safnet_s --sizes 1000x1500",
        "python benchmarks/run.py --device cuda --compile  # on a GPU: gpu.json",
        "python benchmarks/make_docs.py                  # this page and its plots",
        "```",
        "",
        "A run of a subset replaces only its own entries. Models run with untrained weights "
        "(speed and memory do not depend on them) unless a table says otherwise.",
        "",
    ]
    for device in DEVICES:
        report = reports.get(device)
        if report is None:
            if device == "gpu":
                lines += [
                    "## GPU",
                    "",
                    "_No GPU run committed yet: `python benchmarks/run.py --device cuda` (add "
                    "`--compile` for `torch.compile`) writes `benchmarks/results/gpu.json`._",
                    "",
                ]
            continue
        results = report.get("results", {})
        title = "CPU" if device == "cpu" else "GPU"
        lines += [f"## {title}", ""]
        lines += machine_lines(device, report, f"benchmarks/results/{device}.json")
        latency_png = img_dir / f"benchmarks_{device}_latency.png"
        quality_png = img_dir / f"benchmarks_{device}_quality.png"
        has_latency = plot_latency(results, latency_png, f"{title}: merge time against size")
        has_quality = plot_quality(results, quality_png, f"{title}: quality against time")
        link = f"{img_link}/" if img_link else ""
        if device == "gpu":
            lines += ["### Against the papers and the goals", ""]
            lines += section_gpu_reference(report)
        lines += ["### Per model", ""] + section_models(results, device)
        lines += ["### Parameters and multiply-accumulates", ""] + section_cost(results, device)
        lines += ["### Inference latency", ""] + section_latency(results, device)
        lines += ["### Peak memory", ""] + section_memory(results, device)
        lines += ["### Time against image size", ""]
        lines += section_scaling(results, device, link + latency_png.name if has_latency else None)
        lines += ["### Training throughput", ""] + section_training(results, device)
        lines += ["### Quality against time", ""]
        lines += section_quality(results, device, link + quality_png.name if has_quality else None)
        lines += ["### Reduced precision", ""] + section_precision(results, device)
        lines += ["### SAFNet against its parity-first baseline", ""]
        lines += section_safnet_speed(results, device)
        lines += ["### Synthetic data", ""] + section_synthetic(results, device)
        lines += section_legacy(report)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def load_reports(folder: Path) -> dict[str, dict]:
    reports = {}
    for device in DEVICES:
        path = folder / f"{device}.json"
        if path.is_file():
            reports[device] = json.loads(path.read_text(encoding="utf-8"))
    return reports


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="folder of cpu.json / gpu.json"
    )
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks.md", help="page to write")
    args = parser.parse_args(argv)
    img_dir = args.out.parent / IMG_SUBDIR
    page = render(load_reports(args.results), img_dir, IMG_SUBDIR)
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out} and its plots in {img_dir}")
    return args.out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
