"""Data sets as tensors, split by the search's seed, cached per worker process.

Small data sets live whole on the training device and batches are sliced
from them (the fastest small-image training scripts do the same): no
DataLoader processes, no per-batch host-to-device copies.

Besides the built-in sets, ``load`` reads the sets users bring (names as in
``searches.datasets_catalog``): image folders (``folder:<name>`` under
``DATA_DIR/images``, or an uploaded zip) through torchvision's ``ImageFolder``,
resized to a fixed side; and text tables (``text:<name>`` under ``DATA_DIR/text``,
or an uploaded CSV/JSONL), split by the seed, with a ``Tokenizer`` fitted on the
training split only, as ``(N, seq_len)`` LongTensors of token ids (no normalisation).
The tokenizer's state rides along in ``DataSplits.tokenizer`` so the checkpoint keeps it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
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
    # Text sets: the fitted tokenizer's state (``Tokenizer.to_dict``); None for images.
    tokenizer: dict | None = None

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device) -> "DataSplits":
        moved = {k: getattr(self, k).to(device) for k in
                 ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return DataSplits(**moved, class_names=self.class_names, mean=self.mean, std=self.std,
                          tokenizer=self.tokenizer)

    @property
    def is_text(self) -> bool:
        return self.tokenizer is not None


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


_resized_sets: dict[tuple[int, int], tuple[DataSplits, DataSplits]] = {}  # (id, side) -> (set, resized)


def load(name: str, seed: int, data_dir: str, resolution: int = 0) -> DataSplits:
    """The splits of data set ``name`` for a search with ``seed`` (CPU tensors), optionally
    scaled to ``resolution`` pixels a side (a proxy: cheaper candidates, same ranking)."""
    data = _load_any(name, seed, data_dir)
    if not resolution or data.is_text or resolution == data.input_shape[-1]:
        return data
    key = (id(data), int(resolution))
    if key not in _resized_sets:  # the same object for every candidate, as for the sets above
        while len(_resized_sets) >= 4:
            _resized_sets.pop(next(iter(_resized_sets)))
        _resized_sets[key] = (data, _resized(data, int(resolution)))  # holding data keeps its id unique
    return _resized_sets[key][1]


_last_moved: tuple | None = None  # (the loaded splits, device, their copy there)


def on_device(data: DataSplits, device) -> DataSplits:
    """``data`` on ``device``, copied once while a worker's candidates keep using the same set.

    ``load`` hands back the same cached splits for every candidate of a search; copying a
    large set to a GPU for each one costs about as much as a short epoch. Only the last set
    is kept there, so a worker that moves on to another search frees the old copy (an
    idle worker keeps its last one).
    """
    global _last_moved
    device = torch.device(device)
    if _last_moved is None or _last_moved[0] is not data or _last_moved[1] != device:
        _last_moved = None  # drop the old copy before making the new one
        _last_moved = (data, device, data.to(device))
    # A wrapper of its own around the shared tensors: a caller that swaps a split (a proxy's
    # subset) changes its own view, never what the next candidate gets.
    return replace(_last_moved[2])


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


# --- data sets users bring: image folders and text tables ------------------------------

TEXT_MAX_VOCAB = 10000  # as many ids as the text space's default vocabulary
TEXT_MIN_LEN, TEXT_MAX_LEN = 8, 256
_GRAY_MODES = ("1", "L", "LA")


def _load_any(name: str, seed: int, data_dir: str) -> DataSplits:
    """Built-in sets by name; the others resolved to a file or folder, cached per version of it."""
    prefix, _, rest = name.partition(":")
    if prefix not in ("text", "folder", "upload"):
        return _load(name, seed, data_dir)
    kind, path = resolve(name, data_dir)
    stamp = path.stat()
    return _load_path(kind, str(path), stamp.st_mtime_ns, stamp.st_size, int(seed), _image_side())


def resolve(name: str, data_dir: str) -> tuple[str, Path]:
    """("text" | "folder", path) of a data set users brought; ValueError when it is not there."""
    from searches.datasets_catalog import DISK_NAME, TEXT_SUFFIXES

    prefix, _, rest = name.partition(":")
    root = Path(data_dir)
    if prefix == "text" and DISK_NAME.match(rest):
        found = [root / "text" / f"{rest}{s}" for s in TEXT_SUFFIXES if (root / "text" / f"{rest}{s}").is_file()]
        if len(found) != 1:
            raise ValueError(f"data set {name!r}: expected one of {rest}.csv or {rest}.jsonl in {root / 'text'}")
        return "text", found[0]
    if prefix == "folder" and DISK_NAME.match(rest):
        folder = root / "images" / rest
        if not folder.is_dir():
            raise ValueError(f"data set {name!r}: no folder {folder}")
        return "folder", folder
    if prefix == "upload" and rest.isdigit():
        from searches.models import Dataset  # Django only for uploads
        from searches.selectors_deliverables import ready_upload

        row = ready_upload(int(rest))
        if row is None:
            raise ValueError(f"the uploaded data set #{rest} was deleted")
        path = Path(row.path)
        if not path.is_dir():  # uploaded through a web process on another host: the bucket has it
            from searches import storage

            path = root / "uploads" / ".from-storage" / str(row.pk)
            storage.fetch_folder(storage.upload_name(row.owner_id, row.name), path)
        uploads = (root / "uploads").resolve()
        if uploads not in path.resolve().parents:
            raise ValueError(f"the uploaded data set #{rest} is not under {uploads}")
        if row.kind == Dataset.Kind.TEXT:
            files = [p for p in path.iterdir() if p.suffix.lower() in TEXT_SUFFIXES]
            if len(files) != 1:
                raise ValueError(f"the uploaded data set #{rest} has lost its text file")
            return "text", files[0]
        return "folder", path
    raise ValueError(f"unknown data set {name!r}")


def _image_side() -> int:
    try:
        from django.conf import settings

        return int(getattr(settings, "IMAGE_FOLDER_SIDE", 32))
    except Exception:  # noqa: BLE001 - usable without Django settings too
        return 32


@lru_cache(maxsize=4)
def _load_path(kind: str, path: str, mtime_ns: int, size: int, seed: int, side: int) -> DataSplits:
    if kind == "text":
        return load_text_table(Path(path), seed)
    return load_image_folder(Path(path), seed, side)


def load_image_folder(folder: Path, seed: int, side: int = 32) -> DataSplits:
    """An image folder (one sub-folder per class) as normalised tensors of ``side`` × ``side``;
    one channel when every image is grey, three otherwise."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    class Folder(ImageFolder):
        def find_classes(self, directory):
            classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
            if not classes:
                raise FileNotFoundError(f"no class folders in {directory}")
            return classes, {c: i for i, c in enumerate(classes)}

    def hidden(path: str) -> bool:
        return any(part.startswith(".") for part in Path(path).relative_to(folder).parts)

    def valid(path: str) -> bool:
        return path.lower().endswith((".png", ".jpg", ".jpeg")) and not hidden(path)

    index = Folder(str(folder), is_valid_file=valid)  # raises for a class with no image
    modes = set()
    for path, _ in index.samples:
        with Image.open(path) as im:
            modes.add(im.mode)
    mode = "L" if modes <= set(_GRAY_MODES) else "RGB"

    def read(path: str) -> torch.Tensor:
        with Image.open(path) as im:
            im = im.convert(mode).resize((side, side), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(arr.copy())

    x = torch.stack([read(path) for path, _ in index.samples]).float() / 255.0
    y = torch.tensor([target for _, target in index.samples], dtype=torch.long)
    xs, ys = _split_three(x, y, seed)
    return _normalised(xs, ys, index.classes)


def load_text_table(path: Path, seed: int) -> DataSplits:
    """A CSV/JSONL of ``text,label`` as token ids: split by ``seed``, tokenizer fitted on the
    training split only, every text cut or padded to one length (the 95th percentile of the
    training texts' lengths, within 8..256)."""
    from searches.nas.tokenizer import Tokenizer
    from searches.uploads import read_text_table

    table = read_text_table(path)
    classes = table.class_names
    ids = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([ids[label] for label in table.labels], dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(y), generator=gen)
    n_train = int(len(y) * SPLIT_FRACTIONS[0])
    n_val = int(len(y) * SPLIT_FRACTIONS[1])
    parts = (order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])
    texts = [[table.texts[i] for i in part.tolist()] for part in parts]
    tokenizer = Tokenizer(max_vocab=TEXT_MAX_VOCAB).fit(texts[0])
    lengths = sorted(len(tokenizer.tokens(t)) for t in texts[0]) or [TEXT_MIN_LEN]
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    seq_len = max(TEXT_MIN_LEN, min(TEXT_MAX_LEN, -(-p95 // 8) * 8))
    xs = [tokenizer.encode_batch(part, seq_len) for part in texts]
    return DataSplits(xs[0], y[parts[0]], xs[1], y[parts[1]], xs[2], y[parts[2]], class_names=classes,
                      mean=[], std=[], tokenizer=tokenizer.to_dict())


def space_for(space: str, space_settings: dict | None, data: DataSplits):
    """(search space, its settings) as the data need it. A text space gets the vocabulary the
    tokenizer found (at most the space's own ``vocab_size``), so the embedding holds no unused
    rows; these settings go into the checkpoint, and ``build_model`` rebuilds the same network."""
    from searches.nas import get_space

    settings_ = dict(space_settings or {})
    built = get_space(space, settings_)
    if data.tokenizer is None or not hasattr(built, "vocab_size"):
        return built, settings_
    settings_["vocab_size"] = min(int(built.vocab_size), len(data.tokenizer["vocab"]))
    return get_space(space, settings_), settings_
