"""Tests of hdrzoo.io: bracket layouts, HDR codecs, pictures, errors and atomic writes.

References are independent of the code under test: tifffile / PIL decoders, a Radiance RGBE
decoder written here with numpy, float64 numpy formulas and hand-computed values.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import ExifTags, Image

import hdrzoo.io as hio
import hdrzoo.io.atomic as hio_atomic
from hdrzoo.bracket import Bracket
from hdrzoo.errors import HDRZooError, ReadError, WriteError
from hdrzoo.io import (
    detect_layout,
    find_scenes,
    read_bracket,
    read_hdr,
    write_bracket,
    write_hdr,
    write_image,
    write_preview,
)

# --------------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------------


def decode_rgbe(path: Path) -> np.ndarray:
    """Radiance RGBE decoder in numpy: header, new-style RLE or flat scanlines, OpenCV's scale.

    Returns float32 RGB (H, W, 3) with value = mantissa * 2 ** (e - 136) (0 where e = 0).
    """
    data = path.read_bytes()
    assert data.startswith(b"#?")
    header_end = data.index(b"\n\n") + 2
    line_end = data.index(b"\n", header_end)
    y_sign, height, x_sign, width = data[header_end:line_end].split()
    assert (y_sign, x_sign) == (b"-Y", b"+X")
    height, width = int(height), int(width)
    pos = line_end + 1
    rgbe = np.zeros((height, width, 4), np.uint8)
    for y in range(height):
        head = data[pos : pos + 4]
        if head[0] == 2 and head[1] == 2 and (head[2] << 8 | head[3]) == width:
            pos += 4
            for channel in range(4):
                x = 0
                while x < width:
                    count = data[pos]
                    pos += 1
                    if count > 128:  # a run of one repeated byte
                        count -= 128
                        rgbe[y, x : x + count, channel] = data[pos]
                        pos += 1
                    else:  # literal bytes
                        rgbe[y, x : x + count, channel] = np.frombuffer(data, np.uint8, count, pos)
                        pos += count
                    x += count
        else:
            rgbe[y] = np.frombuffer(data, np.uint8, 4 * width, pos).reshape(width, 4)
            pos += 4 * width
    exponent = rgbe[..., 3].astype(np.float64)
    scale = np.where(exponent > 0, np.exp2(exponent - 136.0), 0.0)
    return (rgbe[..., :3].astype(np.float64) * scale[..., None]).astype(np.float32)


def psnr_mu_float64(pred: np.ndarray, target: np.ndarray, mu: float = 5000.0) -> float:
    tm = lambda x: np.log1p(mu * x.astype(np.float64)) / np.log1p(mu)  # noqa: E731
    mse = np.mean((tm(pred) - tm(target)) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


def two_tone_codes(n: int, h: int, w: int, seed: int = 0, bits: int = 16) -> np.ndarray:
    """Integer frames (N, H, W, 3) whose red is always brighter than blue (catches BGR swaps)."""
    rng = np.random.default_rng(seed)
    top = 2**bits - 1
    codes = np.empty((n, h, w, 3), np.int64)
    codes[..., 0] = rng.integers(top // 2 + 1, top + 1, (n, h, w))
    codes[..., 1] = rng.integers(0, top + 1, (n, h, w))
    codes[..., 2] = rng.integers(0, top // 2, (n, h, w))
    return codes.astype(np.uint16 if bits == 16 else np.uint8)


def bracket_from_codes(
    codes: np.ndarray, divisor: float, exposures=(1.0, 4.0, 16.0), ref: int = 1, gt=True, seed=1
) -> Bracket:
    ldr = (codes.astype(np.float64) / divisor).astype(np.float32).transpose(0, 3, 1, 2)
    h, w = codes.shape[1:3]
    hdr = None
    if gt:
        hdr = np.random.default_rng(seed).random((3, h, w)).astype(np.float32)
        hdr[0] += 0.5  # red differs from blue here too
    return Bracket(
        torch.from_numpy(ldr), torch.tensor(exposures, dtype=torch.float32), ref, hdr, "synthetic"
    )


def write_kalantari_by_hand(folder: Path, codes: np.ndarray, evs, gt: np.ndarray | None = None):
    """A Kalantari scene written with tifffile and OpenCV only (not with hdrzoo)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(codes):
        tifffile.imwrite(folder / f"ldr_{i}.tif", frame, photometric="rgb")
    (folder / "exposure.txt").write_text("".join(f"{e}\n" for e in evs))
    h, w = codes.shape[1:3]
    image = gt if gt is not None else np.full((h, w, 3), 0.25, np.float32)
    assert cv2.imwrite(str(folder / "HDRImg.hdr"), np.ascontiguousarray(image[:, :, ::-1]))
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --------------------------------------------------------------------------------------------
# The real fixture scenes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scene", ["courtyard", "forest"])
def test_read_bracket_matches_tifffile_and_independent_rgbe_decoder(safnet_s_fixture, scene):
    folder = safnet_s_fixture / "scenes" / scene
    bracket = read_bracket(folder, divisor=65536)
    assert detect_layout(folder) == "kalantari17"
    assert bracket.ldr.dtype == torch.float32 and bracket.ldr.shape == (3, 3, 270, 420)
    for i in range(3):
        codes = tifffile.imread(folder / f"ldr_{i}.tif")
        expected = (codes.astype(np.float64) / 65536).astype(np.float32).transpose(2, 0, 1)
        np.testing.assert_array_equal(bracket.ldr[i].numpy(), expected)
    assert bracket.exposures.tolist() == [1.0, 4.0, 16.0]
    assert bracket.ref == 1
    gt = decode_rgbe(folder / "HDRImg.hdr").transpose(2, 0, 1)
    np.testing.assert_array_equal(bracket.gt.numpy(), gt)
    assert bracket.name == scene
    assert bracket.meta["layout"] == "kalantari17"
    assert bracket.meta["divisor"] == 65536 and bracket.meta["bit_depth"] == 16
    assert bracket.meta["frames"] == ["ldr_0.tif", "ldr_1.tif", "ldr_2.tif"]
    assert Path(bracket.meta["source"]) == folder.resolve()


