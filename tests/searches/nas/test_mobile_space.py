from __future__ import annotations

import random

import pytest
import torch

from searches.nas.mobile import MobileSpace
from searches.nas.space import InvalidArchitecture


def uniform(space, expand, kernel, width=1.0):
    """Every block the same; a stage's first block cannot skip, so it gets e1k3."""
    arch = {"width": width}
    for s, b in space.block_ids():
        first = b == 1
        arch[f"s{s}_b{b}_expand"] = 1 if first and expand == "skip" else expand
        arch[f"s{s}_b{b}_kernel"] = kernel
    return arch


def params(model):
    return sum(p.numel() for p in model.parameters())


def test_first_block_of_a_stage_cannot_be_skipped():
    space = MobileSpace(stages=3, blocks_per_stage=2)
    choices = {d.name: d.choices for d in space.decisions}
    for s in (1, 2, 3):
        assert "skip" not in choices[f"s{s}_b1_expand"]
        assert "skip" in choices[f"s{s}_b2_expand"]
    arch = uniform(space, 3, 5)
    with pytest.raises(InvalidArchitecture):
        space.validate({**arch, "s2_b1_expand": "skip"})


def test_kernel_of_a_skipped_block_does_not_matter():
    space = MobileSpace()
    a = {**uniform(space, 6, 3), "s2_b2_expand": "skip", "s2_b2_kernel": 7}
    b = {**a, "s2_b2_kernel": 5}
    assert space.arch_hash(a) == space.arch_hash(b)
    assert space.arch_hash({**a, "s2_b2_expand": 3}) != space.arch_hash({**b, "s2_b2_expand": 3})


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_networks_train_on_digits_and_cifar_sized_inputs(shape):
    space = MobileSpace(base_channels=8)
    for arch in [space.sample(random.Random(i)) for i in range(4)] + [uniform(space, 6, 7)]:
        model = space.build(arch, shape, 10)
        out = model(torch.randn(2, *shape))
        assert out.shape == (2, 10)
        out.sum().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_larger_choices_give_larger_networks():
    space = MobileSpace(base_channels=8)
    small = params(space.build(uniform(space, "skip", 3, 0.5), (1, 8, 8), 10))
    wide = params(space.build(uniform(space, "skip", 3, 1.0), (1, 8, 8), 10))
    expanded = params(space.build(uniform(space, 6, 3, 1.0), (1, 8, 8), 10))
    big_kernel = params(space.build(uniform(space, 6, 7, 1.0), (1, 8, 8), 10))
    assert small < wide < expanded < big_kernel


def test_widths_that_round_to_the_same_channels_are_one_architecture():
    space = MobileSpace(base_channels=4, widths=(0.9, 1.0, 2.0))
    assert space.stage_channels(0.9) == space.stage_channels(1.0)
    a = uniform(space, 3, 3, 0.9)
    assert space.arch_hash(a) == space.arch_hash({**a, "width": 1.0})
    assert space.arch_hash(a) != space.arch_hash({**a, "width": 2.0})


def test_genotype_names_each_block():
    space = MobileSpace(stages=2, blocks_per_stage=2)
    arch = {"width": 0.5, "s1_b1_expand": 1, "s1_b1_kernel": 3, "s1_b2_expand": "skip",
            "s1_b2_kernel": 7, "s2_b1_expand": 6, "s2_b1_kernel": 5, "s2_b2_expand": 3,
            "s2_b2_kernel": 7}
    assert space.genotype(arch) == "w0.5|e1k3-skip|e6k5-e3k7"
