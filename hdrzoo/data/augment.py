"""One augmentation for a whole bracket: the same flips, 90-degree turn and colour order for
every frame and the ground truth of a sample.

It runs on the batch after the transfer to the device (``on_after_batch_transfer``), with
kornia: frames and ground truth are stacked along channels so that one draw of parameters
per sample moves them all together, then split again.
"""

from __future__ import annotations

from typing import Any

import kornia.augmentation as K
import torch
from torch import nn

from hdrzoo.errors import HDRZooError, InputSizeError

__all__ = ["BracketAugment"]


class BracketAugment(nn.Module):
    """Random flips, 90-degree rotations and RGB permutations shared by a bracket and its GT.

    Every sample of the batch draws its own parameters; all frames of that sample and its
    ground truth receive the same transform. With the defaults each of the 8 symmetries of
    the square is equally likely (horizontal flip, vertical flip and a quarter turn, each
    with probability 1/2). Rotations use nearest resampling at whole quarter turns, which
    is exact (a pure re-indexing of pixels). Exposures and ``ref`` are unchanged; other
    keys of the batch are passed through untouched.

    Randomness comes from torch's global generator (as in every kornia augmentation):
    ``torch.manual_seed`` or Lightning's ``seed_everything`` makes it reproducible.

    Args:
        hflip: mirror left-right with probability ``p``.
        vflip: mirror top-bottom with probability ``p``.
        rot90: turn by 90 degrees with probability ``p``. Needs square crops (``H == W``):
            a quarter turn of a non-square batch cannot keep its shape.
        permute_channels: shuffle R, G, B (one random permutation per sample, the same for
            every frame and the ground truth) with probability ``p``.
        p: probability of each of the transforms above.

    Examples:
        >>> aug = BracketAugment()
        >>> batch = {"ldr": torch.rand(2, 3, 3, 8, 8), "gt": torch.rand(2, 3, 8, 8)}
        >>> out = aug(batch)
        >>> out["ldr"].shape, out["gt"].shape
        (torch.Size([2, 3, 3, 8, 8]), torch.Size([2, 3, 8, 8]))
    """

    def __init__(
        self,
        hflip: bool = True,
        vflip: bool = True,
        rot90: bool = True,
        permute_channels: bool = False,
        p: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise HDRZooError(f"BracketAugment: p must be a probability in [0, 1], got {p}")
        self.rot90 = rot90
        transforms: list[nn.Module] = []
        if hflip:
            transforms.append(K.RandomHorizontalFlip(p=p))
        if vflip:
            transforms.append(K.RandomVerticalFlip(p=p))
        if rot90:
            transforms.append(K.RandomRotation90(times=(1, 1), p=p, resample="nearest"))
        self.geometric = (
            K.AugmentationSequential(*transforms, data_keys=["input"]) if transforms else None
        )
        self.channels = K.RandomChannelShuffle(p=p) if permute_channels else None

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Augment a batch dict.

        Args:
            batch: ``ldr (B, N, 3, H, W)`` and optionally ``gt (B, 3, H, W)``; other keys
                (``exposures``, ``ref``, ``name``, ...) are copied unchanged.

        Returns:
            A new dict with ``ldr`` and ``gt`` transformed, shapes unchanged.
        """
        ldr = batch["ldr"]
        if ldr.ndim != 5 or ldr.shape[2] != 3:
            raise InputSizeError(
                f"BracketAugment expects batched frames ldr (B, N, 3, H, W), got {tuple(ldr.shape)}"
            )
        b, n, c, h, w = ldr.shape
        gt = batch.get("gt")
        if gt is not None and tuple(gt.shape) != (b, c, h, w):
            raise InputSizeError(
                f"BracketAugment: gt {tuple(gt.shape)} does not match ldr {tuple(ldr.shape)}; "
                f"expected ({b}, {c}, {h}, {w})"
            )
        if self.rot90 and h != w:
            raise InputSizeError(
                f"BracketAugment(rot90=True) needs square crops, got {h} x {w}; "
                "crop to a square (e.g. crop_size=128) or pass rot90=False"
            )
        groups = n + (gt is not None)
        stacked = ldr.reshape(b, n * c, h, w)
        if gt is not None:
            stacked = torch.cat([stacked, gt.to(ldr.dtype)], dim=1)
        if self.geometric is not None:
            stacked = self.geometric(stacked)
        if self.channels is not None:
            # frames side by side along the height: one permutation of the 3 colour
            # channels per sample covers every frame and the ground truth
            tall = stacked.reshape(b, groups, c, h, w).transpose(1, 2).reshape(b, c, groups * h, w)
            tall = self.channels(tall)
            stacked = tall.reshape(b, c, groups, h, w).transpose(1, 2).reshape(b, groups * c, h, w)
        out = dict(batch)
        out["ldr"] = stacked[:, : n * c].reshape(b, n, c, h, w)
        if gt is not None:
            out["gt"] = stacked[:, n * c :].to(gt.dtype)
        return out