@pytest.mark.parametrize(("scene", "expected_db"), [("courtyard", 31.6089), ("forest", 28.7970)])
def test_reference_frame_alone_scores_the_documented_psnr_mu(safnet_s_fixture, scene, expected_db):
    bracket = read_bracket(safnet_s_fixture / "scenes" / scene, divisor=65536)
    ref = bracket.ldr[bracket.ref].numpy().astype(np.float64)
    linear = ref**2.2 / float(bracket.exposures[bracket.ref])
    assert psnr_mu_float64(linear, bracket.gt.numpy()) == pytest.approx(expected_db, abs=1e-3)


def test_fixture_divisor_65535_differs_from_65536(safnet_s_fixture):
    folder = safnet_s_fixture / "scenes" / "courtyard"
    a = read_bracket(folder, divisor=65536).ldr
    b = read_bracket(folder).ldr
    codes = tifffile.imread(folder / "ldr_0.tif")
    np.testing.assert_array_equal(
        b[0].numpy(), (codes / 65535.0).astype(np.float32).transpose(2, 0, 1)
    )
    assert not torch.equal(a, b)


# --------------------------------------------------------------------------------------------
# Every layout: write, detect, read back
# --------------------------------------------------------------------------------------------

ROUND_TRIPS = [
    ("kalantari17", {}, "kalantari17"),
    ("challenge123", {}, "challenge123"),
    ("generic", {}, "generic"),
    ("generic", {"image_format": ".tif"}, "tel23"),  # tif + exposure.txt + one .hdr
]


@pytest.mark.parametrize(("layout", "kwargs", "detected"), ROUND_TRIPS)
@pytest.mark.parametrize("divisor", [65535, 65536])
def test_write_then_read_is_identical_for_16_bit_layouts(
    tmp_path, layout, kwargs, detected, divisor
):
    bracket = bracket_from_codes(two_tone_codes(3, 6, 7), divisor)
    scene = write_bracket(tmp_path / "out", bracket, divisor, layout=layout, **kwargs)
    assert detect_layout(scene) == detected
    back = read_bracket(scene)  # the divisor comes from the sidecar when it is not the default
    assert torch.equal(back.ldr, bracket.ldr)
    assert torch.equal(back.exposures, bracket.exposures)
    assert back.ref == 1
    assert back.meta["divisor"] == divisor and back.meta["bit_depth"] == 16
    rgbe_error = (back.gt - bracket.gt).abs() / bracket.gt.amax(0, keepdim=True)
    assert float(rgbe_error.max()) < 2**-7


def test_write_bracket_stores_rgb_order_and_rounded_codes(tmp_path):
    codes = two_tone_codes(3, 5, 6)
    bracket = bracket_from_codes(codes, 65535)
    folder = write_bracket(tmp_path / "k", bracket)
    assert listing(folder) == ["HDRImg.hdr", "exposure.txt", "ldr_0.tif", "ldr_1.tif", "ldr_2.tif"]
    for i in range(3):
        np.testing.assert_array_equal(tifffile.imread(folder / f"ldr_{i}.tif"), codes[i])
    assert (folder / "exposure.txt").read_text().split() == ["0.0", "2.0", "4.0"]
    gt = decode_rgbe(folder / "HDRImg.hdr").transpose(2, 0, 1)
    assert np.abs(gt - bracket.gt.numpy()).max() < 2**-7 * bracket.gt.numpy().max()


def test_kalantari_exr_ground_truth_round_trip_is_exact(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 5, 6), 65535)
    folder = write_bracket(tmp_path / "k", bracket, gt_format=".exr")
    assert (folder / "HDRImg.exr").is_file()
    assert torch.equal(read_bracket(folder).gt, bracket.gt)


