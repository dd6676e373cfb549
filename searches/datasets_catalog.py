"""The data sets a search can use, and whether each is on this machine.

Loading lives with the workers (``workers.datasets``); this catalogue is
what the form needs: names, labels, and for data sets read from DATA_DIR,
the files that must be there (nothing is ever downloaded).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    label: str
    task: str = "image-classification"
    # Paths under DATA_DIR that must exist; empty for data sets that ship with a package.
    required_files: tuple = field(default_factory=tuple)

    def missing_files(self, data_dir: Path | None = None) -> list[str]:
        data_dir = Path(data_dir or settings.DATA_DIR)
        return [f for f in self.required_files if not (data_dir / f).exists()]

    def availability(self, data_dir: Path | None = None) -> tuple[bool, str]:
        """(available, reason): the reason says what to put where when it is not."""
        missing = self.missing_files(data_dir)
        if not missing:
            return True, ""
        data_dir = Path(data_dir or settings.DATA_DIR)
        return False, (f"not found under {data_dir}: {', '.join(missing[:3])}"
                       f"{' …' if len(missing) > 3 else ''} (NASWeb never downloads data; "
                       f"copy the torchvision files there)")


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("digits", "Digits (scikit-learn, 8×8, 1,797 images, 10 classes)"),
    DatasetInfo("synthetic", "Synthetic shapes (generated, 16×16, 2,000 images, 10 classes)"),
    DatasetInfo("mnist", "MNIST (torchvision, from DATA_DIR)",
                required_files=tuple(f"MNIST/raw/{f}" for f in _MNIST_FILES)),
    DatasetInfo("fashion_mnist", "Fashion-MNIST (torchvision, from DATA_DIR)",
                required_files=tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_FILES)),
    DatasetInfo("cifar10", "CIFAR-10 (torchvision, from DATA_DIR)",
                required_files=tuple(f"cifar-10-batches-py/{f}" for f in (
                    "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                    "data_batch_5", "test_batch", "batches.meta"))),
)}
