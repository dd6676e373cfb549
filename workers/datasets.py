"""Data sets as tensors, split by the search's seed, cached per worker process.

Small data sets live whole on the training device and batches are sliced
from them (the fastest small-image training scripts do the same): no
DataLoader processes, no per-batch host-to-device copies.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train / validation / test when a set has no test split


@dataclass
class DataSplits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    mean: list[float]
    std: list[float]

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device) -> "DataSplits":
        moved = {k: getattr(self, k).to(device) for k in
                 ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return DataSplits(**moved, class_names=self.class_names, mean=self.mean, std=self.std)


def _normalised(x_parts, y_parts, class_names) -> DataSplits:
    """Standardise every split with the training split's per-channel mean and std."""
    x_train = x_parts[0]
    dims = (0, 2, 3)
    mean = x_train.mean(dim=dims)
    std = x_train.std(dim=dims).clamp_min(1e-6)
    norm = [((x - mean[None, :, None, None]) / std[None, :, None, None]).contiguous() for x in x_parts]
    return DataSplits(norm[0], y_parts[0], norm[1], y_parts[1], norm[2], y_parts[2],
                      class_names=list(class_names), mean=mean.tolist(), std=std.tolist())


def _split_three(x: torch.Tensor, y: torch.Tensor, seed: int):
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(x), generator=gen)
    n_train = int(len(x) * SPLIT_FRACTIONS[0])
    n_val = int(len(x) * SPLIT_FRACTIONS[1])
    parts = (order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])
    return [x[p] for p in parts], [y[p] for p in parts]


def _split_train_val(x, y, x_test, y_test, seed: int, val_fraction: float = 0.1):
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(x), generator=gen)
    n_val = int(len(x) * val_fraction)
    return [x[order[n_val:]], x[order[:n_val]], x_test], [y[order[n_val:]], y[order[:n_val]], y_test]


def load_digits_tensors():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    return x, y, [str(c) for c in range(10)]


def make_synthetic_tensors(n: int = 2000, size: int = 16, classes: int = 10):
    """A learnable synthetic set: each class is a smooth random prototype plus noise and a shift."""
    gen = torch.Generator().manual_seed(1234)  # the data never depend on a search's seed
    coarse = torch.rand(classes, 1, 4, 4, generator=gen)
    prototypes = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.arange(n) % classes
    x = prototypes[y] + 0.35 * torch.randn(n, 1, size, size, generator=gen)
    shifts = torch.randint(-1, 2, (n, 2), generator=gen)
    x = torch.stack([torch.roll(img, shifts=(int(s[0]), int(s[1])), dims=(1, 2)) for img, s in zip(x, shifts)])
    return x.float(), y.long(), [f"class {c}" for c in range(classes)]


def _torchvision_tensors(cls, root: Path):
    """Read a torchvision image set already on disk (download=False: never fetched)."""
    train = cls(root=str(root), train=True, download=False)
    test = cls(root=str(root), train=False, download=False)

    def as_tensors(ds):
        data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
        if data.ndim == 3:  # MNIST-style N×H×W
            data = data.unsqueeze(1)
        else:  # CIFAR-style N×H×W×C
            data = data.permute(0, 3, 1, 2)
        targets = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        return data.float() / 255.0, targets

    x, y = as_tensors(train)
    x_test, y_test = as_tensors(test)
    return x, y, x_test, y_test, list(train.classes)


def load(name: str, seed: int, data_dir: str, resolution: int = 0) -> DataSplits:
    """The splits of data set ``name`` for a search with ``seed`` (CPU tensors), optionally
    scaled to ``resolution`` pixels a side (a proxy: cheaper candidates, same ranking)."""
    data = _load(name, seed, data_dir)
    if not resolution or resolution == data.input_shape[-1]:
        return data
    return _resized(data, int(resolution))


def _resized(data: DataSplits, side: int) -> DataSplits:
    def scale(x):
        return torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    return DataSplits(scale(data.x_train), data.y_train, scale(data.x_val), data.y_val, scale(data.x_test),
                      data.y_test, class_names=data.class_names, mean=data.mean, std=data.std)


@lru_cache(maxsize=4)
def _load(name: str, seed: int, data_dir: str) -> DataSplits:
    if name == "digits":
        x, y, classes = load_digits_tensors()
        xs, ys = _split_three(x, y, seed)
        return _normalised(xs, ys, classes)
    if name == "synthetic":
        x, y, classes = make_synthetic_tensors()
        xs, ys = _split_three(x, y, seed)
        return _normalised(xs, ys, classes)
    import torchvision.datasets as tvd

    classes_by_name = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}
    if name not in classes_by_name:
        raise ValueError(f"unknown data set {name!r}")
    x, y, x_test, y_test, classes = _torchvision_tensors(classes_by_name[name], Path(data_dir))
    xs, ys = _split_train_val(x, y, x_test, y_test, seed)
    return _normalised(xs, ys, classes)