def test_ntire_round_trip_8_bit_frames_and_gt_in_shortest_exposure_units(tmp_path):
    codes = two_tone_codes(3, 6, 7, bits=8)
    bracket = bracket_from_codes(codes, 255.0)  # 8-bit frames: value / 255
    scene = write_bracket(tmp_path, bracket, layout="ntire", name="0042")
    assert scene == tmp_path / "0042_medium.png"
    assert detect_layout(scene) == detect_layout(tmp_path / "0042_gt.png") == "ntire"
    back = read_bracket(scene)
    assert back.meta["layout"] == "ntire" and back.meta["bit_depth"] == 8
    assert back.meta["gamma"] == 2.24
    assert back.name == "0042" and back.ref == 1
    assert torch.equal(back.ldr, bracket.ldr)
    assert torch.equal(back.exposures, bracket.exposures)
    # Independent decoders: PIL sees red in channel 0; the npy holds the EVs.
    with Image.open(tmp_path / "0042_short.png") as image:
        np.testing.assert_array_equal(np.asarray(image), codes[0])
    np.testing.assert_array_equal(np.load(tmp_path / "0042_exposures.npy"), [0.0, 2.0, 4.0])
    # NTIRE stores the ground truth in the medium frame's units as uint16 / alignratio.
    ratio = float(np.load(tmp_path / "0042_alignratio.npy"))
    png = cv2.imread(str(tmp_path / "0042_gt.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    medium_units = png.astype(np.float64) / ratio
    expected = (medium_units / 4.0).transpose(2, 0, 1)  # t_medium = 4 in shortest units
    np.testing.assert_allclose(back.gt.numpy(), expected, rtol=1e-6, atol=0)
    assert float((back.gt - bracket.gt).abs().max()) <= 0.5 / ratio / 4.0 * 1.0001
    assert back.meta["gt_scale"] == 0.25
    # the same scene named by its folder (one id) reads the same
    assert torch.equal(read_bracket(tmp_path).ldr, back.ldr)


def test_tel23_reader_tolerates_other_file_names(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 5, 6), 65535)
    folder = write_bracket(tmp_path / "scene", bracket)
    for i, new in enumerate(["IMG_7001.tif", "IMG_7002.tif", "IMG_7003.tif"]):
        (folder / f"ldr_{i}.tif").rename(folder / new)
    (folder / "exposure.txt").rename(folder / "input_exp.txt")
    (folder / "HDRImg.hdr").rename(folder / "label.hdr")
    assert detect_layout(folder) == "tel23"
    back = read_bracket(folder)
    assert torch.equal(back.ldr, bracket.ldr) and back.ref == 1
    assert back.meta["frames"] == ["IMG_7001.tif", "IMG_7002.tif", "IMG_7003.tif"]


def test_challenge123_any_of_the_three_folders_names_the_scene(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 5, 6), 65535)
    scene = write_bracket(tmp_path, bracket, layout="challenge123", name="017")
    assert scene == tmp_path / "017_2"
    assert listing(tmp_path) == sorted(
        ["017_1", "017_2", "017_3", "017_1/ldr_img_1.tif", "017_2/ldr_img_2.tif"]
        + ["017_2/exposure.txt", "017_2/hdr_img.hdr", "017_3/ldr_img_3.tif"]
    )
    for folder in ("017_1", "017_2", "017_3"):
        back = read_bracket(tmp_path / folder)
        assert torch.equal(back.ldr, bracket.ldr) and back.ref == 1 and back.name == "017"
    # an independent decoder sees the frames in file order _1, _2, _3
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "017_3" / "ldr_img_3.tif"),
        np.rint(bracket.ldr[2].numpy().transpose(1, 2, 0).astype(np.float64) * 65535),
    )


def test_generic_png_frames_written_by_opencv_are_read_as_rgb(tmp_path):
    codes = two_tone_codes(4, 5, 6)
    for i, frame in enumerate(codes):  # the usual OpenCV convention: hand it BGR
        assert cv2.imwrite(str(tmp_path / f"img_{i}.png"), frame[:, :, ::-1])
    (tmp_path / "exposure.txt").write_text("-3\n-1\n1\n3\n")
    bracket = read_bracket(tmp_path)
    assert bracket.meta["layout"] == "generic" and bracket.gt is None
    expected = (codes / 65535.0).astype(np.float32).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(bracket.ldr.numpy(), expected)
    assert bracket.exposures.tolist() == [1.0, 4.0, 16.0, 64.0]
    assert bracket.ref == 2  # N // 2 for an even count
    assert read_bracket(tmp_path, ref=0).ref == 0


def test_generic_8_bit_jpeg_and_png_read_as_rgb_checked_with_pil(tmp_path):
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200  # red
    colour[..., 2] = 30  # blue
    Image.fromarray(colour).save(tmp_path / "a.png")
    Image.fromarray(colour // 2).save(tmp_path / "b.jpg", quality=100)
    (tmp_path / "exposure.txt").write_text("1\n0\n")
    bracket = read_bracket(tmp_path)
    assert bracket.meta["bit_depth"] == 8
    red, blue = bracket.ldr[:, 0].mean((1, 2)), bracket.ldr[:, 2].mean((1, 2))
    assert torch.all(red > 3 * blue)
    assert float(bracket.ldr[0, 0, 0, 0]) == pytest.approx(200 / 255)
    assert bracket.exposures.tolist() == [2.0, 1.0]


def test_frames_are_ordered_by_sorted_file_name(tmp_path):
    codes = two_tone_codes(3, 4, 4)
    for name, frame in zip(["c.tif", "a.tif", "b.tif"], codes):
        tifffile.imwrite(tmp_path / name, frame, photometric="rgb")
    (tmp_path / "exposure.txt").write_text("0\n1\n2\n")
    bracket = read_bracket(tmp_path, layout="generic")
    assert bracket.meta["frames"] == ["a.tif", "b.tif", "c.tif"]
    np.testing.assert_array_equal(
        bracket.ldr[0].numpy(), (codes[1] / 65535.0).astype(np.float32).transpose(2, 0, 1)
    )


def test_exif_exposure_time_is_the_fallback_without_exposure_txt(tmp_path):
    for i, seconds in enumerate([0.01, 0.04, 0.16]):
        exif = Image.Exif()
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExposureTime] = seconds
        Image.fromarray(np.full((6, 6, 3), 40 * i + 10, np.uint8)).save(
            tmp_path / f"shot_{i}.jpg", exif=exif
        )
    assert detect_layout(tmp_path) == "generic"
    bracket = read_bracket(tmp_path)
    assert bracket.meta["exposure_source"] == "exif"
    np.testing.assert_allclose(bracket.exposures.numpy(), [1.0, 4.0, 16.0], rtol=1e-6)


