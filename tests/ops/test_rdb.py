import doctest

import pytest
import torch
import torch.nn.functional as F

import hdrzoo.ops.rdb as rdb_ops
from hdrzoo.ops.rdb import GRDB, RDB


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_docstring_examples_run():
    result = doctest.testmod(rdb_ops, extraglobs={"torch": torch})
    assert result.attempted >= 4 and result.failed == 0


def test_rdb_64_32_6_has_265472_parameters():
    assert count(RDB(64, 32, 6)) == 265_472


def test_grdb_parameters_are_its_blocks_plus_the_fusion_conv():
    assert count(GRDB(64, 32, 6, blocks=3)) == 3 * 265_472 + (192 * 64 + 64)


def rdb_by_hand(block: RDB, x: torch.Tensor) -> torch.Tensor:
    """MODELS.md 2.6 written out: dense 3x3 convs with ReLU, 1x1 local fusion, residual."""
    features = [x]
    for conv in block.dense:
        features.append(F.relu(F.conv2d(torch.cat(features, 1), conv.weight, conv.bias, padding=1)))
    fusion = F.conv2d(torch.cat(features, 1), block.fusion.weight, block.fusion.bias)
    return x + fusion


def test_rdb_matches_its_definition_in_float64():
    torch.manual_seed(0)
    block = RDB(6, 4, 3).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(block(x), rdb_by_hand(block, x), rtol=0, atol=1e-12)
    # Channel widths of the dense layers grow by g.
    assert [conv.in_channels for conv in block.dense] == [6, 10, 14]
    assert block.fusion.in_channels == 18


def test_grdb_concatenates_callback_outputs_and_adds_its_input():
    torch.manual_seed(1)
    group = GRDB(4, 2, 2, blocks=3).double()
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    calls = []

    def halve(index, y):
        calls.append(index)
        return 0.5 * y

    outputs, m = [], x
    for block in group.blocks:
        m = 0.5 * rdb_by_hand(block, m)
        outputs.append(m)
    expected = x + F.conv2d(torch.cat(outputs, 1), group.fusion.weight, group.fusion.bias)
    torch.testing.assert_close(group(x, after_block=halve), expected, rtol=0, atol=1e-12)
    assert calls == [0, 1, 2]
    # Without a callback the blocks simply chain.
    plain, m = [], x
    for block in group.blocks:
        m = rdb_by_hand(block, m)
        plain.append(m)
    expected = x + F.conv2d(torch.cat(plain, 1), group.fusion.weight, group.fusion.bias)
    torch.testing.assert_close(group(x), expected, rtol=0, atol=1e-12)


def test_rdb_gradcheck():
    torch.manual_seed(2)
    block = RDB(3, 2, 2).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


@pytest.mark.parametrize("blocks", [1, 2])
def test_grdb_keeps_shape(blocks):
    assert GRDB(8, 4, 2, blocks).eval()(torch.rand(2, 8, 3, 5)).shape == (2, 8, 3, 5)
