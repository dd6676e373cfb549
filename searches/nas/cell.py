"""NAS-Bench-201 style cell space.

A cell is a small DAG of 4 nodes: node 0 is the cell input, node 3 its
output, and every edge ``i <- j`` (0 <= j < i <= 3) carries one operation.
Node ``i`` is the sum of its incoming edges. The six edges are the decisions
``e1_0, e2_0, e2_1, e3_0, e3_1, e3_2``; with all five ops that is 5**6 =
15,625 cells, as in NAS-Bench-201.

The same cell is stacked into a fixed macro skeleton::

    stem conv -> N cells -> reduction -> N cells -> reduction -> N cells -> pool -> linear

where a reduction is a stride-2 residual block that doubles the channels.
The one-shot supernets in ``oneshot.py`` reuse the ops and the skeleton.
"""
from __future__ import annotations

import torch
from torch import nn

from .space import Decision, InvalidArchitecture, SearchSpace

NODES = 4
# Edge "ei_j" feeds node i from node j, in the order NAS-Bench-201 prints them.
EDGES = tuple(f"e{i}_{j}" for i in range(1, NODES) for j in range(i))


def edge_nodes(edge: str) -> tuple[int, int]:
    """``"e3_1"`` -> ``(3, 1)``: (target node, source node)."""
    known = _EDGE_NODES.get(edge)
    if known is not None:
        return known
    target, source = edge[1:].split("_")
    return int(target), int(source)


_EDGE_NODES: dict[str, tuple[int, int]] = {}
_EDGE_NODES.update({e: edge_nodes(e) for e in EDGES})  # canonical_cell asks for these on every hash


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride=1, affine=True, track_stats=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_stats),
        )

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    """The "none" op: the edge carries nothing (only a supernet ever runs it)."""

    def forward(self, x):
        return x.mul(0.0)


# One builder per op name: builder(channels, affine, track_stats) -> nn.Module.
# Every op keeps the channel count and the spatial size.
OPS = {
    "none": lambda c, affine, track: Zero(),
    "skip": lambda c, affine, track: nn.Identity(),
    "conv1x1": lambda c, affine, track: ReLUConvBN(c, c, 1, 1, affine, track),
    "conv3x3": lambda c, affine, track: ReLUConvBN(c, c, 3, 1, affine, track),
    # count_include_pad=False keeps border averages unbiased on tiny feature maps.
    "avgpool3x3": lambda c, affine, track: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
}
ALL_OPS = tuple(OPS)
# Ops that map an all-zero input to an all-zero output. A conv op does not:
# its BatchNorm adds a learned bias, so a conv edge from an empty node stays.
ZERO_PRESERVING = {"none", "skip", "avgpool3x3"}


def canonical_cell(arch: dict) -> dict:
    """Set to "none" every edge that provably cannot change the cell's output.

    Two rules, both exact for the networks this module builds:

    1. An edge from a node that is always zero (nothing non-zero flows into
       it) through a zero-preserving op adds exactly zero.
    2. An edge into a node that has no non-"none" path to the output node
       cannot influence the output.

    Nothing else is merged: e.g. a conv edge from an always-zero node still
    adds its BatchNorm bias, so it is kept.
    """
    arch = dict(arch)
    # Rule 1, in topological order: node 0 carries the input, never zero.
    zero = {0: False}
    for i in range(1, NODES):
        for j in range(i):
            edge = f"e{i}_{j}"
            if zero[j] and arch[edge] in ZERO_PRESERVING:
                arch[edge] = "none"
        zero[i] = all(arch[f"e{i}_{j}"] == "none" for j in range(i))
    # Rule 2, backwards from the output node.
    alive = {NODES - 1: True}
    for j in range(NODES - 2, -1, -1):
        alive[j] = any(alive[i] and arch[f"e{i}_{j}"] != "none" for i in range(j + 1, NODES))
    for edge in EDGES:
        if not alive[edge_nodes(edge)[0]]:
            arch[edge] = "none"
    return arch


def output_reaches_input(arch: dict) -> bool:
    """True when some path of non-"none" edges leads from node 0 to the output node."""
    reached = {0}
    for i in range(1, NODES):
        if any(j in reached and arch[f"e{i}_{j}"] != "none" for j in range(i)):
            reached.add(i)
    return NODES - 1 in reached


def cell_genotype(arch: dict) -> str:
    """NAS-Bench-201 notation: ``|conv3x3~0|+|skip~0|conv1x1~1|+|...|``."""
    return "+".join(
        "|" + "|".join(f"{arch[f'e{i}_{j}']}~{j}" for j in range(i)) + "|"
        for i in range(1, NODES))


# NAS-Bench-201 spells the ops differently; accept its strings too.
_NB201_NAMES = {"skip_connect": "skip", "nor_conv_1x1": "conv1x1",
                "nor_conv_3x3": "conv3x3", "avg_pool_3x3": "avgpool3x3"}


