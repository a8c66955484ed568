"""Tests of the Bracket data contract (hdrzoo/bracket.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from hdrzoo.bracket import Bracket
from hdrzoo.errors import BracketError, HDRZooError


def frames(n: int = 3, h: int = 4, w: int = 5) -> torch.Tensor:
    return torch.rand(n, 3, h, w)


T3 = torch.tensor([1.0, 4.0, 16.0])


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ldr", "pattern"),
    [
        (torch.rand(3, 4, 5), r"\(N, 3, H, W\)"),  # missing frame axis
        (torch.rand(3, 1, 4, 5), "grey or RGBA"),  # grey frames
        (torch.rand(3, 4, 4, 5), "grey or RGBA"),  # RGBA frames
        (torch.rand(1, 3, 3, 4, 5), r"\(N, 3, H, W\)"),  # a batch is not a bracket
        (torch.rand(3, 3, 0, 5), "empty"),
    ],
)
def test_rejects_bad_frame_shapes(ldr, pattern):
    with pytest.raises(BracketError, match=pattern):
        Bracket(ldr, T3[: ldr.shape[0]] if ldr.ndim == 4 else T3, 0)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.bool])
def test_rejects_integer_frames_and_says_how_to_convert(dtype):
    with pytest.raises(BracketError, match="divisor"):
        Bracket(torch.zeros(3, 3, 4, 5, dtype=dtype), T3, 1)
    with pytest.raises(BracketError, match="divisor"):
        Bracket(np.zeros((3, 3, 4, 5), np.uint16), T3, 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_rejects_non_finite_frames(bad):
    ldr = frames()
    ldr[1, 2, 3, 4] = bad
    with pytest.raises(BracketError, match="NaN or Inf"):
        Bracket(ldr, T3, 1)


@pytest.mark.parametrize(
    ("exposures", "pattern"),
    [
        ([1.0, 4.0], "2 values for 3 frames"),
        ([1.0, 4.0, 16.0, 64.0], "4 values for 3 frames"),
        ([1.0, float("nan"), 16.0], "finite and positive"),
        ([1.0, float("inf"), 16.0], "finite and positive"),
        ([1.0, 0.0, 16.0], "finite and positive"),
        ([1.0, -4.0, 16.0], "finite and positive"),
        ([1.0, 4.0, 4.0], "duplicates"),
    ],
)
def test_rejects_bad_exposures(exposures, pattern):
    with pytest.raises(BracketError, match=pattern):
        Bracket(frames(), torch.tensor(exposures), 1, name="scene7")
    with pytest.raises(BracketError, match="scene7"):  # the message names the scene
        Bracket(frames(), torch.tensor(exposures), 1, name="scene7")


def test_accepts_integer_exposures_as_float():
    b = Bracket(frames(), torch.tensor([1, 4, 16]), 1)
    assert b.exposures.dtype == torch.float32 and b.exposures.tolist() == [1.0, 4.0, 16.0]


def test_rejects_integer_frames():
    with pytest.raises(BracketError, match="floating point"):
        Bracket(torch.randint(0, 255, (3, 3, 4, 5)), T3, 1)


@pytest.mark.parametrize("ref", [3, -1, 1.5, torch.tensor(7)])
def test_rejects_reference_out_of_range_or_fractional(ref):
    with pytest.raises(BracketError, match="ref"):
        Bracket(frames(), T3, ref)


@pytest.mark.parametrize(
    ("ref", "expected"), [(2, 2), (np.int64(0), 0), (1.0, 1), (torch.tensor(1), 1)]
)
def test_accepts_integral_references_of_any_type(ref, expected):
    bracket = Bracket(frames(), T3, ref)
    assert bracket.ref == expected and type(bracket.ref) is int


@pytest.mark.parametrize("ref", [None, "1", True, torch.tensor([0, 1])])
def test_rejects_references_that_are_not_one_integer(ref):
    with pytest.raises(BracketError, match="ref"):
        Bracket(frames(), T3, ref)


@pytest.mark.parametrize(
    "gt",
    [torch.rand(3, 4, 6), torch.rand(1, 4, 5), torch.rand(1, 3, 4, 5)],
)
def test_rejects_ground_truth_of_another_shape(gt):
    with pytest.raises(BracketError, match=r"\(3, 4, 5\)"):
        Bracket(frames(), T3, 1, gt)


def test_rejects_non_finite_or_integer_ground_truth():
    gt = torch.rand(3, 4, 5)
    gt[0, 0, 0] = float("nan")
    with pytest.raises(BracketError, match="NaN or Inf"):
        Bracket(frames(), T3, 1, gt)
    with pytest.raises(BracketError, match="floating point"):
        Bracket(frames(), T3, 1, torch.zeros(3, 4, 5, dtype=torch.int64))


def test_errors_are_hdrzoo_errors_and_value_errors():
    with pytest.raises(HDRZooError):
        Bracket(frames(), T3, 5)
    with pytest.raises(ValueError):
        Bracket(frames(), T3, 5)


# --------------------------------------------------------------------------------------------
# Normalisation and conversions
# --------------------------------------------------------------------------------------------


def test_exposures_are_divided_by_their_minimum_and_keep_frame_order():
    b = Bracket(frames(), torch.tensor([8.0, 2.0, 32.0]), 0)
    assert b.exposures.tolist() == [4.0, 1.0, 16.0]
    assert b.evs == [2.0, 0.0, 4.0]
    seconds = Bracket(frames(), [1 / 100, 1 / 25, 4 / 25], 1)
    np.testing.assert_allclose(seconds.exposures.numpy(), [1.0, 4.0, 16.0], rtol=1e-6)
    assert float(seconds.exposures.min()) == 1.0


def test_float64_and_numpy_inputs_become_float32_tensors():
    ldr = np.random.default_rng(0).random((3, 3, 4, 5))
    b = Bracket(ldr, np.array([1.0, 2.0, 4.0]), np.int32(1), gt=np.ones((3, 4, 5)))
    assert b.ldr.dtype == b.exposures.dtype == b.gt.dtype == torch.float32
    np.testing.assert_array_equal(b.ldr.numpy(), ldr.astype(np.float32))
    assert b.num_frames == 3 and b.size == (4, 5)


def test_sample_holds_the_unbatched_contract():
    ldr, gt = frames(), torch.rand(3, 4, 5)
    b = Bracket(ldr, T3, 2, gt, "s1", {"layout": "x"})
    s = b.sample()
    assert set(s) == {"ldr", "exposures", "ref", "name", "gt"}
    assert torch.equal(s["ldr"], ldr) and torch.equal(s["gt"], gt)
    assert torch.equal(s["exposures"], T3)
    assert s["ref"].dtype == torch.long and s["ref"].ndim == 0 and int(s["ref"]) == 2
    assert s["name"] == "s1"
    assert "gt" not in Bracket(ldr, T3, 2).sample()


def test_batch_adds_a_leading_dimension_of_one():
    ldr, gt = frames(), torch.rand(3, 4, 5)
    b = Bracket(ldr, T3, 1, gt, "s1").batch()
    assert torch.equal(b["ldr"], ldr[None]) and b["ldr"].shape == (1, 3, 3, 4, 5)
    assert torch.equal(b["exposures"], T3[None])
    assert torch.equal(b["ref"], torch.tensor([1])) and b["ref"].dtype == torch.long
    assert torch.equal(b["gt"], gt[None])
    assert b["name"] == ["s1"]


def test_default_collate_of_samples_gives_the_batch_layout():
    one = Bracket(frames(), T3, 1, torch.rand(3, 4, 5), "a")
    two = Bracket(frames(), torch.tensor([2.0, 1.0, 8.0]), 0, torch.rand(3, 4, 5), "b")
    batch = default_collate([one.sample(), two.sample()])
    assert batch["ldr"].shape == (2, 3, 3, 4, 5)
    assert torch.equal(batch["ldr"][1], two.ldr)
    assert torch.equal(batch["exposures"], torch.stack([one.exposures, two.exposures]))
    assert torch.equal(batch["ref"], torch.tensor([1, 0])) and batch["ref"].dtype == torch.long
    assert torch.equal(batch["gt"], torch.stack([one.gt, two.gt]))
    assert batch["name"] == ["a", "b"]
    single = default_collate([one.sample()])
    expected = one.batch()
    assert single.keys() == expected.keys()
    for key in ("ldr", "exposures", "ref", "gt"):
        assert torch.equal(single[key], expected[key]) and single[key].dtype == expected[key].dtype
    assert single["name"] == expected["name"]


def test_crop_takes_the_same_window_of_frames_and_ground_truth():
    ldr, gt = frames(3, 6, 7), torch.rand(3, 6, 7)
    b = Bracket(ldr, T3, 1, gt, "s", {"k": 1})
    c = b.crop(1, 2, 3, 4)
    assert torch.equal(c.ldr, ldr[:, :, 1:4, 2:6]) and torch.equal(c.gt, gt[:, 1:4, 2:6])
    assert torch.equal(c.exposures, b.exposures) and c.ref == 1 and c.name == "s"
    assert c.meta == b.meta and c.meta is not b.meta


def test_crop_beyond_the_frame_is_an_error():
    with pytest.raises(BracketError):
        Bracket(frames(3, 6, 7), T3, 1).crop(4, 4, 4, 4)


def test_evs_are_log2_of_relative_times():
    b = Bracket(frames(), torch.tensor([1.0, 2.0**1.5, 8.0]), 1)
    assert b.evs == pytest.approx([0.0, 1.5, 3.0], abs=1e-6)
    assert all(isinstance(v, float) for v in b.evs)
    assert math.isclose(2 ** b.evs[1], float(b.exposures[1]), rel_tol=1e-7)
