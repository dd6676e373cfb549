"""Training one candidate: the loop and the worker's glue around it.

``train_epochs`` is plain torch and yields one dict of metrics per epoch;
``run_candidate`` claims the candidate, records each epoch through the
services (row committed first, event after), and ends it as finished,
failed or cancelled.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback

import torch
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from torch import nn

from searches import services, storage
from searches.nas.early_stopping import NoEarlyStopping, get_early_stopping
from searches.nas.measure import count_flops, count_params, measure_latency

from . import checkpoints, datasets, devices, heartbeat, oneshot, progress
from .curves import SearchCurves

log = logging.getLogger(__name__)

# One plain recipe; a search's train_settings override any key.
# Proxy settings: train_fraction (use part of the training data) and resolution
# (train on inputs scaled to this side length; 0 keeps the data set's own).
DEFAULT_RECIPE = {"batch_size": 64, "lr": 3e-3, "weight_decay": 5e-4, "label_smoothing": 0.0,
                  "augment": "shift", "train_fraction": 1.0, "resolution": 0, "deterministic": False}


def recipe_for(train_settings: dict | None) -> dict:
    recipe = dict(DEFAULT_RECIPE)
    recipe.update({k: v for k, v in (train_settings or {}).items() if k in DEFAULT_RECIPE})
    return recipe


# Per-image augmentations on the device (airbench's recipe): a random crop of the image
# padded by ``pad`` zeros on each side, and for "crop_flip" a random horizontal flip.
# "shift" (the default) crops only: digits and letters must not be mirrored.
AUGMENTATIONS = {"shift": {"pad": 1, "flip": False}, "crop_flip": {"pad": 2, "flip": True}}


class Augmenter:
    """Per-image augmentation of batches drawn from one training tensor, on its device.

    Every image gets its own crop offset (and flip): the tensor is zero-padded once per
    candidate, as airbench pads its data set once, and a batch is one ``index_select`` of
    the padded images and one ``gather`` of the crops, the flip folded into the gather's
    column index. ``gen`` is a CPU generator (the worker's seed); its draws move to the
    device. Anything but float NCHW images (token ids), or an unknown kind ("none"), is
    only sliced.
    """

    def __init__(self, x: torch.Tensor, kind: str):
        self.x, self.spec = x, AUGMENTATIONS.get(kind)
        if self.spec is None or not x.is_floating_point() or x.dim() != 4:
            self.spec = None
            return
        pad = self.spec["pad"]
        n, c, h, w = x.shape
        self.padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)).reshape(n, c, -1)
        self.arange_h = torch.arange(h, device=x.device)
        self.arange_w = torch.arange(w, device=x.device)

    def batch(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.spec is None:
            return self.x.index_select(0, idx)  # faster than x[idx]
        pad, (_, c, h, w), b = self.spec["pad"], self.x.shape, len(idx)
        offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen).to(self.x.device)
        cols = self.arange_w.expand(b, w)
        if self.spec["flip"]:
            flip = (torch.rand(b, generator=gen) < 0.5).to(self.x.device)
            cols = torch.where(flip[:, None], w - 1 - cols, cols)
        rows = offsets[:, :1] + self.arange_h
        cols = cols + offsets[:, 1:]
        index = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
        return self.padded.index_select(0, idx).gather(2, index).view(b, c, h, w)


def deterministic_algorithms(on: bool) -> None:
    """A search's deterministic mode: torch's deterministic kernels (an error for an op that has
    none would fail the candidate, so only a warning) and no cuDNN autotuning; off restores both."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(on, warn_only=True)
    if on:
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = on


def augment_batch(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Augment every image of one batch (see ``Augmenter``); other inputs come back as they are."""
    augmenter = Augmenter(x, kind)
    if augmenter.spec is None:
        return x
    return augmenter.batch(torch.arange(len(x), device=x.device), gen)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512):
    """(mean loss, accuracy, predictions) of ``model`` on tensors already on its device."""
    model.eval()
    losses, preds = [], []
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        losses.append(nn.functional.cross_entropy(logits, y[start:start + batch_size], reduction="sum"))
        preds.append(logits.argmax(dim=1))
    pred = torch.cat(preds)
    return (torch.stack(losses).sum() / len(x)).item(), (pred == y).float().mean().item(), pred


def classification_metrics(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict:
    """Accuracy, macro recall, macro F1 and the confusion matrix (rows: true class)."""
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    cm.index_put_((target.cpu(), pred.cpu()), torch.ones_like(target.cpu()), accumulate=True)
    tp = cm.diag().float()
    support = cm.sum(dim=1).float()
    predicted = cm.sum(dim=0).float()
    recall = torch.where(support > 0, tp / support.clamp_min(1), torch.zeros_like(tp))
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12),
                     torch.zeros_like(tp))
    present = support > 0
    return {
        "accuracy": (tp.sum() / cm.sum().clamp_min(1)).item(),
        "macro_recall": recall[present].mean().item() if present.any() else 0.0,
        "macro_f1": f1[present].mean().item() if present.any() else 0.0,
        "confusion_matrix": cm.tolist(),
    }


def train_epochs(model: nn.Module, data: datasets.DataSplits, recipe: dict, epochs: int, seed: int,
                 on_batch=None):
    """Train ``model`` on ``data`` (already on the model's device); yield metrics after each epoch.
    ``on_batch(epoch, batches_done, batches_total)``, if given, is called after every batch."""
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe["lr"], total_steps=max(1, epochs * _steps_per_epoch(data, recipe)))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe["label_smoothing"])
    n_train = max(1, int(len(data.x_train) * recipe["train_fraction"]))
    batch_size = recipe["batch_size"]
    augmenter = Augmenter(data.x_train, recipe["augment"])
    batches = _steps_per_epoch(data, recipe)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=gen).to(data.x_train.device)
        loss_sum = torch.zeros((), device=data.x_train.device)
        correct = torch.zeros((), device=data.x_train.device, dtype=torch.long)
        for start in range(0, n_train, batch_size):
            idx = order[start:start + batch_size]
            xb = augmenter.batch(idx, gen)
            yb = data.y_train.index_select(0, idx)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            # Accumulate on the device; one sync per epoch, not per batch.
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(dim=1) == yb).sum()
            if on_batch is not None:
                on_batch(epoch, start // batch_size + 1, batches)
        val_loss, val_acc, _ = evaluate(model, data.x_val, data.y_val)
        yield {"epoch": epoch, "train_loss": loss_sum.item() / n_train, "train_accuracy": correct.item() / n_train,
               "val_loss": val_loss, "val_accuracy": val_acc, "seconds": time.perf_counter() - started}


def _steps_per_epoch(data, recipe) -> int:
    n_train = max(1, int(len(data.x_train) * recipe["train_fraction"]))
    return -(-n_train // recipe["batch_size"])


class CandidateTimeLimit(Exception):
    """Raised in the training loop when a candidate runs past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` with CandidateTimeLimit.

    Uses SIGALRM, so it works where a training worker runs its task: in the
    process's main thread (Celery's solo pool). Elsewhere it does nothing and
    Celery's own task time limit is the backstop.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise CandidateTimeLimit(f"Stopped: the candidate ran past its time limit of {seconds:.0f} s.")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


DB_RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)


def with_db_retry(fn, *args, **kwargs):
    """Call a service, retrying with back-off while the database is unreachable.

    A service call commits whole or not at all, so retrying it is safe; if the
    database never comes back the error propagates and nothing is reported
    as saved that was not.
    """
    for delay in DB_RETRY_DELAYS + (None,):
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            if delay is None:
                raise
            log.warning("database unreachable in %s; retrying in %ss", fn.__name__, delay)
            connection.close()
            time.sleep(delay)


def measure(model: nn.Module, input_shape, device) -> dict:
    """Parameters, FLOPs (multiply-accumulates) and batch-1 latency on this worker's device: the
    median of several timed runs after a warm-up, with their spread."""
    latency = measure_latency(model, input_shape, device=device)
    return {"param_count": count_params(model), "flops": count_flops(model, input_shape),
            "latency_ms": latency["median_ms"], "latency": latency}


def run_candidate(candidate_id: int, worker: str | None = None) -> str:
    """Train one candidate end to end on this worker. Returns its final state (or 'skipped')."""
    device = devices.pick_device()
    worker = worker or socket.gethostname()
    candidate = with_db_retry(services.candidate_claim, candidate_id, worker=worker,
                              device=devices.describe(device))
    if candidate is None:
        return "skipped"  # delivered twice, already taken, or cancelled
    beat = heartbeat.current()
    if beat is not None:
        beat.running(candidate.id, candidate.attempt)
    report = progress.LiveReport(candidate)
    state = "failed"
    try:
        with progress.capture(report), time_limit(settings.CELERY_TASK_TIME_LIMIT - 5):
            log.info("candidate #%s of search %s claimed by %s on %s", candidate.index, candidate.search_id,
                     worker, candidate.device)
            state = _train_claimed(candidate, device, beat, report)
            return state
    except Exception as exc:
        log.exception("candidate %s failed", candidate_id)
        message = str(exc) if isinstance(exc, CandidateTimeLimit) else traceback.format_exc()
        report.line(message)
        with_db_retry(services.candidate_fail, candidate, error=message)
        return "failed"
    finally:
        report.close(state)
        if beat is not None:
            beat.running(None)


def _measure_and_record(candidate, model, data, device, report) -> None:
    log.info("data: %s training samples of shape %s; measuring size and latency", len(data.x_train), data.input_shape)
    report.step("measuring size and latency")
    sizes = measure(model, data.input_shape, device)
    with_db_retry(services.candidate_set_measurements, candidate, **sizes)
    latency = "?" if sizes["latency_ms"] is None else f"{sizes['latency_ms']:.3g}"
    log.info("%s parameters, %s FLOPs, %s ms latency; training %s epochs", sizes["param_count"], sizes["flops"],
             latency, candidate.search.epochs)


def _train_claimed(candidate, device, beat, report) -> str:
    search = candidate.search
    recipe = recipe_for(search.train_settings)
    if candidate.kind != "train":
        return oneshot.run_job(candidate, device, beat, recipe=recipe, retry=with_db_retry)
    report.step("loading the data set")
    data = datasets.on_device(datasets.load(search.dataset, search.seed, str(settings.DATA_DIR),
                                            resolution=recipe["resolution"]), device)
    # A text space is sized to the data's vocabulary; these settings go into the checkpoint.
    space, space_settings = datasets.space_for(search.space, search.space_settings, data)
    seed = search.seed + candidate.index
    torch.manual_seed(seed)  # the initial weights follow the seed too, not only the data order
    deterministic_algorithms(recipe["deterministic"])
    model = space.build(candidate.arch, data.input_shape, data.num_classes).to(device)
    _measure_and_record(candidate, model, data, device, report)
    rule = get_early_stopping(search.early_stopping, search.early_stopping_settings)
    curves = SearchCurves(search.id)
    n_train = max(1, int(len(data.x_train) * recipe["train_fraction"]))
    for metrics in train_epochs(model, data, recipe, search.epochs, seed=seed,
                                on_batch=report.batch):
        log.info("epoch %s: train loss %.4f, val accuracy %.4f (%.1f s)", metrics["epoch"], metrics["train_loss"],
                 metrics["val_accuracy"], metrics["seconds"])
        if beat is not None:
            beat.epoch_done(n_train / max(metrics["seconds"], 1e-9))
        if not with_db_retry(services.epoch_record, candidate, **metrics):
            with_db_retry(services.candidate_stop, candidate, reason="Stopped: the search was cancelled.")
            return "cancelled"
        if metrics["epoch"] < search.epochs and not isinstance(rule, NoEarlyStopping):
            with_db_retry(curves.update)
            decision = rule.decide(*curves.of(candidate.id, up_to_epoch=metrics["epoch"]))
            if decision.stop:
                with_db_retry(services.candidate_prune, candidate, reason=decision.reason)
                return "pruned"
    report.step("testing and saving the checkpoint")
    _, _, pred = evaluate(model, data.x_test, data.y_test)
    test = classification_metrics(pred, data.y_test, data.num_classes)
    path = checkpoints.checkpoint_path(settings.CHECKPOINT_DIR, search.id, candidate.index, candidate.attempt)
    payload = checkpoints.build_payload(
        model=model, space=search.space, space_settings=space_settings, arch=candidate.arch,
        input_shape=data.input_shape, num_classes=data.num_classes, class_names=data.class_names,
        mean=data.mean, std=data.std, tokenizer=data.tokenizer,
        metrics={"test_accuracy": test["accuracy"], "best_val_accuracy": candidate.best_val_accuracy,
                 "final_val_accuracy": candidate.final_val_accuracy})
    try:
        size, digest = checkpoints.write_atomically(path, payload)
    except OSError as exc:
        raise CheckpointError(f"Could not write the checkpoint to {path.parent}: {exc.strerror or exc}") from exc
    ref = storage.put(path, f"checkpoints/search-{search.id}/{path.name}")  # the attempt's own name
    finished = with_db_retry(
        services.candidate_finish, candidate, test_accuracy=test["accuracy"],
        test_macro_recall=test["macro_recall"], test_macro_f1=test["macro_f1"],
        confusion_matrix=test["confusion_matrix"], checkpoint_path=ref,
        checkpoint_size=size, checkpoint_sha256=digest)
    if not finished:  # taken back meanwhile (we were presumed dead): remove our own attempt's file only
        storage.delete(ref)
        return "skipped"
    return "finished"


class CheckpointError(Exception):
    """The checkpoint could not be written (disk full, no permission)."""
