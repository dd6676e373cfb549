"""Train every cell of a reduced NAS-Bench-201 space once, and keep the results as a table.

The space is ``CellSpace(ops=("none", "skip", "conv3x3"))``: 3**6 = 729
decision combinations, of which 352 are distinct trainable cells once
invalid ones are dropped and equivalent ones merged. Each is trained
briefly, from the same seed, on scikit-learn's ``load_digits`` (8x8
grayscale digits; no download), and its validation accuracy after every
epoch and its final validation and test accuracies are written to
``digits_cell729.json``. ``compare.py`` then runs the search strategies
against the table with lookups only.

    python -m bench.tabular.build_table              # about 5 minutes on 2 CPU cores
    python -m bench.tabular.build_table --limit 6    # a quick smoke run
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from searches.nas.cell import CellSpace
from searches.nas.strategies.common import iter_grid

HERE = Path(__file__).resolve().parent
TABLE = HERE / "digits_cell729.json"

# Tiny widths and a small training set: fast, and the cells then differ clearly
# (validation accuracies spread over about 0.8-0.95 instead of crowding near 0.99).
SPACE_SETTINGS = {"ops": ["none", "skip", "conv3x3"], "cells_per_stage": 1, "channels": 4}
RECIPE = {
    "seed": 0,
    "epochs": 8,
    "batch_size": 64,
    "lr": 5e-3,             # Adam, cosine-annealed to 0 over the epochs
    "weight_decay": 1e-4,
    "split": [400, 700],    # train, validation; the remaining 697 images are the test set
}


def load_data(seed: int, split: list[int]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Digits as (N, 1, 8, 8) tensors, standardised with the training set's statistics."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x = torch.tensor(x[order], dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y[order], dtype=torch.long)
    n_train, n_val = split
    mean, std = x[:n_train].mean(), x[:n_train].std()
    x = (x - mean) / std
    return {"train": (x[:n_train], y[:n_train]),
            "val": (x[n_train:n_train + n_val], y[n_train:n_train + n_val]),
            "test": (x[n_train + n_val:], y[n_train + n_val:])}


def accuracy(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    model.eval()
    with torch.no_grad():
        x, y = data
        return (model(x).argmax(1) == y).float().mean().item()


def train(space: CellSpace, arch: dict, data: dict, recipe: dict) -> dict:
    """One short training run; the same seed for every architecture."""
    torch.manual_seed(recipe["seed"])
    model = space.build(arch, (1, 8, 8), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe["epochs"])
    x, y = data["train"]
    order = torch.Generator().manual_seed(recipe["seed"])
    started = time.perf_counter()
    curve = []
    for _ in range(recipe["epochs"]):
        model.train()
        for batch in torch.randperm(len(y), generator=order).split(recipe["batch_size"]):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        curve.append(round(accuracy(model, data["val"]), 4))
    return {"arch": arch, "genotype": space.genotype(arch), "val_curve": curve,
            "val_acc": curve[-1], "test_acc": round(accuracy(model, data["test"]), 4),
            "params": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(time.perf_counter() - started, 2)}


@functools.lru_cache(maxsize=1)
def _worker_data() -> dict:
    torch.set_num_threads(1)
    return load_data(RECIPE["seed"], RECIPE["split"])


def _train_one(arch: dict) -> dict:
    return train(CellSpace(**SPACE_SETTINGS), arch, _worker_data(), RECIPE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="training processes (one thread each)")
    parser.add_argument("--limit", type=int, default=None, help="train only the first N cells")
    parser.add_argument("--out", type=Path, default=TABLE)
    args = parser.parse_args()

    space = CellSpace(**SPACE_SETTINGS)
    archs = [arch for _, arch in iter_grid(space)][:args.limit]
    print(f"training {len(archs)} cells ({space.size()} combinations) with {args.workers} workers", flush=True)
    started = time.perf_counter()
    rows = {}
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for i, row in enumerate(pool.imap(_train_one, archs), start=1):
            rows[space.arch_hash(row["arch"])] = row
            if i % 25 == 0 or i == len(archs):
                print(f"{i}/{len(archs)} cells, {time.perf_counter() - started:.0f} s; "
                      f"last {row['genotype']} val {row['val_acc']:.3f}", flush=True)
    table = {"dataset": "sklearn.datasets.load_digits", "space": "cell", "space_settings": SPACE_SETTINGS,
             "recipe": RECIPE, "combinations": space.size(), "archs": rows}
    args.out.write_text(json.dumps(table, separators=(",", ":")))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} kB) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
