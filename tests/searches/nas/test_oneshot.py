from __future__ import annotations

import copy
import json
import random

import pytest
import torch
import torch.nn.functional as F

from searches.nas.cell import EDGES, CellSpace
from searches.nas.oneshot import (PAPER_ARCH_STEPS, DartsSupernet, SharedSupernet, darts_arch_lr,
                                  darts_derive, darts_edge_weights,
                                  darts_optimizers, darts_step, is_skip_collapse,
                                  rank_with_shared_weights, supernet_train_step)

SHAPE = (1, 8, 8)
CLASSES = 3


def batch(seed, n=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def darts(ops=("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")):
    torch.manual_seed(0)
    return DartsSupernet(ops, 4, SHAPE, CLASSES)


def test_darts_steps_change_alpha_and_weights():
    net = darts()
    w_opt, a_opt = darts_optimizers(net)
    alpha, stem = net.alpha.detach().clone(), net.stem[0].weight.detach().clone()
    for step in range(3):
        losses = darts_step(net, w_opt, a_opt, batch(step), batch(100 + step))
        assert set(losses) == {"train_loss", "val_loss"}
        assert all(isinstance(v, float) and v > 0 for v in losses.values())
    assert not torch.equal(net.alpha, alpha)
    assert not torch.equal(net.stem[0].weight, stem)


def test_arch_lr_lets_alpha_travel_as_far_as_in_the_paper_on_short_searches():
    assert darts_arch_lr(PAPER_ARCH_STEPS) == darts_arch_lr(None) == 3e-4
    assert darts_arch_lr(PAPER_ARCH_STEPS // 10) * (PAPER_ARCH_STEPS // 10) == pytest.approx(3e-4 * PAPER_ARCH_STEPS, rel=1e-3)
    assert darts_arch_lr(10) == 3e-4 * 30  # capped


def test_with_the_scaled_arch_lr_alpha_travels_further():
    """20 steps: at the paper's rate alpha moves by about 20 * 3e-4; scaled, by far more."""
    travel = {}
    for a_lr in (3e-4, darts_arch_lr(20)):
        net = darts()
        start = net.alpha.detach().clone()
        w_opt, a_opt = darts_optimizers(net, a_lr=a_lr)
        for step in range(20):
            darts_step(net, w_opt, a_opt, batch(step), batch(1000 + step))
        travel[a_lr] = (net.alpha.detach() - start).abs().max().item()
    assert travel[3e-4] < 0.01
    assert travel[darts_arch_lr(20)] > 10 * travel[3e-4]


def test_darts_moves_alpha_down_the_validation_gradient():
    net = darts()
    train, val = batch(1), batch(2)
    probe = copy.deepcopy(net)
    F.cross_entropy(probe(val[0]), val[1]).backward()
    grad = probe.alpha.grad
    before = net.alpha.detach().clone()
    w_opt, a_opt = darts_optimizers(net, a_lr=1e-2)
    darts_step(net, w_opt, a_opt, train, val)
    change = net.alpha.detach() - before
    clear = grad.abs() > 1e-6  # Adam's first step moves each entry by about lr * -sign(grad)
    assert clear.sum() > 10
    assert torch.equal(torch.sign(change[clear]), -torch.sign(grad[clear]))


def test_edge_weights_are_plain_float_distributions_per_edge():
    net = darts(("none", "skip", "conv3x3"))
    weights = darts_edge_weights(net)
    assert list(weights) == list(EDGES)
    json.dumps(weights)  # plain floats, ready to stream
    for per_op in weights.values():
        assert list(per_op) == ["none", "skip", "conv3x3"]
        assert abs(sum(per_op.values()) - 1.0) < 1e-6


def test_derive_takes_the_strongest_op_but_never_none():
    net = darts()
    with torch.no_grad():
        net.alpha.zero_()
        net.alpha[:, 0] = 5.0  # "none" dominates every edge ...
        net.alpha[:, 3] = 2.0  # ... conv3x3 is the strongest real op
        net.alpha[EDGES.index("e2_1"), 1] = 3.0  # except on e2_1, where skip wins
    arch = darts_derive(net)
    assert CellSpace().is_valid(arch)
    assert arch == {**dict.fromkeys(EDGES, "conv3x3"), "e2_1": "skip"}


def test_derive_stays_in_a_reduced_op_set():
    net = darts(("none", "skip", "avgpool3x3"))
    arch = darts_derive(net)
    assert set(arch.values()) <= {"skip", "avgpool3x3"}
    assert net.space.is_valid(arch)


def test_skip_collapse_is_every_live_edge_a_skip():
    assert is_skip_collapse(dict.fromkeys(EDGES, "skip"))
    assert is_skip_collapse({**dict.fromkeys(EDGES, "none"), "e1_0": "skip", "e3_1": "skip"})
    assert not is_skip_collapse({**dict.fromkeys(EDGES, "skip"), "e3_2": "conv3x3"})
    # A conv on an edge that cannot reach the output changes nothing: still collapsed.
    dead_conv = {**dict.fromkeys(EDGES, "none"), "e3_0": "skip", "e1_0": "conv3x3"}
    assert is_skip_collapse(dead_conv)


def shared():
    torch.manual_seed(0)
    return SharedSupernet(("none", "skip", "conv1x1", "conv3x3"), 4, SHAPE, CLASSES)


def test_shared_training_reaches_only_the_sampled_ops():
    net = shared()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.stem[0].weight.detach().clone()
    result = supernet_train_step(net, optimizer, batch(0), random.Random(3))
    arch = result["arch"]
    assert net.space.is_valid(arch) and result["loss"] > 0
    assert not torch.equal(net.stem[0].weight, before)
    for name, p in net.named_parameters():
        parts = name.split(".")
        if "edges" in parts:  # blocks.<i>.edges.<edge>.<op>....
            edge, op = parts[parts.index("edges") + 1: parts.index("edges") + 3]
            assert (p.grad is not None) == (arch[edge] == op), name


def test_ranking_returns_every_architecture_once_best_first():
    net = shared()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    rng = random.Random(0)
    for step in range(3):
        supernet_train_step(net, optimizer, batch(step), rng)
    archs = [net.space.sample(random.Random(i)) for i in range(6)]
    archs = list({net.space.arch_hash(a): a for a in archs}.values())
    val = [batch(50), batch(51)]
    ranking = rank_with_shared_weights(net, archs, val)
    assert sorted(net.space.arch_hash(a) for a, _ in ranking) == sorted(net.space.arch_hash(a) for a in archs)
    accs = [acc for _, acc in ranking]
    assert accs == sorted(accs, reverse=True)
    assert all(0.0 <= acc <= 1.0 for acc in accs)
    # One (inputs, labels) pair works as well as a list of batches.
    assert len(rank_with_shared_weights(net, archs[:2], batch(50))) == 2
