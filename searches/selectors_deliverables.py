"""Reads behind the deliverables and uploads: model bundles, API tokens, users' data sets.

Part of the selectors (``searches.selectors`` re-exports every name here); a module of
its own so that ``datasets_catalog`` and the services can use it without the rest.
"""
from __future__ import annotations

import hashlib
from typing import Iterator

from django.http import Http404

from . import storage
from .models import ApiToken, Bundle, Candidate, Dataset, EpochMetric, Search


def api_token_digest(key: str) -> str:
    """What is stored of a token key: its SHA-256 (keys are 256 random bits, so no slow hash)."""
    return hashlib.sha256(key.encode()).hexdigest()


def ready_upload(upload_id: int, *, owner=None):
    """The ready uploaded data set with this id (of ``owner`` when given), or None."""
    rows = Dataset.objects.filter(pk=upload_id, state=Dataset.State.READY)
    return (rows.filter(owner=owner) if owner is not None else rows).first()


def ready_uploads(owner) -> list:
    """The owner's ready uploaded data sets, by name."""
    return list(Dataset.objects.filter(owner=owner, state=Dataset.State.READY).order_by("name", "id"))


def bundle_of(candidate: Candidate):
    """The candidate's bundle row, or None before the first request."""
    return Bundle.objects.filter(candidate_id=candidate.id).first()


def ready_bundle_path(candidate: Candidate):
    """The zip of the candidate's current, ready bundle, or 404 saying what to do."""
    bundle = bundle_of(candidate)
    if bundle is None or bundle.state != Bundle.State.READY or not bundle.is_current:
        raise Http404("This candidate has no ready bundle: request one first.")
    if not storage.exists(bundle.path):
        raise Http404("The bundle file is gone from the checkpoint storage: request the bundle again.")
    return bundle, bundle.path


def api_token_lookup(key: str):
    """The active token with this key, with its owner, or None."""
    if not key or len(key) > 200:
        return None
    return (ApiToken.objects.select_related("owner")
            .filter(key_hash=api_token_digest(key), revoked_at__isnull=True, owner__is_active=True).first())


def api_tokens_for(user):
    return ApiToken.objects.filter(owner=user).order_by("revoked_at", "-created_at", "-id")


def api_token_get_for(user, token_id: int):
    token = ApiToken.objects.filter(owner=user, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    return token


def datasets_for(user):
    """The user's uploaded data sets (ready and refused), newest first."""
    return Dataset.objects.filter(owner=user).order_by("-created_at", "-id")


def dataset_get_for(user, dataset_id: int):
    """The user's own uploaded data set, or 404 (another user's is as absent as a missing one)."""
    dataset = Dataset.objects.filter(owner=user, pk=dataset_id).first()
    if dataset is None:
        raise Http404("No such data set.")
    return dataset


def dataset_searches(dataset):
    """The owner's searches that train on ``dataset``, newest first."""
    return Search.objects.filter(owner_id=dataset.owner_id, dataset=dataset.catalog_name).order_by("-created_at")


# --- exports: every row of a search, a batch per indexed query -------------------------

def keyset_batches(queryset, key: str, fields: list[str], size: int) -> Iterator[list[tuple]]:
    """``fields`` of every row of ``queryset`` in ``key`` order, ``size`` rows per query.
    ``key`` must be unique within the queryset and be the first of ``fields``."""
    last = None
    while True:
        qs = queryset if last is None else queryset.filter(**{f"{key}__gt": last})
        rows = list(qs.order_by(key).values_list(*fields)[:size])
        if not rows:
            return
        yield rows
        last = rows[-1][0]
        if len(rows) < size:
            return


def candidate_rows_in_batches(search_id: int, fields: list[str], size: int) -> Iterator[list[tuple]]:
    """``fields`` (``index`` first) of the search's candidates, by index."""
    return keyset_batches(Candidate.objects.filter(search_id=search_id), "index", fields, size)


def epoch_rows_in_batches(search_id: int, fields: list[str], size: int) -> Iterator[list[tuple]]:
    """``fields`` (``seq`` first) of the search's epochs, by sequence number."""
    return keyset_batches(EpochMetric.objects.filter(search_id=search_id), "seq", fields, size)