def test_exif_in_tiff_tags_is_read(tmp_path):
    for i, (num, den) in enumerate([(1, 200), (1, 50)]):
        tifffile.imwrite(
            tmp_path / f"f{i}.tif",
            two_tone_codes(1, 4, 4, seed=i)[0],
            photometric="rgb",
            extratags=[(33434, 5, 1, (num, den), True)],
        )
    assert read_bracket(tmp_path, layout="generic").exposures.tolist() == [1.0, 4.0]


def test_sidecar_records_only_non_default_divisor_and_ref(tmp_path):
    default = bracket_from_codes(two_tone_codes(3, 4, 5), 65535)
    write_bracket(tmp_path / "a", default)
    assert not (tmp_path / "a" / "hdrzoo.json").exists()

    odd = bracket_from_codes(two_tone_codes(3, 4, 5), 65536, ref=0)
    write_bracket(tmp_path / "b", odd, 65536)
    assert json.loads((tmp_path / "b" / "hdrzoo.json").read_text()) == {"divisor": 65536, "ref": 0}
    back = read_bracket(tmp_path / "b")
    assert back.ref == 0 and back.meta["ref_source"] == "sidecar"
    assert back.meta["divisor"] == 65536 and torch.equal(back.ldr, odd.ldr)
    # explicit arguments win over the sidecar
    assert read_bracket(tmp_path / "b", ref=2).ref == 2
    codes = tifffile.imread(tmp_path / "b" / "ldr_0.tif")
    np.testing.assert_array_equal(
        read_bracket(tmp_path / "b", divisor=4096).ldr[0].numpy(),
        np.clip(codes / 4096.0, 0, 1).astype(np.float32).transpose(2, 0, 1),
    )


def test_more_than_ten_frames_keep_their_order(tmp_path):
    n = 12
    codes = two_tone_codes(n, 3, 3)
    bracket = bracket_from_codes(codes, 65535, exposures=[2.0**i for i in range(n)], ref=5)
    folder = write_bracket(tmp_path / "k", bracket)
    back = read_bracket(folder, layout="generic")
    assert torch.equal(back.ldr, bracket.ldr) and torch.equal(back.exposures, bracket.exposures)
    assert back.ref == 5


def test_write_bracket_refuses_to_mix_with_an_existing_scene(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 4, 5), 65535)
    folder = write_bracket(tmp_path / "k", bracket)
    with pytest.raises(WriteError, match="overwrite=True"):
        write_bracket(folder, bracket)
    four = bracket_from_codes(two_tone_codes(4, 4, 5, seed=3), 65535, exposures=[1, 2, 4, 8])
    write_bracket(folder, four, overwrite=True)
    assert torch.equal(read_bracket(folder, layout="generic").ldr, four.ldr)
    # a 3-frame bracket over the 4-frame one leaves no stale fourth frame behind
    write_bracket(folder, bracket, overwrite=True)
    assert listing(folder) == ["HDRImg.hdr", "exposure.txt", "ldr_0.tif", "ldr_1.tif", "ldr_2.tif"]


def test_write_bracket_rejects_what_a_layout_cannot_hold(tmp_path):
    four = bracket_from_codes(two_tone_codes(4, 4, 5), 65535, exposures=[1, 2, 4, 8])
    for layout in ("challenge123", "ntire"):
        with pytest.raises(WriteError, match="3 frames"):
            write_bracket(tmp_path, four, layout=layout)
    three = bracket_from_codes(two_tone_codes(3, 4, 5), 65535)
    with pytest.raises(WriteError, match="gt_format"):
        write_bracket(tmp_path, three, gt_format=".png")
    with pytest.raises(WriteError, match="layout"):
        write_bracket(tmp_path, three, layout="tel23")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Errors name the file and say what to do
# --------------------------------------------------------------------------------------------


@pytest.fixture
def scene16(tmp_path) -> Path:
    return write_kalantari_by_hand(tmp_path / "scene", two_tone_codes(3, 6, 8), [-2, 0, 2])


def test_missing_path(tmp_path):
    with pytest.raises(ReadError, match="nowhere.*does not exist"):
        read_bracket(tmp_path / "nowhere")


def test_truncated_tiff_frame(scene16):
    frame = scene16 / "ldr_1.tif"
    frame.write_bytes(frame.read_bytes()[:-60])
    with pytest.raises(ReadError, match=re.escape(str(frame))):
        read_bracket(scene16)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_png_and_jpeg_frames(tmp_path, suffix):
    for i in range(2):
        assert cv2.imwrite(str(tmp_path / f"f{i}{suffix}"), np.full((32, 32, 3), 60 * i, np.uint8))
    (tmp_path / "exposure.txt").write_text("0\n2\n")
    bad = tmp_path / f"f1{suffix}"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) * 2 // 3])
    with pytest.raises(ReadError, match=re.escape(str(bad))):
        read_bracket(tmp_path)


def test_corrupt_frame_that_is_not_an_image(scene16):
    bad = scene16 / "ldr_0.tif"
    bad.write_bytes(b"this is not a TIFF at all" * 20)
    with pytest.raises(ReadError, match=re.escape(str(bad))):
        read_bracket(scene16)