def arch_from_genotype(text: str) -> dict:
    """Inverse of ``cell_genotype``; also reads NAS-Bench-201's own op names."""
    arch = {}
    nodes = text.strip().split("+")
    if len(nodes) != NODES - 1:
        raise InvalidArchitecture(f"a cell genotype has {NODES - 1} nodes separated by '+'")
    for i, node in enumerate(nodes, start=1):
        items = [item for item in node.strip().strip("|").split("|") if item]
        if len(items) != i:
            raise InvalidArchitecture(f"node {i} of a genotype needs {i} inputs, got {len(items)}")
        for item in items:
            op, _, source = item.partition("~")
            arch[f"e{i}_{int(source)}"] = _NB201_NAMES.get(op, op)
    return arch


class FixedCell(nn.Module):
    """One cell with one op per edge; "none" edges are simply left out."""

    def __init__(self, arch: dict, channels: int):
        super().__init__()
        live = [e for e in EDGES if arch[e] != "none"]  # EDGES is in topological order
        self.edges = nn.ModuleDict({e: OPS[arch[e]](channels, True, True) for e in live})
        self.targets = [edge_nodes(e)[0] for e in live]
        self.sources = [edge_nodes(e)[1] for e in live]
        self.num_nodes = NODES  # an attribute, not a global, so TorchScript can read it

    def forward(self, x):
        nodes = [x] + [torch.zeros_like(x)] * (self.num_nodes - 1)
        k = 0
        for op in self.edges.values():
            target = self.targets[k]
            nodes[target] = nodes[target] + op(nodes[self.sources[k]])
            k += 1
        return nodes[-1]


class ResidualReduction(nn.Module):
    """Stride-2 residual block between stages (NAS-Bench-201's ResNet block)."""

    def __init__(self, c_in, c_out, track_stats=True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, True, track_stats)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, True, track_stats)
        # ceil_mode: a 1x1 or odd-sized map still pools to the conv branch's size.
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, ceil_mode=True),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def check_image_shape(input_shape) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"this space needs image inputs (channels, height, width), got {tuple(input_shape)}")
    return tuple(int(v) for v in input_shape)


def skeleton(input_shape, channels, cells_per_stage, num_classes, make_cell, track_stats=True):
    """The macro network around the cells: ``(stem, blocks, head)``.

    ``make_cell(c)`` builds one cell of ``c`` channels; ``blocks`` holds the
    cells and the ``ResidualReduction`` blocks in order.
    """
    in_channels = check_image_shape(input_shape)[0]
    stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels, track_running_stats=track_stats))
    blocks, c = [], channels
    for stage in range(3):
        if stage:
            blocks.append(ResidualReduction(c, 2 * c, track_stats))
            c *= 2
        blocks += [make_cell(c) for _ in range(cells_per_stage)]
    head = nn.Sequential(nn.BatchNorm2d(c, track_running_stats=track_stats), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
    return stem, nn.ModuleList(blocks), head


class CellNetwork(nn.Module):
    def __init__(self, arch, input_shape, num_classes, channels=16, cells_per_stage=1):
        super().__init__()
        self.stem, self.blocks, self.head = skeleton(
            input_shape, channels, cells_per_stage, num_classes, lambda c: FixedCell(arch, c))

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class CellSpace(SearchSpace):
    """NAS-Bench-201 cells: one op per edge, stacked into a 3-stage network.

    ``ops`` restricts the op set (``("none", "skip", "conv3x3")`` gives 729
    cells); ``cells_per_stage`` and ``channels`` set the depth and the width
    of the first stage (NAS-Bench-201 itself uses 5 and 16).
    """

    name = "cell"
    label = "NAS-Bench-201 cell (4 nodes, 6 edges)"

    def __init__(self, ops=ALL_OPS, cells_per_stage: int = 1, channels: int = 16):
        self.ops = tuple(ops)
        unknown = [op for op in self.ops if op not in OPS]
        if unknown:
            raise ValueError(f"unknown cell ops {unknown}; choose from {list(OPS)}")
        if not any(op != "none" for op in self.ops):
            raise ValueError("a cell space needs at least one op besides 'none'")
        self.cells_per_stage = int(cells_per_stage)
        self.channels = int(channels)
        self.decisions = [Decision(edge, self.ops) for edge in EDGES]

    def settings(self):
        return {"ops": list(self.ops), "cells_per_stage": self.cells_per_stage,
                "channels": self.channels}

    def check(self, arch):
        if not output_reaches_input(arch):
            raise InvalidArchitecture("every path from the cell input to its output contains 'none'")

    def canonical(self, arch):
        return canonical_cell(arch)

    def genotype(self, arch):
        return cell_genotype(self.canonical(arch))

    def build(self, arch, input_shape, num_classes):
        arch = self.validate(arch)
        return CellNetwork(arch, input_shape, num_classes, self.channels, self.cells_per_stage)
