"""Builders for API tests: searches with real checkpoints, bundles, API clients."""

from __future__ import annotations

import zipfile

import torch
from rest_framework.test import APIClient

from searches import services
from searches.nas import get_space
from workers import checkpoints, datasets
from workers.bundles import BundleResult

METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)


def finish_with_checkpoint(candidate, root, *, accuracy: float):
    """Train nothing, but end ``candidate`` exactly as a worker does: a real checkpoint file."""
    search = candidate.search
    data = datasets.load(search.dataset, search.seed, "/nonexistent")
    torch.manual_seed(candidate.index)
    model = get_space(search.space, search.space_settings).build(candidate.arch, data.input_shape, data.num_classes)
    payload = checkpoints.build_payload(
        model=model, space=search.space, space_settings=search.space_settings, arch=candidate.arch,
        input_shape=data.input_shape, num_classes=data.num_classes, class_names=data.class_names,
        mean=data.mean, std=data.std, metrics={"test_accuracy": accuracy})
    path = checkpoints.checkpoint_path(root, search.id, candidate.index)
    size, digest = checkpoints.write_atomically(path, payload)
    assert services.candidate_finish(candidate, test_accuracy=accuracy, test_macro_recall=accuracy,
                                     test_macro_f1=accuracy, confusion_matrix=[[1]], checkpoint_path=str(path),
                                     checkpoint_size=size, checkpoint_sha256=digest)
    candidate.refresh_from_db()
    return candidate


def make_search(owner, root, *, name="alice's", finished=(0.6, 0.8), running=1, seed=5):
    """A running search: candidates finished with the given best accuracies, plus running ones."""
    n = len(finished) + running
    search = services.search_create(owner=owner, name=name, dataset="digits", space="chain", strategy="random",
                                    max_candidates=n + 2, epochs=2, parallel=max(1, n), seed=seed)
    ids = services.search_advance(search.id) if n else []
    candidates = [services.candidate_claim(cid, worker="w1", device="cpu") for cid in ids]
    for cand, acc in zip(candidates, finished):
        services.epoch_record(cand, epoch=1, **dict(METRICS, val_accuracy=acc / 2))
        services.epoch_record(cand, epoch=2, **dict(METRICS, val_accuracy=acc))
        finish_with_checkpoint(cand, root, accuracy=acc)
    for cand in candidates[len(finished):]:
        services.epoch_record(cand, epoch=1, **METRICS)
    search.refresh_from_db()
    return search, candidates


def make_ready_bundle(candidate, tmp_path, *, content=b"bundle bytes"):
    """A bundle recorded ready through the services, its zip a small real file."""
    bundle = services.bundle_request(candidate)
    bundle = services.bundle_start(bundle.id, bundle.attempt, worker="test")
    path = tmp_path / f"bundle-{candidate.id}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("b/README.md", content)
    result = BundleResult(path=path, size=path.stat().st_size, sha256=checkpoints.sha256_of(path),
                          standalone_ok=True, standalone_error="", onnx_ok=False, onnx_error="export failed: x",
                          onnx_max_diff=None, float_size=100, float_accuracy=0.9, int8_size=60, int8_accuracy=0.89,
                          int8_error="", details={"notes": [], "int8": {"quantised_fraction": 0.25}})
    assert services.bundle_ready(bundle, result=result)
    bundle.refresh_from_db()
    return bundle


def client_with(key=None) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


