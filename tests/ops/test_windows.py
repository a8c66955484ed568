import numpy as np
import pytest
import torch

from hdrzoo.errors import InputSizeError
from hdrzoo.ops.windows import crop, pad_to_multiple, window_partition, window_reverse


@pytest.mark.parametrize(
    "shape,m", [((1, 3, 30, 17), 16), ((2, 3, 3, 6, 5), 4), ((1, 1, 32, 32), 16)]
)
def test_pad_to_multiple_pads_bottom_right_and_crop_undoes_it(shape, m):
    x = torch.rand(shape)
    padded, (pad_h, pad_w) = pad_to_multiple(x, m)
    height, width = shape[-2:]
    assert padded.shape[-2:] == (height + pad_h, width + pad_w)
    assert padded.shape[-2] % m == 0 and padded.shape[-1] % m == 0
    assert 0 <= pad_h < m and 0 <= pad_w < m
    assert torch.equal(padded[..., :height, :width], x)
    assert torch.equal(crop(padded, height, width), x)


def test_reflect_padding_matches_numpy_reflect():
    x = np.random.default_rng(0).random((2, 3, 10, 7))
    padded, pads = pad_to_multiple(torch.from_numpy(x), 8)
    assert pads == (6, 1)
    expected = np.pad(x, ((0, 0), (0, 0), (0, 6), (0, 1)), mode="reflect")
    np.testing.assert_array_equal(padded.numpy(), expected)


def test_reflect_padding_larger_than_image_mirrors_repeatedly():
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]]).expand(1, 1, 2, 3)
    padded, pads = pad_to_multiple(x, 8)
    assert pads == (6, 5)
    # 1 2 3 | 2 1 | 2 3 2: reflect by 2, then reflect the result by 3.
    assert padded[0, 0, 0].tolist() == [1, 2, 3, 2, 1, 2, 3, 2]
    assert torch.isfinite(padded).all()


@pytest.mark.parametrize("mode", ["replicate", "constant"])
def test_other_pad_modes_match_numpy(mode):
    x = np.random.default_rng(1).random((1, 2, 5, 6))
    padded, _ = pad_to_multiple(torch.from_numpy(x), 4, mode=mode)
    np_mode = {"replicate": "edge", "constant": "constant"}[mode]
    np.testing.assert_array_equal(
        padded.numpy(), np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 2)), mode=np_mode)
    )


# (3, 2) to a multiple of 8 pads by more than the image itself.
@pytest.mark.parametrize("shape", [(1, 2, 5, 6), (2, 1, 3, 2)])
def test_circular_padding_matches_numpy_wrap_even_beyond_the_image(shape):
    x = np.random.default_rng(2).random(shape)
    padded, (pad_h, pad_w) = pad_to_multiple(torch.from_numpy(x), 8, mode="circular")
    expected = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="wrap")
    np.testing.assert_array_equal(padded.numpy(), expected)


def test_pad_rejects_bad_arguments():
    with pytest.raises(InputSizeError, match="multiple"):
        pad_to_multiple(torch.rand(1, 1, 4, 4), 0)
    with pytest.raises(InputSizeError, match="mode"):
        pad_to_multiple(torch.rand(1, 1, 4, 4), 8, mode="wrap")
    with pytest.raises(InputSizeError, match="cannot take"):
        crop(torch.rand(1, 1, 4, 4), 5, 4)


def test_window_partition_index_order_matches_a_loop():
    x = torch.rand(2, 3, 12, 20)
    ws = 4
    windows = window_partition(x, ws)
    n_h, n_w = 3, 5
    assert windows.shape == (2 * n_h * n_w, 3, ws, ws)
    for b in range(2):
        for i in range(n_h):
            for j in range(n_w):
                expected = x[b, :, i * ws : (i + 1) * ws, j * ws : (j + 1) * ws]
                assert torch.equal(windows[b * n_h * n_w + i * n_w + j], expected)


def test_window_reverse_is_the_exact_inverse():
    x = torch.rand(3, 5, 16, 8)
    assert torch.equal(window_reverse(window_partition(x, 8), 8, 16, 8), x)
    w = torch.rand(12, 2, 4, 4)
    assert torch.equal(window_partition(window_reverse(w, 4, 8, 12), 4), w)


def test_windows_reject_sizes_that_are_not_multiples():
    with pytest.raises(InputSizeError, match="not a multiple"):
        window_partition(torch.rand(1, 3, 10, 8), 4)
    with pytest.raises(InputSizeError, match="whole"):
        window_reverse(torch.rand(3, 1, 4, 4), 4, 8, 8)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant", "circular"])
def test_pad_and_crop_pass_float64_gradcheck(mode):
    # A 3 x 2 image padded to a multiple of 8: reflect pads in several steps.
    x = torch.rand(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: pad_to_multiple(t, 8, mode)[0], (x,))
    assert torch.autograd.gradcheck(lambda t: crop(t, 2, 1), (x,))


def test_window_partition_and_reverse_pass_float64_gradcheck():
    x = torch.rand(2, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: window_partition(t, 2), (x,))
    windows = torch.rand(12, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: window_reverse(t, 2, 4, 6), (windows,))