def test_frames_of_different_sizes(scene16):
    bad = scene16 / "ldr_2.tif"
    tifffile.imwrite(bad, two_tone_codes(1, 7, 8)[0], photometric="rgb")
    with pytest.raises(ReadError, match=re.escape(str(bad)) + ".*same size"):
        read_bracket(scene16)


def test_grey_frame_is_named_as_grey(scene16):
    bad = scene16 / "ldr_0.tif"
    tifffile.imwrite(bad, np.zeros((6, 8), np.uint16))
    with pytest.raises(ReadError, match=re.escape(str(bad)) + ".*grey"):
        read_bracket(scene16)


def test_rgba_frame_is_named_as_rgba(tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((4, 4, 4), 100, np.uint8))
    (tmp_path / "exposure.txt").write_text("0\n2\n")
    with pytest.raises(ReadError, match=re.escape(str(tmp_path / "f0.png")) + ".*RGBA"):
        read_bracket(tmp_path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("-2\n0\n", "2 exposure"),
        ("-2\n0\n2\n4\n", "4 exposure"),
        ("-2\nzero\n2\n", "line 2: 'zero' is not a number"),
        ("-2\nnan\n2\n", "finite"),
        ("-2\ninf\n2\n", "finite"),
        ("0\n0\n2\n", "duplicate"),
        ("", "0 exposure"),
    ],
)
def test_bad_exposure_files(scene16, content, pattern):
    exposure = scene16 / "exposure.txt"
    exposure.write_text(content)
    with pytest.raises(ReadError, match=re.escape(str(exposure)) + ".*" + pattern):
        read_bracket(scene16)


def test_exposure_file_accepts_comments_blank_lines_and_commas(scene16):
    (scene16 / "exposure.txt").write_text("# EVs\n\n 0.0 , 2.5\n5  # long\n")
    expected = np.float32([1.0, 2**2.5, 32.0])
    np.testing.assert_array_equal(read_bracket(scene16).exposures.numpy(), expected)


def test_non_positive_exif_exposure_time(tmp_path):
    for i, seconds in enumerate([0.01, 0.0]):
        exif = Image.Exif()
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExposureTime] = seconds
        Image.fromarray(np.full((4, 4, 3), 50, np.uint8)).save(tmp_path / f"s{i}.jpg", exif=exif)
    with pytest.raises(ReadError, match=re.escape(str(tmp_path / "s1.jpg")) + ".*positive"):
        read_bracket(tmp_path, layout="generic")


def test_generic_without_exposures_names_the_frame(tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((4, 4, 3), 100, np.uint8))
    with pytest.raises(ReadError, match="no exposure.txt.*f0.png"):
        read_bracket(tmp_path, layout="generic")


def test_folder_matching_no_layout_lists_what_was_found_and_expected(tmp_path):
    (tmp_path / "notes.md").write_text("hello")
    tifffile.imwrite(tmp_path / "only.tif", two_tone_codes(1, 4, 4)[0], photometric="rgb")
    with pytest.raises(ReadError) as info:
        read_bracket(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "notes.md" in message and "only.tif" in message
    for layout in hio.LAYOUTS:
        assert f"{layout}:" in message


def test_dataset_root_is_not_a_scene_and_the_error_points_to_find_scenes(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 4, 4), 65535)
    write_bracket(tmp_path, bracket, layout="challenge123")
    with pytest.raises(ReadError, match="subfolders: 001_1, 001_2, 001_3.*find_scenes"):
        read_bracket(tmp_path)


def test_ground_truth_size_mismatch(scene16):
    gt = scene16 / "HDRImg.hdr"
    cv2.imwrite(str(gt), np.ones((5, 8, 3), np.float32))
    with pytest.raises(ReadError, match=re.escape(str(gt)) + ".*must match"):
        read_bracket(scene16)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_truncated_ground_truth_hdr_raises(scene16, keep):
    gt = scene16 / "HDRImg.hdr"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(gt), rng.random((6, 8, 3)).astype(np.float32))
    data = gt.read_bytes()
    gt.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ReadError, match=re.escape(str(gt))):
        read_bracket(scene16)


def test_radiance_header_claiming_a_huge_image_is_rejected_without_allocating(tmp_path):
    bogus = tmp_path / "big.hdr"
    bogus.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n" + bytes(1000))
    with pytest.raises(ReadError, match="truncated"):
        read_hdr(bogus)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_exr_raises_read_error(tmp_path, damage):
    path = tmp_path / "x.exr"
    write_hdr(path, np.random.default_rng(0).random((3, 20, 30)).astype(np.float32) * 3)
    data = path.read_bytes()
    path.write_bytes(
        data[: len(data) // 2] if damage == "truncate" else b"\x76\x2f\x31\x01" + bytes(64)
    )
    with pytest.raises(ReadError, match=re.escape(str(path))):
        read_hdr(path)


def test_ntire_ground_truth_without_alignratio(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 4, 4, bits=8), 255.0)
    write_bracket(tmp_path, bracket, layout="ntire")
    (tmp_path / "0000_alignratio.npy").unlink()
    with pytest.raises(ReadError, match="0000_alignratio.npy.*missing"):
        read_bracket(tmp_path / "0000_medium.png")


