"""Processes killed mid-way: ``hdrzoo merge`` batches and ``hdrzoo fit`` runs.

Each test starts the real command in a child process (``python -m hdrzoo.cli``, with this
worktree first on ``PYTHONPATH``), lets it reach a known point, kills it, starts it again and
checks what is on disk and what the second run did.

Reaching "a known point" deterministically needs a pause: for ``merge`` a wrapper pauses the
child around ``hdrzoo.io`` writes (``python -c HOOK merge ...`` runs ``hdrzoo.cli`` as
``__main__`` after installing it); for ``fit`` the ``_rel_fit.StallAt`` callback freezes the
run after a chosen step. The restarted runs have no pause.

Signals: SIGKILL is the harsh case (OOM killer, node loss, ``kill -9``): nothing in the
process runs, so only what was already on disk counts. SIGTERM (what schedulers send before
preemption) is handled by Lightning: it finishes the current batch, calls ``on_exception``
(where ``--checkpoint.save_on_exception true`` saves a checkpoint at that exact step) and
exits; see ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _rel_helpers import (
    hidden_or_temporary,
    listing,
    make_bracket,
    python_cmd,
    run_python,
    subprocess_env,
)

import hdrzoo
from hdrzoo.io import read_bracket, read_hdr, write_bracket

START_TIMEOUT_S = 120  # a cold start of torch + Lightning on a busy two-core machine

# Runs ``hdrzoo.cli`` as ``__main__`` (what ``python -m hdrzoo.cli`` does) after wrapping
# hdrzoo.io so that the child pauses where the test wants to kill it:
#   HDRZOO_TEST_PAUSE=after  -> sleep after every completed write_hdr (between scenes)
#   HDRZOO_TEST_PAUSE=inside:K -> in the K-th write_hdr, sleep after the temporary file is
#                                 fully written and before it is renamed into place
HOOK = textwrap.dedent(
    """
    import os, runpy, time
    import hdrzoo.io as hio
    import hdrzoo.io.writers as hio_writers

    mode = os.environ["HDRZOO_TEST_PAUSE"]
    calls = [0]
    if mode == "after":
        real_write_hdr = hio.write_hdr

        def write_hdr(*args, **kwargs):
            result = real_write_hdr(*args, **kwargs)
            time.sleep(float(os.environ.get("HDRZOO_TEST_PAUSE_S", "2")))
            return result

        hio.write_hdr = write_hdr
    else:
        stop_at = int(mode.split(":")[1])
        real_write_to = hio_writers._write_hdr_to

        def write_to(tmp, hdr, target):
            real_write_to(tmp, hdr, target)
            calls[0] += 1
            if calls[0] == stop_at:
                time.sleep(300)

        hio_writers._write_hdr_to = write_to
    runpy.run_module("hdrzoo.cli", run_name="__main__", alter_sys=True)
    """
)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = START_TIMEOUT_S):
    """Poll ``condition()`` every 20 ms; fail if the process exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the child exited ({process.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def kill(process: subprocess.Popen, signum: int = signal.SIGKILL) -> int:
    process.send_signal(signum)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"the child ignored signal {signum} for 60 s")
    return process.returncode


def summary_rows(stdout: str) -> dict[str, str]:
    """``scene -> status`` from the Rich table ``hdrzoo merge`` prints."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 5 and cells[0] not in ("", "scene"):
            rows[cells[0]] = cells[1]
    return rows


# --------------------------------------------------------------------------------------------
# hdrzoo merge
# --------------------------------------------------------------------------------------------

SCENES = [f"scene_{i}" for i in range(6)]


def write_batch(root: Path) -> tuple[Path, Path]:
    """Six small scenes under ``root/data``; the output folder ``root/out``."""
    data = root / "data"
    for i, name in enumerate(SCENES):
        write_bracket(data / name, make_bracket(h=24, w=32, seed=i))
    return data, root / "out"


@pytest.fixture
def batch(tmp_path) -> tuple[Path, Path]:
    return write_batch(tmp_path)


def start_merge(data: Path, out: Path, cwd: Path, pause: str) -> subprocess.Popen:
    return subprocess.Popen(
        python_cmd("-c", HOOK, "merge", str(data), "--out", str(out)),
        cwd=cwd,
        env=subprocess_env(HDRZOO_TEST_PAUSE=pause),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished_outputs(out: Path) -> list[Path]:
    return sorted(out.glob("[!.]*.exr")) if out.is_dir() else []


def assert_complete_and_correct(data: Path, out: Path) -> None:
    """Every scene has its EXR, equal to merging the scene directly; nothing else is there."""
    classic = hdrzoo.load("classic")
    assert listing(out) == [f"{name}.exr" for name in SCENES]
    for name in SCENES:
        expected = classic.merge(read_bracket(data / name))
        assert torch.equal(read_hdr(out / f"{name}.exr"), expected), name


def test_merge_killed_between_scenes_resumes_and_skips_the_finished_ones(batch, tmp_path):
    data, out = batch
    child = start_merge(data, out, tmp_path, pause="after")
    wait_for(lambda: finished_outputs(out), child, "the first output")
    kill(child)
    done = [p.stem for p in finished_outputs(out)]
    assert 1 <= len(done) < len(SCENES)
    assert hidden_or_temporary(out) == []  # killed between writes: nothing half-done
    for name in done:  # what is there is complete
        assert read_hdr(out / f"{name}.exr").shape == (3, 24, 32)

    rerun = run_python(["-m", "hdrzoo.cli", "merge", str(data), "--out", str(out)], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    rows = summary_rows(rerun.stdout)
    assert rows == {name: "skipped (exists)" if name in done else "ok" for name in SCENES}, (
        rerun.stdout
    )
    assert_complete_and_correct(data, out)


@pytest.fixture(scope="module")
def killed_inside_a_write(tmp_path_factory):
    """A merge killed while the third EXR sat complete in its temporary file, and a rerun."""
    tmp_path = tmp_path_factory.mktemp("inside")
    data, out = write_batch(tmp_path)
    child = start_merge(data, out, tmp_path, pause="inside:3")
    temporary = wait_for(lambda: sorted(out.glob(".scene_2.*.tmp.exr")), child, "the 3rd write")
    kill(child)
    after_kill = listing(out)
    rerun = run_python(["-m", "hdrzoo.cli", "merge", str(data), "--out", str(out)], tmp_path)
    return data, out, temporary, after_kill, rerun


def test_merge_killed_inside_a_write_never_exposes_a_partial_file(killed_inside_a_write):
    data, out, temporary, after_kill, rerun = killed_inside_a_write
    # Only the two finished scenes carry final names; the third is still a hidden temporary.
    assert [n for n in after_kill if not n.startswith(".")] == ["scene_0.exr", "scene_1.exr"]
    assert [out / n for n in after_kill if n.startswith(".")] == temporary
    assert rerun.returncode == 0, rerun.stderr
    rows = summary_rows(rerun.stdout)
    assert rows["scene_0"] == rows["scene_1"] == "skipped (exists)"
    assert all(rows[name] == "ok" for name in SCENES[2:])
    classic = hdrzoo.load("classic")
    for name in SCENES:
        assert torch.equal(read_hdr(out / f"{name}.exr"), classic.merge(read_bracket(data / name)))


def test_merge_rerun_removes_the_temporary_file_of_a_killed_write(killed_inside_a_write):
    data, out, temporary, after_kill, rerun = killed_inside_a_write
    assert rerun.returncode == 0
    assert hidden_or_temporary(out) == []


# --------------------------------------------------------------------------------------------
# hdrzoo fit
# --------------------------------------------------------------------------------------------

STEPS_PER_EPOCH = 8  # train_size 16 / batch_size 2
CHECKPOINT_EVERY = 2
STALL_AT = 5  # the run freezes after step 5; the newest periodic checkpoint is step 4

FIT_CONFIG = """
seed_everything: 0
model:
  class_path: _rel_fit.TinyFitModule
data:
  class_path: hdrzoo.data.modules.SyntheticDataModule
  init_args:
    train_size: 16
    val_size: 2
    test_size: 2
    crop_size: 16
    eval_size: 16
    batch_size: 2
    eval_batch_size: 2
trainer:
  accelerator: cpu
  devices: 1
  max_epochs: 1
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_model_summary: false
  callbacks:
    - class_path: _rel_fit.Recorder
      init_args: {folder: record}
    - class_path: _rel_fit.StallAt
      init_args: {folder: record}
checkpoint:
  every_n_train_steps: 2
"""


def fit_command(*extra: str) -> list[str]:
    return ["-m", "hdrzoo.cli", "fit", "--config", "fit.yaml", *extra]


def records(folder: Path) -> list[dict]:
    path = folder / "record" / "steps.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def start_records(folder: Path) -> list[dict]:
    """What each run started from (``Recorder.on_train_start``), oldest first."""
    files = sorted((folder / "record").glob("start_*.pt"), key=lambda p: p.stat().st_mtime_ns)
    return [torch.load(p, weights_only=True) for p in files]


def interrupted_fit(root: Path, signum: int, *extra: str) -> tuple[Path, int]:
    """Start ``hdrzoo fit`` in ``root``, let it stall after step STALL_AT, send ``signum``."""
    root.mkdir(parents=True)
    (root / "fit.yaml").write_text(FIT_CONFIG)
    child = subprocess.Popen(
        python_cmd(*fit_command(*extra)),
        cwd=root,
        env=subprocess_env(HDRZOO_TEST_STALL_AT=str(STALL_AT), HDRZOO_TEST_REGISTER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (root / "record" / "stalled").is_file(), child, f"step {STALL_AT}")
    return root, kill(child, signum)


@pytest.fixture(scope="module")
def sigkilled_fit(tmp_path_factory) -> Path:
    root, code = interrupted_fit(tmp_path_factory.mktemp("sigkill") / "run", signal.SIGKILL)
    assert code == -signal.SIGKILL
    return root


def checkpoint_files(root: Path) -> list[Path]:
    return sorted((root / "runs").rglob("*.ckpt"))


def assert_resumed_from(root: Path, checkpoint: dict, resumed: subprocess.CompletedProcess):
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    start = start_records(root)[-1]
    # Lightning restored the step counter, the optimizer state and the weights.
    assert start["global_step"] == checkpoint["global_step"]
    saved = checkpoint["optimizer_states"][0]
    assert start["optimizer"]["param_groups"] == saved["param_groups"]
    assert start["optimizer"]["state"].keys() == saved["state"].keys() and saved["state"]
    for index, state in saved["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(start["optimizer"]["state"][index][key], state[key]), (index, key)
    # ... and counted on from there to the end of the epoch, not from zero.
    steps = [r["global_step"] for r in records(root) if r["event"] == "step"]
    own = [r for r in records(root) if r["event"] == "step" and r["pid"] == resumed.pid]
    assert [r["global_step"] for r in own] == list(
        range(checkpoint["global_step"] + 1, STEPS_PER_EPOCH + 1)
    ), steps


def run_resume(root: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run ``hdrzoo fit`` again in ``root``; the result carries ``.pid``, which the Recorder
    wrote into every record of that run."""
    child = subprocess.Popen(
        python_cmd(*fit_command(*extra)),
        cwd=root,
        env=subprocess_env(HDRZOO_TEST_REGISTER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate(timeout=300)
    done = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    done.pid = child.pid
    return done


def test_fit_killed_mid_epoch_resumes_from_its_last_checkpoint(sigkilled_fit):
    root = sigkilled_fit
    assert [r["global_step"] for r in records(root)] == list(range(1, STALL_AT + 1))
    last = next(p for p in checkpoint_files(root) if p.name == "last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == STALL_AT - STALL_AT % CHECKPOINT_EVERY  # step 4
    assert checkpoint["hdrzoo"] == {"model": "tiny_fit"}

    resumed = run_resume(root, "--ckpt_path", str(last))
    assert_resumed_from(root, checkpoint, resumed)


def test_fit_ckpt_path_last_resumes_a_killed_run(sigkilled_fit, tmp_path):
    # A copy, so that this resume does not disturb the explicit-path test's files.
    import shutil

    root = tmp_path / "run"
    shutil.copytree(sigkilled_fit, root)
    for start in (root / "record").glob("start_*.pt"):
        start.unlink()
    checkpoint = torch.load(
        next(p for p in checkpoint_files(root) if p.name == "last.ckpt"), weights_only=True
    )
    resumed = run_resume(root, "--ckpt_path", "last")
    assert_resumed_from(root, checkpoint, resumed)


@pytest.fixture(scope="module")
def sigtermed_fit(tmp_path_factory) -> tuple[Path, int]:
    return interrupted_fit(
        tmp_path_factory.mktemp("sigterm") / "run",
        signal.SIGTERM,
        "--checkpoint.save_on_exception",
        "true",
    )


def test_fit_sigterm_stops_after_the_batch_and_checkpoints_that_step(sigtermed_fit):
    root, _ = sigtermed_fit
    assert [r["global_step"] for r in records(root)] == list(range(1, STALL_AT + 1))
    names = {
        p.name: torch.load(p, weights_only=True)["global_step"] for p in checkpoint_files(root)
    }
    # The newest periodic checkpoint (save_top_k=1 keeps one), one at the exact step of the
    # signal, and last.ckpt updated to that step.
    assert names == {"epoch=0-step=4.ckpt": 4, "epoch=0-step=5.ckpt": 5, "last.ckpt": 5}


def test_fit_stopped_by_sigterm_exits_with_a_failure_status(sigtermed_fit):
    _, code = sigtermed_fit
    assert code != 0
