"""BracketAugment: one transform per sample, shared exactly by every frame and the GT.

The reference for "which transform" is the eight symmetries of the square written with
torch.flip / torch.rot90 (kornia does the augmenting).
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from hdrzoo.data.augment import BracketAugment
from hdrzoo.errors import HDRZooError, InputSizeError

SYMMETRIES = {
    "identity": lambda x: x,
    "rot90": lambda x: torch.rot90(x, 1, (-2, -1)),
    "rot180": lambda x: torch.rot90(x, 2, (-2, -1)),
    "rot270": lambda x: torch.rot90(x, 3, (-2, -1)),
    "hflip": lambda x: torch.flip(x, (-1,)),
    "vflip": lambda x: torch.flip(x, (-2,)),
    "transpose": lambda x: x.transpose(-2, -1),
    "antitranspose": lambda x: torch.rot90(x, 2, (-2, -1)).transpose(-2, -1),
}


def which_symmetry(before: torch.Tensor, after: torch.Tensor) -> str:
    matches = [name for name, f in SYMMETRIES.items() if torch.equal(f(before), after)]
    assert len(matches) == 1, matches  # random content: exactly one symmetry fits
    return matches[0]


def make_batch(b=6, n=3, size=8, gt_is_frame0=False):
    ldr = torch.rand(b, n, 3, size, size)
    gt = ldr[:, 0].clone() if gt_is_frame0 else torch.rand(b, 3, size, size) * 4
    return {
        "ldr": ldr,
        "gt": gt,
        "exposures": torch.tensor([[1.0, 4.0, 16.0][:n]] * b),
        "ref": torch.ones(b, dtype=torch.long),
        "name": [f"s{i}" for i in range(b)],
    }


def test_frames_and_gt_get_the_same_transform_exactly():
    torch.manual_seed(0)
    batch = make_batch(b=32, gt_is_frame0=True)
    out = BracketAugment(permute_channels=True)(batch)
    assert torch.equal(out["gt"], out["ldr"][:, 0])
    seen = set()
    for i in range(32):
        name = which_symmetry(batch["ldr"][i, 1].sort(0).values, out["ldr"][i, 1].sort(0).values)
        seen.add(name)
        f = SYMMETRIES[name]
        for j in range(3):  # per-pixel sorted channels ignore the permutation
            assert torch.equal(
                f(batch["ldr"][i, j].sort(0).values), out["ldr"][i, j].sort(0).values
            )
    assert len(seen) >= 5  # different samples draw different transforms


def test_geometric_transform_is_shared_by_unrelated_gt():
    torch.manual_seed(1)
    batch = make_batch(b=16)
    out = BracketAugment()(batch)
    for i in range(16):
        f = SYMMETRIES[which_symmetry(batch["ldr"][i, 0], out["ldr"][i, 0])]
        assert torch.equal(f(batch["gt"][i]), out["gt"][i])
        assert torch.equal(f(batch["ldr"][i]), out["ldr"][i])


def test_all_eight_symmetries_are_equally_likely():
    torch.manual_seed(2)
    b = 1600
    batch = {"ldr": torch.rand(b, 2, 3, 4, 4)}
    out = BracketAugment()(batch)
    counts = Counter(which_symmetry(batch["ldr"][i, 0, 0], out["ldr"][i, 0, 0]) for i in range(b))
    assert set(counts) == set(SYMMETRIES)
    for name, count in counts.items():
        assert 0.09 < count / b < 0.16, (name, count)


def test_channel_permutation_is_shared_by_frames_and_gt():
    torch.manual_seed(3)
    b, n = 64, 4
    # value = 10 * frame + channel, gt = 100 + channel: the permutation is readable
    ldr = (10.0 * torch.arange(n)[:, None] + torch.arange(3.0)[None, :])[None, :, :, None, None]
    ldr = ldr.expand(b, n, 3, 5, 5).clone()
    gt = (100.0 + torch.arange(3.0))[None, :, None, None].expand(b, 3, 5, 5).clone()
    out = BracketAugment(hflip=False, vflip=False, rot90=False, permute_channels=True)(
        {"ldr": ldr, "gt": gt}
    )
    permutations = set()
    for i in range(b):
        perm = (out["gt"][i, :, 0, 0] - 100).long().tolist()
        assert sorted(perm) == [0, 1, 2]
        for j in range(n):
            assert (out["ldr"][i, j, :, 0, 0] - 10 * j).long().tolist() == perm
        permutations.add(tuple(perm))
    assert len(permutations) >= 4 and (0, 1, 2) in permutations


def test_seeded_runs_repeat_and_other_seeds_differ():
    batch = make_batch(b=8)
    aug = BracketAugment(permute_channels=True)
    torch.manual_seed(42)
    first = aug(batch)
    torch.manual_seed(42)
    second = aug(batch)
    torch.manual_seed(43)
    third = aug(batch)
    assert torch.equal(first["ldr"], second["ldr"]) and torch.equal(first["gt"], second["gt"])
    assert not torch.equal(first["ldr"], third["ldr"])


def test_shapes_kept_values_permuted_other_keys_untouched():
    torch.manual_seed(4)
    batch = make_batch(b=4, n=5, size=16)
    batch["exposures"] = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]] * 4)
    out = BracketAugment(permute_channels=True)(batch)
    assert out["ldr"].shape == (4, 5, 3, 16, 16) and out["gt"].shape == (4, 3, 16, 16)
    assert out["ldr"].dtype == torch.float32
    for i in range(4):
        assert torch.equal(
            out["ldr"][i].flatten().sort().values, batch["ldr"][i].flatten().sort().values
        )
    assert out["exposures"] is batch["exposures"] and out["ref"] is batch["ref"]
    assert out["name"] is batch["name"]
    assert batch["ldr"].shape == (4, 5, 3, 16, 16)  # input dict not modified


def test_batch_without_gt():
    torch.manual_seed(5)
    out = BracketAugment()({"ldr": torch.rand(2, 3, 3, 8, 8)})
    assert "gt" not in out and out["ldr"].shape == (2, 3, 3, 8, 8)


def test_quarter_turns_need_square_crops():
    batch = {"ldr": torch.rand(2, 3, 3, 8, 12), "gt": torch.rand(2, 3, 8, 12)}
    with pytest.raises(InputSizeError, match="square"):
        BracketAugment()(batch)
    torch.manual_seed(6)
    out = BracketAugment(rot90=False)(batch)
    for i in range(2):
        name = which_symmetry(batch["ldr"][i, 0], out["ldr"][i, 0])
        assert name in {"identity", "hflip", "vflip", "rot180"}
        assert torch.equal(SYMMETRIES[name](batch["gt"][i]), out["gt"][i])


def test_bad_inputs_raise():
    with pytest.raises(InputSizeError):
        BracketAugment()({"ldr": torch.rand(3, 3, 8, 8)})
    with pytest.raises(InputSizeError):
        BracketAugment()({"ldr": torch.rand(2, 3, 3, 8, 8), "gt": torch.rand(2, 3, 4, 4)})
    with pytest.raises(HDRZooError):
        BracketAugment(p=1.5)


def test_probability_zero_is_identity_and_one_always_transforms():
    batch = make_batch(b=4)
    out = BracketAugment(p=0.0, permute_channels=True)(batch)
    assert torch.equal(out["ldr"], batch["ldr"]) and torch.equal(out["gt"], batch["gt"])
    torch.manual_seed(7)
    out = BracketAugment(hflip=True, vflip=False, rot90=False, p=1.0)(batch)
    assert torch.equal(out["ldr"], torch.flip(batch["ldr"], (-1,)))
