"""A search's life seen from its owner: create, pause, resume, cancel, clone, delete, fail."""
from __future__ import annotations

import inspect
import secrets
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import CASCADE, SET_NULL
from django.utils import timezone

from .. import events, selectors, storage
from ..datasets_catalog import dataset_info
from ..models import Candidate, EpochMetric, Search
from ..nas import get_space, get_strategy, pareto
from ..nas.early_stopping import get_early_stopping
from .candidates import candidate_metrics
from .enqueue import _enqueue_advance


LIMITS = {
    "max_candidates": (1, 100_000),
    "epochs": (1, 1_000),
    "parallel": (1, 256),
}


def _task_of(space) -> str:
    return {"image": "image-classification", "text": "text-classification"}[getattr(space, "modality", "image")]


def _publish_search(search: Search, counts: dict | None = None) -> None:
    events.publish_on_commit(search.id, events.search_event(
        search, counts if counts is not None else selectors.state_counts(search.id)))


# --- searches -------------------------------------------------------------

def _rule_errors(early_stopping, early_stopping_settings, objectives) -> dict:
    """What is wrong with a new search's early-stopping rule and objectives."""
    errors = {}
    try:
        get_early_stopping(early_stopping, early_stopping_settings)
    except (ValueError, TypeError) as exc:
        errors["early_stopping"] = str(exc)
    try:
        parsed = pareto.parse_objectives([o for o in objectives or [] if "reward" not in o])
        known = set(candidate_metrics({}))
        unknown = [o.metric for o in parsed if o.metric not in known]
        if unknown:
            errors["objectives"] = f"Unknown metric {unknown[0]!r}; choose from {sorted(known)}."
    except (ValueError, TypeError) as exc:
        errors["objectives"] = str(exc)
    return errors


def _space_errors(space, space_settings, strategy, strategy_settings, info, max_candidates) -> dict:
    """What is wrong with a new search's space and strategy, and with them together with its data."""
    errors = {}
    try:
        space_obj = get_space(space, space_settings)
    except (ValueError, TypeError) as exc:
        errors["space"] = str(exc)
    if strategy in ONE_SHOT:
        if space != "cell":
            errors["strategy"] = f"{ONE_SHOT[strategy]} searches the cell space; choose the cell space."
    else:
        try:
            get_strategy(strategy, strategy_settings)
        except (ValueError, TypeError) as exc:
            errors["strategy"] = str(exc)
    if "space" not in errors and info is not None and info.task != _task_of(space_obj):
        errors["space"] = (f"The {space} space builds {getattr(space_obj, 'modality', 'image')} models; "
                           f"{info.label} needs a {info.task} space.")
    if "space" not in errors and isinstance(max_candidates, int) and max_candidates > space_obj.size():
        errors["max_candidates"] = (f"The {space} space has at most {space_obj.size()} architectures; "
                                    f"ask for fewer candidates.")
    return errors


def search_create(*, owner, name, dataset, space, strategy, max_candidates, epochs, parallel=1,
                  seed=None, space_settings=None, strategy_settings=None, train_settings=None,
                  objective="val_accuracy", objectives=None, early_stopping="none",
                  early_stopping_settings=None, warm_start=None, idempotency_key: str = "") -> Search:
    """Create a search and ask the controller to start it once committed. With an
    ``idempotency_key``, a create the owner already made with that key returns its search."""
    if idempotency_key and (replay := Search.objects.filter(owner=owner, idempotency_key=idempotency_key).first()):
        return replay
    errors = _rule_errors(early_stopping, early_stopping_settings, objectives)
    if warm_start is not None and (warm_start.owner_id != owner.id or warm_start.space != space):
        errors["warm_start"] = "Warm start from one of your own searches over the same search space."
    if not str(name or "").strip():
        errors["name"] = "Give the search a name."
    info = dataset_info(dataset, owner=owner)  # an upload is known only to its owner
    if info is None:
        errors["dataset"] = f"Unknown data set {dataset!r}."
    for field, value in (("max_candidates", max_candidates), ("epochs", epochs), ("parallel", parallel)):
        low, high = LIMITS[field]
        if not isinstance(value, int) or not low <= value <= high:
            errors[field] = f"Must be a whole number from {low} to {high}."
    errors.update(_space_errors(space, space_settings, strategy, strategy_settings, info, max_candidates))
    if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**63):
        errors["seed"] = "The seed is a whole number from 0."
    if errors:
        raise ValidationError(errors)

    try:
        with transaction.atomic():
            search = Search.objects.create(
                owner=owner, name=name.strip(), dataset=dataset, space=space,
                space_settings=space_settings or {}, strategy=strategy,
                strategy_settings=strategy_settings or {}, max_candidates=max_candidates,
                epochs=epochs, parallel=parallel, objective=objective,
                train_settings=train_settings or {}, objectives=list(objectives or []),
                early_stopping=early_stopping, early_stopping_settings=early_stopping_settings or {},
                warm_start=warm_start, seed=secrets.randbelow(2**31) if seed is None else seed,
                task=info.task, idempotency_key=idempotency_key)
            _enqueue_advance(search.id)
    except IntegrityError:
        if not idempotency_key:
            raise
        return Search.objects.get(owner=owner, idempotency_key=idempotency_key)  # a retry won the race
    return search


