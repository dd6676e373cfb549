"""One-shot NAS over the cell space (``cell.py``): DARTS and weight sharing.

Both supernets use the same stem / stages / reductions as ``CellSpace``'s
networks; only the cells differ.

* DARTS (Liu et al. 2019): every edge runs all ops and outputs their sum
  weighted by ``softmax(alpha[edge])``. ``alpha`` (one row per edge, one
  column per op, shared by all cells) is learnt on validation batches while
  the weights are learnt on training batches (first-order approximation).
* Weight sharing (ENAS / single-path one-shot): every edge holds all ops, a
  forward pass runs only the ops of one architecture, and training samples a
  uniformly random valid architecture per step. The trained supernet then
  ranks many architectures cheaply with its shared weights.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from .cell import (ALL_OPS, EDGES, NODES, OPS, CellSpace, ResidualReduction, canonical_cell,
                   edge_nodes, skeleton)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _to(batch, device):
    x, y = batch
    return x.to(device), y.to(device)


def _run_blocks(supernet, x, cell_arg):
    x = supernet.stem(x)
    for block in supernet.blocks:
        x = block(x) if isinstance(block, ResidualReduction) else block(x, cell_arg)
    return supernet.head(x)


# --- DARTS -------------------------------------------------------------------

class MixedOp(nn.Module):
    def __init__(self, ops, channels):
        super().__init__()
        self.names = list(ops)
        # affine=False as in DARTS: a learnt BN scale would compete with alpha.
        self.ops = nn.ModuleList(OPS[name](channels, False, True) for name in self.names)

    def forward(self, x, weights):
        # "none" outputs zeros, so its term is left out; its weight still takes
        # a share of the softmax, which is how it competes with the others.
        return sum(w * op(x) for w, op, name in zip(weights, self.ops, self.names) if name != "none")


class DartsCell(nn.Module):
    def __init__(self, ops, channels):
        super().__init__()
        self.edges = nn.ModuleDict({edge: MixedOp(ops, channels) for edge in EDGES})

    def forward(self, x, weights):
        nodes = [x] + [None] * (NODES - 1)
        for row, edge in enumerate(EDGES):  # topological order
            target, source = edge_nodes(edge)
            out = self.edges[edge](nodes[source], weights[row])
            nodes[target] = out if nodes[target] is None else nodes[target] + out
        return nodes[-1]


class _Supernet(nn.Module):
    """What both supernets share: the macro network of ``CellSpace(ops, cells_per_stage,
    channels)`` around cells that ``make_cell(ops, channels)`` builds."""

    def __init__(self, ops, channels, input_shape, num_classes, cells_per_stage, make_cell, track_stats=True):
        super().__init__()
        self.space = CellSpace(ops, cells_per_stage, channels)
        self.ops = self.space.ops
        self.stem, self.blocks, self.head = skeleton(
            input_shape, channels, cells_per_stage, num_classes, lambda c: make_cell(self.ops, c),
            track_stats=track_stats)


class DartsSupernet(_Supernet):
    """A continuous relaxation of ``CellSpace(ops, cells_per_stage, channels)``."""

    def __init__(self, ops=ALL_OPS, channels: int = 16, input_shape=(3, 32, 32),
                 num_classes: int = 10, cells_per_stage: int = 1):
        super().__init__(ops, channels, input_shape, num_classes, cells_per_stage, DartsCell)
        # Small random values: near-uniform mixing at the start, but no exact ties.
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(self.ops)))

    def forward(self, x):
        return _run_blocks(self, x, F.softmax(self.alpha, dim=-1))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alpha"]


# The DARTS paper's search: 50 epochs of CIFAR-10's 25,000 search images in batches of 64.
PAPER_ARCH_STEPS = 50 * 25_000 // 64


def darts_arch_lr(total_steps: int | None, a_lr: float = 3e-4, max_scale: float = 30.0) -> float:
    """The architecture learning rate for a search of ``total_steps`` alpha steps.

    Adam moves each logit by about ``a_lr`` per step whatever the gradient's
    scale, so the paper's 3e-4 over its ~19,500 steps lets alpha travel ~6;
    on digits (~8 steps an epoch) the same rate moves it by ~0.1 in 50
    epochs and the softmax weights stay near uniform (0.21 against 0.20).
    The rate is scaled up so that alpha can travel as far as in the paper,
    at most ``max_scale`` times.
    """
    if not total_steps or total_steps >= PAPER_ARCH_STEPS:
        return a_lr
    return a_lr * min(max_scale, PAPER_ARCH_STEPS / total_steps)


def darts_optimizers(supernet: DartsSupernet, w_lr: float = 0.025, a_lr: float = 3e-4):
    """The DARTS paper's optimisers: ``(SGD for weights, Adam for alpha)``; see ``darts_arch_lr``."""
    w_opt = torch.optim.SGD(supernet.weight_parameters(), lr=w_lr, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(supernet.arch_parameters(), lr=a_lr, betas=(0.5, 0.999), weight_decay=1e-3)
    return w_opt, a_opt


def darts_step(supernet: DartsSupernet, w_opt, a_opt, train_batch, val_batch,
               grad_clip: float = 5.0) -> dict:
    """One first-order DARTS step: alpha on ``val_batch``, then weights on ``train_batch``.

    Each batch is an ``(inputs, labels)`` pair. Returns both losses as floats.
    """
    supernet.train()
    device = _device(supernet)

    x, y = _to(val_batch, device)
    a_opt.zero_grad()
    val_loss = F.cross_entropy(supernet(x), y)
    val_loss.backward()
    a_opt.step()

    x, y = _to(train_batch, device)
    w_opt.zero_grad()
    a_opt.zero_grad()  # the training loss must not leak into alpha's next step
    train_loss = F.cross_entropy(supernet(x), y)
    train_loss.backward()
    nn.utils.clip_grad_norm_(supernet.weight_parameters(), grad_clip)
    w_opt.step()
    return {"train_loss": train_loss.item(), "val_loss": val_loss.item()}


def darts_edge_weights(supernet: DartsSupernet) -> dict[str, dict[str, float]]:
    """``{edge: {op: softmax weight}}`` in plain floats, ready to send to a browser."""
    weights = F.softmax(supernet.alpha.detach(), dim=-1).cpu().tolist()
    return {edge: dict(zip(supernet.ops, row)) for edge, row in zip(EDGES, weights)}


def darts_derive(supernet: DartsSupernet) -> dict:
    """The discrete architecture: on each edge the op with the largest weight, never "none".

    As in DARTS, "none" is excluded from the argmax: its weight only scales
    the edge, and taking it could cut the output off from the input. Every
    edge therefore gets a real op, so the result is always a valid
    ``supernet.space`` architecture (ties go to the op listed first).
    """
    arch = {}
    for edge, weights in darts_edge_weights(supernet).items():
        candidates = [op for op in supernet.ops if op != "none"]
        arch[edge] = max(candidates, key=lambda op: weights[op])
    return supernet.space.validate(arch)


def is_skip_collapse(arch: dict) -> bool:
    """True when every edge that matters is a skip: DARTS's well-known failure mode."""
    live = [op for op in canonical_cell(arch).values() if op != "none"]
    return bool(live) and all(op == "skip" for op in live)


# --- weight sharing ----------------------------------------------------------

class SharedCell(nn.Module):
    def __init__(self, ops, channels):
        super().__init__()
        # track_running_stats=False: running statistics averaged over many different
        # sampled paths fit none of them, so BN always uses the batch's own statistics.
        self.edges = nn.ModuleDict({
            edge: nn.ModuleDict({op: OPS[op](channels, True, False) for op in ops if op != "none"})
            for edge in EDGES})

    def forward(self, x, arch):
        nodes = [x] + [torch.zeros_like(x)] * (NODES - 1)
        for edge in EDGES:
            if arch[edge] != "none":
                target, source = edge_nodes(edge)
                nodes[target] = nodes[target] + self.edges[edge][arch[edge]](nodes[source])
        return nodes[-1]


class SharedSupernet(_Supernet):
    """All architectures of ``CellSpace(ops, cells_per_stage, channels)`` in one set of weights."""

    def __init__(self, ops=ALL_OPS, channels: int = 16, input_shape=(3, 32, 32),
                 num_classes: int = 10, cells_per_stage: int = 1):
        super().__init__(ops, channels, input_shape, num_classes, cells_per_stage, SharedCell, track_stats=False)

    def forward(self, x, arch: dict):
        return _run_blocks(self, x, self.space.validate(arch))


def supernet_train_step(supernet: SharedSupernet, optimizer, batch, rng: random.Random,
                        grad_clip: float = 5.0) -> dict:
    """Train the shared weights for one batch on one uniformly sampled valid architecture."""
    supernet.train()
    arch = supernet.space.sample(rng)
    x, y = _to(batch, _device(supernet))
    optimizer.zero_grad()
    loss = F.cross_entropy(supernet(x, arch), y)
    loss.backward()
    nn.utils.clip_grad_norm_(supernet.parameters(), grad_clip)
    optimizer.step()
    return {"loss": loss.item(), "arch": arch}


def _batches(data):
    """``data`` is one ``(inputs, labels)`` pair of tensors or an iterable of such pairs."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        return [tuple(data)]
    return list(data)


def rank_with_shared_weights(supernet: SharedSupernet, archs: list[dict],
                             val_data) -> list[tuple[dict, float]]:
    """``[(arch, accuracy)]`` on ``val_data`` with the shared weights, best first.

    One entry per given architecture (in canonical form); ties keep the given order.
    """
    batches = _batches(val_data)
    device = _device(supernet)
    was_training = supernet.training
    supernet.eval()
    results = []
    with torch.no_grad():
        for arch in archs:
            arch = supernet.space.validate(arch)
            correct = total = 0
            for batch in batches:
                x, y = _to(batch, device)
                correct += int((supernet(x, arch).argmax(dim=1) == y).sum())
                total += len(y)
            results.append((arch, correct / max(total, 1)))
    supernet.train(was_training)
    return sorted(results, key=lambda item: -item[1])
