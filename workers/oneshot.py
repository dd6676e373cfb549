"""One-shot jobs: a DARTS search or a weight-sharing supernet, run as one candidate.

A job reports like any candidate (an epoch row per epoch, streamed live) and
ends with the architectures it proposes; the controller then trains those
from scratch as ordinary candidates. DARTS also streams its architecture
weights per edge after every epoch.
"""
from __future__ import annotations

import dataclasses
import random
import time

import torch
from django.conf import settings

from searches import services
from searches.nas.cell import CellSpace
from searches.nas.oneshot import (DartsSupernet, SharedSupernet, darts_arch_lr, darts_derive,
                                  darts_edge_weights, darts_optimizers, darts_step, is_skip_collapse,
                                  rank_with_shared_weights, supernet_train_step)

from . import datasets

# How many architectures the supernet ranks with its shared weights (strategy setting "pool").
SUPERNET_POOL = 200


def _batches(x, y, batch_size, gen):
    order = torch.randperm(len(x), generator=gen).to(x.device)
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]


@torch.no_grad()
def _loss_and_accuracy(forward, x, y, batch_size=512):
    loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = forward(x[start:start + batch_size])
        target = y[start:start + batch_size]
        loss += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(dim=1) == target).sum())
    return loss / max(len(x), 1), correct / max(len(x), 1)


@dataclasses.dataclass
class _Job:
    candidate: object
    data: object
    recipe: dict
    gen: torch.Generator
    beat: object
    retry: object  # calls a service through the worker's database retry

    def record_epoch(self, epoch, seconds, train_loss, train_acc, val_loss, val_acc) -> bool:
        """Record one epoch; False (and the job stopped) once its search was cancelled."""
        if self.beat is not None:
            self.beat.epoch_done(len(self.data.x_train) / max(seconds, 1e-9))
        if self.retry(services.epoch_record, self.candidate, epoch=epoch, train_loss=train_loss,
                      train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc, seconds=seconds):
            return True
        self.retry(services.candidate_stop, self.candidate, reason="Stopped: the search was cancelled.")
        return False


def run_job(candidate, device, beat, *, recipe: dict, retry) -> str:
    """Run a claimed one-shot job with the search's training ``recipe``; ``retry(service, ...)``
    calls a service the way the worker does (``training.with_db_retry``)."""
    search = candidate.search
    data = datasets.on_device(datasets.load(search.dataset, search.seed, str(settings.DATA_DIR),
                                            resolution=recipe["resolution"]), device)
    n_train = max(2, int(len(data.x_train) * recipe["train_fraction"]))  # the data proxy applies here too
    data = dataclasses.replace(data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train])
    space = CellSpace(**search.space_settings)
    job = _Job(candidate, data, recipe, torch.Generator().manual_seed(int(search.seed)), beat, retry)
    supernet = DartsSupernet if candidate.kind == "darts" else SharedSupernet
    net = supernet(space.ops, space.channels, data.input_shape, data.num_classes, space.cells_per_stage).to(device)
    if candidate.kind == "darts":
        proposals, extra = _run_darts(net, search, job)
    else:
        proposals, extra = _run_supernet(net, space, search, job)
    if proposals is None:
        return "cancelled"
    retry(services.oneshot_finish, candidate, proposals=proposals, extra=extra)
    return "finished"


def _run_darts(net, search, job: _Job):
    data, recipe, gen, candidate = job.data, job.recipe, job.gen, job.candidate
    # DARTS learns weights on one half of the training split and alpha on the other.
    half = len(data.x_train) // 2
    x_w, y_w, x_a, y_a = data.x_train[:half], data.y_train[:half], data.x_train[half:], data.y_train[half:]
    steps = search.epochs * -(-min(half, len(x_a)) // recipe["batch_size"])  # zip stops at the shorter half
    w_opt, a_opt = darts_optimizers(net, a_lr=darts_arch_lr(steps))
    history = []
    for epoch in range(1, search.epochs + 1):
        started = time.perf_counter()
        losses = []
        for train_batch, val_batch in zip(_batches(x_w, y_w, recipe["batch_size"], gen),
                                          _batches(x_a, y_a, recipe["batch_size"], gen)):
            losses.append(darts_step(net, w_opt, a_opt, train_batch, val_batch))
        seconds = time.perf_counter() - started
        net.eval()
        val_loss, val_acc = _loss_and_accuracy(net, data.x_val, data.y_val)
        train_loss, train_acc = _loss_and_accuracy(net, x_w, y_w)
        weights = darts_edge_weights(net)
        history.append(weights)
        if not job.record_epoch(epoch, seconds, train_loss, train_acc, val_loss, val_acc):
            return None, None
        job.retry(services.candidate_note, candidate, key="edge_weights", value=history,
                      event={"type": "alpha", "candidate": candidate.id, "epoch": epoch, "weights": weights})
    arch = darts_derive(net)
    return [arch], {"edge_weights": history, "derived": arch, "skip_collapse": is_skip_collapse(arch)}


def _run_supernet(net, space, search, job: _Job):
    data, recipe, gen = job.data, job.recipe, job.gen
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    rng = random.Random(f"supernet:{search.seed}")
    for epoch in range(1, search.epochs + 1):
        started = time.perf_counter()
        for batch in _batches(data.x_train, data.y_train, recipe["batch_size"], gen):
            supernet_train_step(net, optimizer, batch, rng)
        seconds = time.perf_counter() - started
        # The supernet has no single accuracy: report one sampled path's, the same path on both splits.
        probe = space.sample(random.Random(f"probe:{search.seed}:{epoch}"))
        net.eval()
        train_loss, train_acc = _loss_and_accuracy(lambda x: net(x, probe), data.x_train, data.y_train)
        val_loss, val_acc = _loss_and_accuracy(lambda x: net(x, probe), data.x_val, data.y_val)
        if not job.record_epoch(epoch, seconds, train_loss, train_acc, val_loss, val_acc):
            return None, None
    # Rank a pool of distinct architectures with the shared weights; the best get retrained.
    pool_rng = random.Random(f"pool:{search.seed}")
    pool, seen = [], set()
    for _ in range(SUPERNET_POOL * 5):
        arch = space.sample(pool_rng)
        if space.arch_hash(arch) not in seen:
            seen.add(space.arch_hash(arch))
            pool.append(arch)
        if len(pool) >= min(search.strategy_settings.get("pool", SUPERNET_POOL), space.size()):
            break
    ranked = rank_with_shared_weights(net, pool, (data.x_val, data.y_val))
    top = [arch for arch, _ in ranked[:max(1, search.max_candidates - 1)]]
    return top, {"ranking": [{"arch": a, "shared_accuracy": acc} for a, acc in ranked[:20]]}
