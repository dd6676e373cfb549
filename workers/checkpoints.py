"""Checkpoint files: plain tensors and containers, written atomically.

A checkpoint opens with ``torch.load(path, weights_only=True)``, and
``searches.nas.build_model`` rebuilds the network from what it holds.
A file is written under a temporary name and renamed, so a crash or a
full disk never leaves a partial checkpoint where a download can find it.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

FORMAT_VERSION = 1


def checkpoint_path(root: Path, search_id: int, candidate_index: int, attempt: int | None = None) -> Path:
    """Where a candidate's checkpoint goes. A training run names its claim's attempt, so a
    run taken back and finishing late writes (and may remove) only its own file."""
    suffix = f"-a{attempt}" if attempt else ""
    return Path(root) / f"search-{search_id}" / f"candidate-{candidate_index}{suffix}.pt"


def build_payload(*, model, space: str, space_settings: dict, arch: dict, input_shape, num_classes: int,
                  class_names: list[str], mean: list[float], std: list[float], metrics: dict,
                  tokenizer: dict | None = None) -> dict:
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "space": space, "space_settings": space_settings, "arch": arch,
        "input_shape": list(input_shape), "num_classes": int(num_classes),
        "class_names": list(class_names), "normalisation": {"mean": list(mean), "std": list(std)},
        "metrics": metrics,
    }
    if tokenizer is not None:  # text models: the tokenizer's plain state (Tokenizer.from_dict reads it)
        payload["tokenizer"] = tokenizer
    return payload


def write_atomically(path: Path, payload: dict) -> tuple[int, str]:
    """Save ``payload`` to ``path``; returns (size in bytes, sha256 hex)."""
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def atomic_write(path: Path, write) -> tuple[int, str]:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    Readers see the old file or the whole new one, never a part; on any
    error the temporary file is removed. Returns (size in bytes, sha256 hex).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        digest = sha256_of(Path(tmp_name))
        size = os.path.getsize(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return size, digest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path: Path) -> dict:
    """Open a checkpoint without executing any pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)
