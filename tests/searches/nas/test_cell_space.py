from __future__ import annotations

import itertools
import random
import warnings

import pytest
import torch

from searches.nas.cell import (ALL_OPS, EDGES, CellNetwork, CellSpace, arch_from_genotype,
                               canonical_cell)
from searches.nas.space import InvalidArchitecture

NONE_CELL = dict.fromkeys(EDGES, "none")


def cell(**edges):
    return {**NONE_CELL, **edges}


def test_full_space_has_15625_cells_over_six_edges():
    space = CellSpace()
    assert [d.name for d in space.decisions] == ["e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"]
    assert space.size() == 15625


def test_reduced_op_set_gives_729_cells_and_builds():
    space = CellSpace(ops=("none", "skip", "conv3x3"))
    assert space.size() == 729
    arch = space.sample(random.Random(0))
    assert set(arch.values()) <= {"none", "skip", "conv3x3"}
    assert space.build(arch, (1, 8, 8), 4)(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    with pytest.raises(InvalidArchitecture):
        space.validate(cell(e3_0="conv1x1"))


def test_unknown_or_none_only_ops_are_refused():
    with pytest.raises(ValueError):
        CellSpace(ops=("none", "conv9x9"))
    with pytest.raises(ValueError):
        CellSpace(ops=("none",))


def test_output_cut_off_from_input_is_invalid():
    space = CellSpace()
    with pytest.raises(InvalidArchitecture):
        space.validate(NONE_CELL)
    # Node 1 has no input, so node 2 and the output get only a conv of nothing.
    with pytest.raises(InvalidArchitecture):
        space.validate(cell(e2_1="conv3x3", e3_2="skip", e3_1="conv1x1"))
    assert space.is_valid(cell(e1_0="conv3x3", e2_1="skip", e3_2="avgpool3x3"))


def test_genotype_is_nas_bench_201_notation_and_parses_back():
    arch = {"e1_0": "conv3x3", "e2_0": "skip", "e2_1": "conv1x1",
            "e3_0": "none", "e3_1": "skip", "e3_2": "avgpool3x3"}
    text = CellSpace().genotype(arch)
    assert text == "|conv3x3~0|+|skip~0|conv1x1~1|+|none~0|skip~1|avgpool3x3~2|"
    assert arch_from_genotype(text) == arch
    nb201 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"
    assert arch_from_genotype(nb201) == arch
    with pytest.raises(InvalidArchitecture):
        arch_from_genotype("|conv3x3~0|+|skip~0|")


def test_edges_into_nodes_that_never_reach_the_output_become_none():
    space = CellSpace()
    arch = cell(e1_0="conv3x3", e2_0="conv1x1", e2_1="conv3x3", e3_0="skip")
    assert space.canonical(arch) == cell(e3_0="skip")
    assert space.arch_hash(arch) == space.arch_hash(cell(e3_0="skip"))


def test_zero_preserving_edges_from_an_empty_node_become_none_but_convs_stay():
    space = CellSpace()
    # Node 1 is empty: skip/pool of it add exactly nothing ...
    assert space.canonical(cell(e2_0="skip", e2_1="avgpool3x3", e3_2="conv3x3"))["e2_1"] == "none"
    # ... but a conv of it adds its BatchNorm bias, so it is a different network.
    kept = cell(e2_0="skip", e2_1="conv3x3", e3_2="conv3x3")
    assert space.canonical(kept) == kept
    assert space.arch_hash(kept) != space.arch_hash(cell(e2_0="skip", e3_2="conv3x3"))


def test_canonical_form_preserves_validity_and_is_idempotent_on_every_cell():
    space = CellSpace()
    for ops in itertools.product(ALL_OPS, repeat=len(EDGES)):
        arch = dict(zip(EDGES, ops))
        canon = canonical_cell(arch)
        assert canonical_cell(canon) == canon
        assert space.is_valid(arch) == space.is_valid(canon)


def randomise(model, generator):
    """Random weights and BatchNorm statistics, so "equal outputs" means something."""
    with torch.no_grad():
        for tensor in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


def test_canonical_cells_compute_exactly_what_the_original_cells_compute():
    space = CellSpace()
    rng = random.Random(3)
    changed = [a for a in (dict(zip(EDGES, ops)) for ops in itertools.product(ALL_OPS, repeat=6))
               if space.is_valid(a) and canonical_cell(a) != a]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 6, 6, generator=generator)
    for arch in rng.sample(changed, 30):
        raw = CellNetwork(arch, (2, 6, 6), 3, channels=4)  # built without canonicalising
        randomise(raw, generator)
        canon = CellNetwork(canonical_cell(arch), (2, 6, 6), 3, channels=4)
        result = canon.load_state_dict(raw.state_dict(), strict=False)
        assert not result.missing_keys  # the canonical network is the raw one minus dead edges
        for train in (True, False):
            raw.train(train), canon.train(train)
            assert torch.allclose(raw(x), canon(x), rtol=1e-4, atol=1e-5), arch


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 5, 7), (1, 1, 1)])
def test_networks_run_on_small_and_odd_inputs(shape):
    space = CellSpace(channels=4)
    arch = cell(e1_0="conv3x3", e2_1="avgpool3x3", e3_2="skip", e3_0="conv1x1")
    out = space.build(arch, shape, 5)(torch.randn(2, *shape))
    assert out.shape == (2, 5)


def test_depth_and_width_settings_grow_the_network():
    arch = cell(e1_0="conv3x3", e2_1="conv3x3", e3_2="conv3x3")

    def params(space):
        return sum(p.numel() for p in space.build(arch, (1, 8, 8), 3).parameters())

    assert params(CellSpace(cells_per_stage=2)) > params(CellSpace(cells_per_stage=1))
    assert params(CellSpace(channels=8)) < params(CellSpace(channels=16))


def test_non_image_input_shape_is_refused():
    with pytest.raises(ValueError):
        CellSpace().build(cell(e3_0="skip"), (12,), 3)


def test_cell_network_exports_to_torchscript():
    arch = cell(e1_0="conv3x3", e2_0="skip", e2_1="conv1x1", e3_1="avgpool3x3", e3_2="skip")
    model = CellSpace(channels=4).build(arch, (1, 8, 8), 3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        scripted = torch.jit.script(model)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(scripted(x), model(x))