def test_ntire_folder_with_several_ids_asks_for_one_file(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 4, 4, bits=8), 255.0)
    for scene_id in ("0001", "0002"):
        write_bracket(tmp_path, bracket, layout="ntire", name=scene_id)
    with pytest.raises(ReadError, match="2 NTIRE scenes.*0001, 0002"):
        read_bracket(tmp_path)
    assert read_bracket(tmp_path / "0002_long.png").name == "0002"


def test_challenge123_missing_sibling_is_named(tmp_path):
    bracket = bracket_from_codes(two_tone_codes(3, 4, 4), 65535)
    write_bracket(tmp_path, bracket, layout="challenge123")
    shutil.rmtree(tmp_path / "001_3")
    with pytest.raises(ReadError, match=re.escape(str(tmp_path / "001_3" / "ldr_img_3.tif"))):
        read_bracket(tmp_path / "001_2", layout="challenge123")


def test_bad_arguments(scene16):
    with pytest.raises(HDRZooError, match="ref = 3"):
        read_bracket(scene16, ref=3)
    with pytest.raises(HDRZooError, match="divisor"):
        read_bracket(scene16, divisor=0)
    with pytest.raises(ReadError, match="unknown layout"):
        read_bracket(scene16, layout="kalantari")


def test_8_bit_frames_where_16_bit_are_expected_warn_once(tmp_path):
    folder = write_kalantari_by_hand(tmp_path / "s", two_tone_codes(3, 4, 4, bits=8), [0, 2, 4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bracket = read_bracket(folder)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "8-bit" in messages[0] and str(folder) in messages[0]
    assert bracket.meta["bit_depth"] == 8 and bracket.meta["expected_bit_depth"] == 16
    codes = tifffile.imread(folder / "ldr_1.tif")
    np.testing.assert_array_equal(
        bracket.ldr[1].numpy(), (codes / 255.0).astype(np.float32).transpose(2, 0, 1)
    )


# --------------------------------------------------------------------------------------------
# Scene discovery
# --------------------------------------------------------------------------------------------


def test_find_scenes_nested_kalantari_challenge_and_ntire(tmp_path):
    three = bracket_from_codes(two_tone_codes(3, 4, 4), 65535)
    eight = bracket_from_codes(two_tone_codes(3, 4, 4, bits=8), 255.0)
    for scene in ("EXTRA/002", "EXTRA/001", "PAPER/BarbequeDay", "PAPER/ManStanding"):
        write_bracket(tmp_path / "kal" / "Test" / scene, three)
    for scene_id in ("010", "002"):
        write_bracket(tmp_path / "c123", three, layout="challenge123", name=scene_id)
    for scene_id in ("0007", "0003"):
        write_bracket(tmp_path / "ntire", eight, layout="ntire", name=scene_id)
    (tmp_path / "kal" / "Test" / ".hidden").mkdir()
    write_bracket(tmp_path / "kal" / "Test" / ".hidden" / "x", three)

    rel = lambda paths: [p.relative_to(tmp_path).as_posix() for p in paths]  # noqa: E731
    assert rel(find_scenes(tmp_path / "kal")) == [
        "kal/Test/EXTRA/001",
        "kal/Test/EXTRA/002",
        "kal/Test/PAPER/BarbequeDay",
        "kal/Test/PAPER/ManStanding",
    ]
    assert rel(find_scenes(tmp_path / "c123")) == ["c123/002_2", "c123/010_2"]
    assert rel(find_scenes(tmp_path / "ntire")) == [
        "ntire/0003_medium.png",
        "ntire/0007_medium.png",
    ]
    everything = find_scenes(tmp_path)
    assert len(everything) == 8 and everything == sorted(everything, key=lambda p: p.as_posix())
    assert rel(find_scenes(tmp_path, layout="challenge123")) == ["c123/002_2", "c123/010_2"]
    assert find_scenes(tmp_path / "c123", layout="kalantari17") == []
    for scene in everything:
        read_bracket(scene)


# --------------------------------------------------------------------------------------------
# HDR codecs, pictures and previews
# --------------------------------------------------------------------------------------------


def test_exr_round_trip_is_exact(tmp_path):
    hdr = torch.from_numpy(np.random.default_rng(2).random((3, 9, 11)).astype(np.float32)) * 50
    hdr[1, 0, 0] = 0.0
    write_hdr(tmp_path / "a.exr", hdr)
    assert torch.equal(read_hdr(tmp_path / "a.exr"), hdr)


def test_hdr_round_trip_within_rgbe_precision(tmp_path):
    rng = np.random.default_rng(3)
    hdr = (rng.random((3, 9, 11)) * np.exp2(rng.integers(-8, 8, (1, 9, 11)))).astype(np.float32)
    write_hdr(tmp_path / "a.hdr", hdr)
    back = read_hdr(tmp_path / "a.hdr").numpy()
    # 8-bit shared-exponent mantissa: error below one step of the pixel's largest channel
    brightest = hdr.max(axis=0, keepdims=True)
    assert np.all(np.abs(back - hdr) < brightest * 2**-7)
    np.testing.assert_array_equal(back, decode_rgbe(tmp_path / "a.hdr").transpose(2, 0, 1))


def test_write_image_float_and_uint8_are_rgb_8_bit(tmp_path):
    image = torch.zeros(3, 4, 5)
    image[0] = 1.0
    image[1] = 0.5
    image[2, 0, 0] = 2.0  # clipped to 1
    write_image(tmp_path / "a.png", image)
    with Image.open(tmp_path / "a.png") as pil:
        got = np.asarray(pil)
    assert got.dtype == np.uint8 and got.shape == (4, 5, 3)
    assert got[1, 1].tolist() == [255, 128, 0] and got[0, 0].tolist() == [255, 128, 255]
    raw = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    write_image(tmp_path / "b.png", raw)
    with Image.open(tmp_path / "b.png") as pil:
        np.testing.assert_array_equal(np.asarray(pil), raw)
    write_image(tmp_path / "c.jpg", raw)
    with Image.open(tmp_path / "c.jpg") as pil:
        assert pil.format == "JPEG" and pil.size == (5, 4)


@pytest.mark.parametrize("method", ["mu", "reinhard"])
def test_write_preview_matches_float64_tone_curves(tmp_path, method):
    hdr = np.random.default_rng(4).random((3, 6, 7)) ** 3 * 4.0
    write_preview(
        tmp_path / "p.png", torch.from_numpy(hdr.astype(np.float32)), method, exposure=2.0
    )
    with Image.open(tmp_path / "p.png") as pil:
        got = np.asarray(pil).astype(np.int64).transpose(2, 0, 1)
    x = 2.0 * hdr.astype(np.float32).astype(np.float64)
    if method == "mu":
        display = np.log1p(5000 * np.clip(x, 0, 1)) / np.log1p(5000)
    else:
        display = (x / (1 + x)) ** (1 / 2.2)
    expected = np.rint(display * 255)
    assert np.abs(got - expected).max() <= 1
    assert np.mean(got == expected) > 0.95


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def test_failed_writes_leave_nothing_behind(tmp_path):
    nan = torch.full((3, 4, 4), float("nan"))
    with pytest.raises(WriteError, match="NaN"):
        write_image(tmp_path / "a.png", nan)
    with pytest.raises(WriteError, match="NaN"):
        write_hdr(tmp_path / "a.exr", nan)
    with pytest.raises(WriteError, match="NaN"):
        write_preview(tmp_path / "a.png", nan)
    assert list(tmp_path.iterdir()) == []


def test_write_image_encoder_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise cv2.error("encoder exploded")

    monkeypatch.setattr(cv2, "imwrite", broken)
    with pytest.raises(WriteError, match="a.png"):
        write_image(tmp_path / "a.png", torch.zeros(3, 2, 2))
    assert list(tmp_path.iterdir()) == []


def test_write_bracket_is_all_or_nothing_when_an_encoder_fails(tmp_path, monkeypatch):
    calls = []
    real = tifffile.imwrite

    def fails_on_second(path, *args, **kwargs):
        calls.append(Path(path))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", fails_on_second)
    bracket = bracket_from_codes(two_tone_codes(3, 4, 4), 65535)
    with pytest.raises(WriteError, match="ldr_1.tif.*disk full"):
        write_bracket(tmp_path / "scene", bracket)
    assert list(tmp_path.iterdir()) == []  # not even the folder it created

    existing = tmp_path / "existing"
    existing.mkdir()
    calls.clear()
    with pytest.raises(WriteError):
        write_bracket(existing, bracket)
    assert list(existing.iterdir()) == []


def test_read_only_folder_raises_write_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user (e.g. root) whom chmod does not stop from writing")
        with pytest.raises(WriteError, match=re.escape(str(folder))):
            write_image(folder / "a.png", torch.zeros(3, 2, 2))
        with pytest.raises(WriteError):
            write_bracket(folder, bracket_from_codes(two_tone_codes(3, 4, 4), 65535))
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_permission_denied_becomes_write_error_naming_the_file(tmp_path, monkeypatch):
    # The same path as a read-only folder, reproducible when running as root.
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hio_atomic.tempfile, "mkstemp", denied)
    with pytest.raises(WriteError, match=re.escape(str(tmp_path / "a.png")) + ".*writable"):
        write_image(tmp_path / "a.png", torch.zeros(3, 2, 2))
    with pytest.raises(WriteError, match="ldr_0.tif"):
        write_bracket(tmp_path / "k", bracket_from_codes(two_tone_codes(3, 4, 4), 65535))
    assert list(tmp_path.iterdir()) == []


def test_hidden_temporary_files_are_ignored_by_readers(scene16):
    (scene16 / ".ldr_0.abc.tmp.tif").write_bytes(b"partial")
    assert read_bracket(scene16).num_frames == 3


def test_divisor_round_trip_is_exact_for_every_16_bit_code(tmp_path):
    for divisor in (65535, 65536):
        codes = np.arange(65536, dtype=np.uint16)
        frames = np.stack([np.roll(codes, k) for k in range(3)]).reshape(3, 1, 128, 512)
        frames = np.repeat(frames.transpose(0, 2, 3, 1), 3, axis=3)
        bracket = bracket_from_codes(frames, divisor, gt=False)
        folder = write_bracket(tmp_path / str(divisor), bracket, divisor)
        for i in range(3):
            np.testing.assert_array_equal(tifffile.imread(folder / f"ldr_{i}.tif"), frames[i])
        assert torch.equal(read_bracket(folder).ldr, bracket.ldr)
    assert math.isclose(float(read_bracket(tmp_path / "65536").ldr.max()), 65535 / 65536)


# --------------------------------------------------------------------------------------------
# float32 limits and forged TIFF headers
# --------------------------------------------------------------------------------------------


def patch_tag(path: Path, code: int, value: int) -> None:
    """Overwrite the first item of a SHORT/LONG TIFF tag in place (a forged header)."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags[code]
        fmt = "<I" if int(tag.dtype) == 4 else "<H"
        offset = tag.valueoffset
    data = bytearray(path.read_bytes())
    data[offset : offset + (4 if fmt == "<I" else 2)] = np.array(value, fmt[1:]).tobytes()
    path.write_bytes(bytes(data))


def test_ev_span_at_the_float32_limit(scene16):
    # 2 ** 127 is a float32; 2 ** 128 is not (float32 max = (2 - 2 ** -23) * 2 ** 127).
    exposure = scene16 / "exposure.txt"
    exposure.write_text("0\n1\n127\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_bracket(scene16).exposures.tolist() == [1.0, 2.0, 2.0**127]
        exposure.write_text("0\n1\n128\n")
        with pytest.raises(ReadError, match=re.escape(str(exposure)) + ".*span too many stops"):
            read_bracket(scene16)


def test_exif_times_beyond_float32_name_the_folder(tmp_path):
    # DOUBLE ExposureTime values: 1e10 / 1e-30 is finite in float64, inf in float32.
    for i, seconds in enumerate([1e-30, 1e10]):
        tifffile.imwrite(
            tmp_path / f"f{i}.tif",
            two_tone_codes(1, 4, 4, seed=i)[0],
            photometric="rgb",
            extratags=[(33434, 12, 1, seconds, True)],
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ReadError, match=re.escape(str(tmp_path)) + ".*span too many stops"):
            read_bracket(tmp_path, layout="generic")


def test_flat_deflate_frames_near_zlibs_best_ratio_still_read(tmp_path):
    # The most compressible frames there are (constant, one strip, level 9, predictor): the
    # expansion bound for DEFLATE must not refuse them.
    h, w = 256, 256
    codes = np.stack([np.full((h, w, 3), c, np.uint16) for c in (1000, 9000, 40000)])
    for i, frame in enumerate(codes):
        tifffile.imwrite(
            tmp_path / f"ldr_{i}.tif",
            frame,
            photometric="rgb",
            compression="zlib",
            compressionargs={"level": 9},
            predictor=True,
            rowsperstrip=h,
        )
    (tmp_path / "exposure.txt").write_text("-2\n0\n2\n")
    with tifffile.TiffFile(tmp_path / "ldr_0.tif") as tif:
        page = tif.pages.first
        ratio = page.nbytes / sum(page.databytecounts)
    assert ratio > 500  # the test really sits near the 1032:1 bound
    bracket = read_bracket(tmp_path, layout="generic")
    expected = (codes.astype(np.float64) / 65535).astype(np.float32).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(bracket.ldr.numpy(), expected)


def test_uncompressed_tiff_declaring_one_row_more_than_stored(scene16):
    # 6 x 8 x 3 x 16 bit = 288 bytes stored; a 7-row header needs 336.
    frame = scene16 / "ldr_1.tif"
    patch_tag(frame, 257, 7)  # ImageLength
    with pytest.raises(ReadError, match=re.escape(str(frame)) + r".*\(336 bytes\).*holds 288"):
        read_bracket(scene16)


@pytest.mark.parametrize("compression", [1, 8, 50000], ids=["none", "deflate", "zstd"])
def test_tiff_declaring_more_than_the_decode_cap_is_refused(scene16, compression):
    # 65535 x 65535 x 3 x 2 bytes = 24 GiB > 2 GiB; zstd has no expansion bound, only the cap.
    frame = scene16 / "ldr_1.tif"
    patch_tag(frame, 259, compression)
    patch_tag(frame, 256, 65535)  # ImageWidth
    patch_tag(frame, 257, 65535)  # ImageLength
    with pytest.raises(ReadError, match=re.escape(str(frame)) + ".*over the 2 GiB"):
        read_bracket(scene16)


def test_tiff_decoding_to_another_shape_than_declared_is_refused(scene16, monkeypatch):
    # tifffile may return an array that is not the declared shape; the reader must say so
    # instead of passing it on.
    real = tifffile.TiffPage.asarray
    monkeypatch.setattr(tifffile.TiffPage, "asarray", lambda self, *a, **k: real(self)[:2])
    with pytest.raises(ReadError, match=re.escape(str(scene16 / "ldr_0.tif")) + ".*decodes to"):
        read_bracket(scene16)


def test_exposure_file_with_a_byte_order_mark_and_crlf(scene16):
    (scene16 / "exposure.txt").write_bytes(b"\xef\xbb\xbf0\r\n2\r\n4\r\n")
    assert read_bracket(scene16).exposures.tolist() == [1.0, 4.0, 16.0]


def test_npy_with_a_corrupt_header_escape_is_a_read_error_without_warnings(tmp_path):
    # Found by tests/reliability/test_fuzz_readers.py: "\\:" in the header dict made
    # np.load's literal_eval emit a DeprecationWarning before failing.
    write_bracket(
        tmp_path / "s", bracket_from_codes(two_tone_codes(3, 4, 4), 65535), layout="ntire"
    )
    (npy,) = (tmp_path / "s").glob("*_exposures.npy")
    data = npy.read_bytes()
    npy.write_bytes(data.replace(b"'descr'", b"'descr\\:", 1))
    (medium,) = (tmp_path / "s").glob("*_medium.png")
    # Recorded, not raised: an error filter would turn the warning into the ReadError itself.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ReadError, match=re.escape(str(npy)) + ".*not a readable .npy"):
            read_bracket(medium)
    assert [str(w.message) for w in caught] == []
