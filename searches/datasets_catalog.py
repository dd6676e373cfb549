"""The data sets a search can use, and whether each is on this machine.

Loading lives with the workers (``workers.datasets``); this catalogue is
what the form and ``services.search_create`` need: names, labels, tasks, and
whether a data set can be used now (nothing is ever downloaded).

Three sorts of names:

* built-in sets: ``digits``, ``synthetic``, ``mnist``, ``fashion_mnist``, ``cifar10``
  (the last three read from DATA_DIR), listed in ``DATASETS``;
* sets an administrator puts on disk: ``text:<name>`` for
  ``DATA_DIR/text/<name>.csv`` or ``.jsonl`` (columns ``text`` and ``label``) and
  ``folder:<name>`` for ``DATA_DIR/images/<name>/<class>/*.png|jpg``; everyone sees them;
* uploads: ``upload:<id>`` for a ``searches.models.Dataset`` row, seen only by its owner.

``dataset_info(name, owner)`` answers for any of them; ``available_datasets(owner)``
lists what ``owner`` may pick.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from .selectors_deliverables import ready_upload, ready_uploads

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

IMAGE_TASK = "image-classification"
TEXT_TASK = "text-classification"
# Search.dataset holds the catalogue name in 40 characters: "folder:" + 33.
DISK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,32}$")
TEXT_SUFFIXES = (".csv", ".jsonl")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    label: str
    task: str = IMAGE_TASK
    # Paths under DATA_DIR that must exist; empty for data sets that ship with a package.
    required_files: tuple = field(default_factory=tuple)
    # "builtin", "text" (a CSV/JSONL file), "folder" (an image folder) or "upload".
    kind: str = "builtin"
    # For text files and image folders: where they are.
    path: str = ""
    # For uploads: the Dataset row's id and owner.
    upload_id: int | None = None
    owner_id: int | None = None

    def missing_files(self, data_dir: Path | None = None) -> list[str]:
        data_dir = Path(data_dir or settings.DATA_DIR)
        return [f for f in self.required_files if not (data_dir / f).exists()]

    def availability(self, data_dir: Path | None = None) -> tuple[bool, str]:
        """(available, reason): the reason says what is wrong and what to do when it is not."""
        if self.kind == "text":
            if not self.path:
                return False, "there is both a .csv and a .jsonl file of that name in DATA_DIR/text; keep one"
            return _text_file_availability(Path(self.path))
        if self.kind == "folder":
            return _image_folder_availability(Path(self.path))
        if self.kind == "upload":
            from . import storage

            if storage.remote():  # kept in the bucket; this web host may never have seen the files
                return True, ""
            if not Path(self.path).is_dir():
                return False, "its files are gone from the upload folder; upload it again"
            return True, ""
        missing = self.missing_files(data_dir)
        if not missing:
            return True, ""
        data_dir = Path(data_dir or settings.DATA_DIR)
        return False, (f"not found under {data_dir}: {', '.join(missing[:3])}"
                       f"{' …' if len(missing) > 3 else ''} (NASWeb never downloads data; "
                       f"copy the torchvision files there)")


# The built-in data sets, by name.
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


def dataset_info(name: str, owner=None, data_dir: Path | None = None) -> DatasetInfo | None:
    """What the catalogue knows of ``name`` for ``owner``; None when there is no such data set.

    An upload is known only to its owner: for anyone else (or no one) it is as absent
    as a name never used.
    """
    if not isinstance(name, str):
        return None
    if name in DATASETS:
        return DATASETS[name]
    prefix, _, rest = name.partition(":")
    data_dir = Path(data_dir or settings.DATA_DIR)
    if prefix == "text" and DISK_NAME.match(rest):
        return _text_file_info(data_dir, rest)
    if prefix == "folder" and DISK_NAME.match(rest):
        folder = data_dir / "images" / rest
        return _folder_info(rest, folder) if folder.is_dir() else None
    if prefix == "upload" and rest.isdigit() and owner is not None and getattr(owner, "pk", None):
        row = ready_upload(int(rest), owner=owner)
        return upload_info(row) if row is not None else None
    return None


def available_datasets(owner=None, data_dir: Path | None = None) -> list[DatasetInfo]:
    """Every data set ``owner`` may pick: built-in, on disk, then their own uploads."""
    data_dir = Path(data_dir or settings.DATA_DIR)
    infos = list(DATASETS.values())
    text_dir = data_dir / "text"
    if text_dir.is_dir():
        stems = sorted({p.stem for p in text_dir.iterdir()
                        if p.suffix.lower() in TEXT_SUFFIXES and p.is_file() and DISK_NAME.match(p.stem)})
        infos += [info for info in (_text_file_info(data_dir, stem) for stem in stems) if info is not None]
    image_dir = data_dir / "images"
    if image_dir.is_dir():
        infos += [_folder_info(p.name, p) for p in sorted(image_dir.iterdir())
                  if p.is_dir() and DISK_NAME.match(p.name)]
    if owner is not None and getattr(owner, "pk", None):
        infos += [upload_info(row) for row in ready_uploads(owner)]
    return infos


def upload_info(row) -> DatasetInfo:
    """The catalogue entry of a ready ``searches.models.Dataset``."""
    text = row.kind == "text"
    what = "texts" if text else "images"
    return DatasetInfo(
        name=f"upload:{row.pk}", kind="upload", path=row.path, upload_id=row.pk, owner_id=row.owner_id,
        task=TEXT_TASK if text else IMAGE_TASK,
        label=f"{row.name} (your upload: {row.num_examples:,} {what}, {row.num_classes} classes)")


def _text_file_info(data_dir: Path, stem: str) -> DatasetInfo | None:
    found = [data_dir / "text" / f"{stem}{suffix}" for suffix in TEXT_SUFFIXES]
    found = [p for p in found if p.is_file()]
    if not found:
        return None
    return DatasetInfo(name=f"text:{stem}", label=f"{stem} (text file {found[0].name} in DATA_DIR)",
                       task=TEXT_TASK, kind="text", path=str(found[0]) if len(found) == 1 else "")


def _folder_info(name: str, folder: Path) -> DatasetInfo:
    return DatasetInfo(name=f"folder:{name}", label=f"{name} (image folder in DATA_DIR)",
                       task=IMAGE_TASK, kind="folder", path=str(folder))


def _text_file_availability(path: Path) -> tuple[bool, str]:
    try:
        stat = path.stat()
    except OSError:
        return False, f"{path} is gone"
    return _text_check(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _text_check(path: str, mtime_ns: int, size: int) -> tuple[bool, str]:
    """Read and check a text table once per version of the file (its time and size)."""
    from .uploads import UploadError, read_text_table

    try:
        read_text_table(Path(path))
    except UploadError as exc:
        return False, f"{Path(path).name}: {exc}"
    except OSError as exc:
        return False, f"{Path(path).name} cannot be read: {exc.strerror or exc}"
    return True, ""


def _image_folder_availability(folder: Path) -> tuple[bool, str]:
    """Cheap structural check: two or more class folders, none without an image."""
    try:
        classes = sorted((e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")),
                         key=lambda e: e.name)
    except OSError as exc:
        return False, f"{folder} cannot be read: {exc.strerror or exc}"
    if len(classes) < 2:
        return False, (f"{folder} needs at least two class folders, each holding that class's "
                       f"PNG or JPEG images")
    for entry in classes:
        if not _has_image(Path(entry.path)):
            return False, f"the class folder {entry.name!r} has no PNG or JPEG image"
    return True, ""


def _has_image(folder: Path) -> bool:
    for _root, _dirs, files in os.walk(folder):
        if any(f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".") for f in files):
            return True
    return False
