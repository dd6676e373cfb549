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

``--table cell15625`` builds the larger table: all five ops (5**6 = 15,625
combinations, 10,372 distinct trainable cells after ``canonical_cell``),
trained for 4 epochs at a higher learning rate so that one cell takes about
0.35 s on one CPU thread (about an hour on one core). Rows are appended to a
progress file as they finish, in a seeded random order, so an interrupted
build resumes where it stopped (``--resume``) and a partial table is a
uniform sample of the space; the finished table is written gzipped.

    nice -n 15 python -m bench.tabular.build_table --table cell15625 --workers 1 \
        --progress var/cell15625.jsonl --resume
"""
from __future__ import annotations

import argparse
import functools
import gzip
import json
import random
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
# The tables this script builds: space settings, recipe and output file of each.
TABLES = {
    "cell729": {"space_settings": SPACE_SETTINGS, "recipe": RECIPE, "path": TABLE},
    "cell15625": {
        "space_settings": {"ops": ["none", "skip", "conv1x1", "conv3x3", "avgpool3x3"],
                           "cells_per_stage": 1, "channels": 4},
        # Half the epochs at four times the learning rate: 0.35 s a cell instead of 0.73 s,
        # with validation accuracies still spread over about 0.6-0.9.
        "recipe": dict(RECIPE, epochs=4, lr=2e-2),
        "path": HERE / "digits_cell15625.json.gz",
    },
}


def read_table(path: Path) -> dict:
    """A table file, gzipped (``.gz``) or not."""
    data = path.read_bytes()
    return json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)


def write_table(path: Path, table: dict) -> None:
    text = json.dumps(table, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(text, mtime=0) if path.suffix == ".gz" else text)


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


def _train_one(job: tuple[str, dict]) -> dict:
    preset = TABLES[job[0]]
    return train(CellSpace(**preset["space_settings"]), job[1], _worker_data(), preset["recipe"])


def _read_progress(path: Path | None) -> dict:
    rows = {}
    if path and path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["hash"]] = row["row"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=sorted(TABLES), default="cell729")
    parser.add_argument("--workers", type=int, default=2, help="training processes (one thread each)")
    parser.add_argument("--limit", type=int, default=None, help="train only the first N cells")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--progress", type=Path, default=None,
                        help="append each finished row to this JSON-lines file (keep it outside git)")
    parser.add_argument("--resume", action="store_true", help="skip the cells already in --progress")
    parser.add_argument("--partial", action="store_true",
                        help="only write the table from the rows in --progress, training nothing")
    args = parser.parse_args()
    preset = TABLES[args.table]
    out = args.out or preset["path"]

    space = CellSpace(**preset["space_settings"])
    archs = [arch for _, arch in iter_grid(space)]
    random.Random(preset["recipe"]["seed"]).shuffle(archs)  # a partial build is a uniform sample
    archs = archs[:args.limit]
    rows = _read_progress(args.progress) if (args.resume or args.partial) else {}
    todo = [] if args.partial else [a for a in archs if space.arch_hash(a) not in rows]
    print(f"training {len(todo)} of {len(archs)} cells ({space.size()} combinations) "
          f"with {args.workers} workers", flush=True)
    started = time.perf_counter()
    progress = args.progress.open("a") if args.progress else None
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for i, row in enumerate(pool.imap(_train_one, [(args.table, a) for a in todo]), start=1):
            h = space.arch_hash(row["arch"])
            rows[h] = row
            if progress:
                progress.write(json.dumps({"hash": h, "row": row}, separators=(",", ":")) + "\n")
                progress.flush()
            if i % 25 == 0 or i == len(todo):
                print(f"{i}/{len(todo)} cells, {time.perf_counter() - started:.0f} s; "
                      f"last {row['genotype']} val {row['val_acc']:.3f}", flush=True)
    train_seconds = sum(r["train_seconds"] for r in rows.values())
    table = {"dataset": "sklearn.datasets.load_digits", "space": "cell",
             "space_settings": preset["space_settings"], "recipe": preset["recipe"],
             "combinations": space.size(), "distinct_cells": len(archs), "complete": len(rows) >= len(archs),
             "build_cpu_seconds": round(train_seconds), "archs": rows}
    write_table(out, table)
    print(f"wrote {out} ({out.stat().st_size // 1024} kB, {len(rows)} of {len(archs)} cells, "
          f"{train_seconds:.0f} s of training) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