ONE_SHOT = {"darts": "DARTS (one-shot, then retrain the derived cell)",
            "supernet": "Weight sharing (ENAS-style supernet, retrain the top cells)"}


def search_fail(search_id: int, message: str) -> None:
    """End a search that cannot go on, with a message a person can act on."""
    with transaction.atomic():
        search = Search.objects.select_for_update().filter(pk=search_id).first()
        if search is None or search.state in Search.ENDED_STATES:
            return
        search.state = Search.State.FAILED
        search.error = message
        search.finished_at = timezone.now()
        search.save(update_fields=["state", "error", "finished_at"])
        _publish_search(search)


def search_cancel(search: Search) -> Search:
    """Stop a search: queued candidates are cancelled, running ones stop at their next epoch."""
    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        if search.state in Search.ENDED_STATES:
            return search
        search.state = Search.State.CANCELLED
        search.finished_at = timezone.now()
        search.save(update_fields=["state", "finished_at"])
        queued = list(search.candidates.filter(state=Candidate.State.QUEUED))
        search.candidates.filter(state=Candidate.State.QUEUED).update(
            state=Candidate.State.CANCELLED, finished_at=timezone.now())
        for candidate in queued:
            candidate.state = Candidate.State.CANCELLED
            events.publish_on_commit(search.id, events.candidate_event(candidate))
        _publish_search(search)
    return search


# --- dashboard controls: pause, resume, delete ----------------------------------

def search_pause(search: Search) -> Search:
    """Stop proposing new candidates; those already queued or running train to the end.

    ``search_advance`` does nothing unless the search is queued or running, so a paused
    search only drains. Other states are left as they are.
    """
    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        if search.state not in Search.ACTIVE_STATES:
            return search
        search.state = Search.State.PAUSED
        search.save(update_fields=["state"])
        _publish_search(search)
    return search


def search_resume(search: Search) -> Search:
    """Carry on with a paused search: back to running (queued if it never started), and the
    controller fills the free slots once this commits."""
    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        if search.state != Search.State.PAUSED:
            return search
        search.state = Search.State.RUNNING if search.started_at else Search.State.QUEUED
        search.save(update_fields=["state"])
        _enqueue_advance(search.id)
        _publish_search(search)
    return search


def _remove_checkpoints(paths: list[str], folder) -> None:
    for path in paths:
        storage.delete(path)
    if folder is not None and Path(folder).is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    for prefix in ("checkpoints", "bundles"):  # a bucket's objects of this search
        storage.delete_folder(f"{prefix}/{Path(folder).name}")


def search_delete(search: Search) -> int:
    """Delete a search with its candidates, epochs and checkpoint files; returns the number
    of checkpoint files it removes. Open pages get a ``deleted`` search event. The files go
    only after the rows are gone for good (on commit); a running candidate finds itself
    gone at its next epoch and stops."""
    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        search_id = search.id
        paths = list(search.candidates.exclude(checkpoint_path="").values_list("checkpoint_path", flat=True))
        folder = Path(settings.CHECKPOINT_DIR) / f"search-{search_id}"
        search.state = "deleted"  # only in the event: the row is about to go
        _publish_search(search)
        # Epochs and candidates are most of the rows: one statement each, not Django's
        # row-by-row collector (seconds at 50,000 candidates). Whatever else points at a
        # candidate (few rows) goes through the ORM first, with its own on_delete rule.
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {EpochMetric._meta.db_table} WHERE search_id = %s", [search_id])
            raw = True
            relations = [f for f in Candidate._meta.get_fields(include_hidden=True) if f.auto_created and not f.concrete]
            for rel in relations:  # hidden ones too (related_name="+", e.g. Worker.candidate)
                if rel.related_model is EpochMetric:
                    continue
                related = rel.related_model._base_manager.filter(**{f"{rel.field.name}__search_id": search_id})
                if rel.on_delete is CASCADE:
                    related.delete()
                elif rel.on_delete is SET_NULL:
                    related.update(**{rel.field.name: None})
                elif related.exists():
                    raw = False  # PROTECT, SET_DEFAULT...: let Django apply the rule
            if raw:
                cursor.execute(f"DELETE FROM {Candidate._meta.db_table} WHERE search_id = %s", [search_id])
        Candidate.objects.filter(search_id=search_id).only("id").delete()
        Search.objects.filter(pk=search_id).delete()
        transaction.on_commit(lambda: _remove_checkpoints(paths, folder))
    return len(paths)


def search_clone(search: Search, *, name: str | None = None) -> Search:
    """A new search of the same owner with every setting of ``search`` (seed included),
    checked again by ``search_create``."""
    params = inspect.signature(search_create).parameters
    kwargs = {p: getattr(search, p) for p in params if p not in ("owner", "name") and hasattr(search, p)}
    name = (name if name is not None else f"{search.name} (copy)")
    return search_create(owner=search.owner, name=str(name)[:200], **kwargs)
