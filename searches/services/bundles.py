"""Model bundles of finished candidates: request, claim, progress, ready, fail."""
from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import events, storage
from ..models import Bundle, Candidate
from .enqueue import send_after_commit


# --- deliverables: model bundles, search clones and API tokens ------------------

BUNDLE_TASK = "workers.tasks.build_bundle"
# A bundle build that has not reported for this long is presumed lost (its worker died,
# or its message was): a new request starts it again.
BUNDLE_STALE_SECONDS = 15 * 60


_BUNDLE_RESULT_FIELDS = ("path", "size", "sha256", "standalone_ok", "standalone_error", "onnx_ok",
                         "onnx_error", "onnx_max_diff", "float_size", "float_accuracy", "int8_size",
                         "int8_accuracy", "int8_error", "details")


def _enqueue_bundle(bundle_id: int, attempt: int) -> None:
    send_after_commit(BUNDLE_TASK, [bundle_id, attempt], "control")


def bundles_resend_lost(*, older_than) -> list[int]:
    """Send again the builds whose message may be lost: queued ones not claimed since
    ``older_than`` get their task again (the claim names the attempt, so a second
    delivery is harmless); running ones silent past BUNDLE_STALE_SECONDS start a new
    attempt (their worker died)."""
    now = timezone.now()
    resent = []
    with transaction.atomic():
        for bundle in Bundle.objects.select_for_update(skip_locked=True).filter(
                state=Bundle.State.QUEUED, updated_at__lt=older_than):
            Bundle.objects.filter(pk=bundle.pk).update(updated_at=now)
            _enqueue_bundle(bundle.id, bundle.attempt)
            resent.append(bundle.id)
        for bundle in Bundle.objects.select_for_update(skip_locked=True).filter(
                state=Bundle.State.RUNNING, updated_at__lt=now - timedelta(seconds=BUNDLE_STALE_SECONDS)):
            Bundle.objects.filter(pk=bundle.pk).update(
                state=Bundle.State.QUEUED, attempt=F("attempt") + 1, progress=0, worker="", started_at=None,
                message="Waiting for a worker (the last one stopped answering)", updated_at=now)
            _enqueue_bundle(bundle.id, bundle.attempt + 1)
            resent.append(bundle.id)
    return resent


def _bundle_cleared() -> dict:
    """Result fields reset for a new build. ``path`` keeps the previous file (never served
    unless ready and current) so that ``bundle_ready`` can remove it once replaced."""
    cleared = {name: None for name in _BUNDLE_RESULT_FIELDS if name != "path"}
    cleared.update(sha256="", standalone_error="", onnx_error="", int8_error="", details={})
    return cleared


def bundle_request(candidate: Candidate, *, rebuild: bool = False):
    """The model bundle of a finished candidate: the cached one while it is current and its
    file is there, the build in progress, or a new build (queued once this commits).

    ``rebuild`` builds again even a current, ready bundle (never a second build at once).
    """
    now = timezone.now()
    with transaction.atomic():
        candidate = Candidate.objects.select_related("search").select_for_update(of=("self",)).get(pk=candidate.pk)
        if candidate.state != Candidate.State.FINISHED or not candidate.checkpoint_path \
                or not candidate.checkpoint_sha256:
            raise ValidationError(f"Only a finished candidate with a checkpoint has a model bundle; "
                                  f"candidate {candidate.index} is {candidate.state}.")
        bundle, created = Bundle.objects.get_or_create(
            candidate=candidate, defaults={"checkpoint_sha256": candidate.checkpoint_sha256,
                                           "message": "Waiting for a worker"})
        if not created:
            current = bundle.checkpoint_sha256 == candidate.checkpoint_sha256
            alive = bundle.updated_at >= now - timedelta(seconds=BUNDLE_STALE_SECONDS)
            if current and bundle.state == Bundle.State.QUEUED:
                # Asked again before a worker took it: its message may be lost, so send it
                # again (same attempt: a second delivery is refused by the claim).
                _enqueue_bundle(bundle.id, bundle.attempt)
                return bundle
            if current and bundle.state == Bundle.State.RUNNING and alive:
                return bundle  # never a second build at once, even with rebuild
            if current and bundle.state == Bundle.State.READY and not rebuild and storage.exists(bundle.path):
                return bundle
            Bundle.objects.filter(pk=bundle.pk).update(
                state=Bundle.State.QUEUED, attempt=F("attempt") + 1, progress=0,
                message="Waiting for a worker", error="", worker="", checkpoint_sha256=candidate.checkpoint_sha256,
                started_at=None, finished_at=None, updated_at=now, **_bundle_cleared())
            bundle.refresh_from_db()
        _enqueue_bundle(bundle.id, bundle.attempt)
    return bundle


def bundle_start(bundle_id: int, attempt: int, *, worker: str):
    """Claim a queued build (or one presumed lost) for this worker; None if it is not this
    attempt's to run: delivered twice, superseded by a newer request, or deleted."""


    now = timezone.now()
    claimable = Q(state=Bundle.State.QUEUED) | Q(
        state=Bundle.State.RUNNING, updated_at__lt=now - timedelta(seconds=BUNDLE_STALE_SECONDS))
    claimed = Bundle.objects.filter(claimable, pk=bundle_id, attempt=attempt).update(
        state=Bundle.State.RUNNING, worker=worker[:200], started_at=now, updated_at=now, progress=1,
        message=f"Started on {worker}"[:300])
    if not claimed:
        return None
    bundle = Bundle.objects.select_related("candidate__search").get(pk=bundle_id)
    _bundle_announce(bundle)
    return bundle


def _bundle_running(bundle):
    return Bundle.objects.filter(pk=bundle.pk, attempt=bundle.attempt, state=Bundle.State.RUNNING)


def _bundle_announce(bundle, **fields) -> None:
    """Tell the pages of the bundle's search how its build stands (over the websocket)."""
    for name, value in fields.items():
        setattr(bundle, name, value)
    search_id = Candidate.objects.filter(pk=bundle.candidate_id).values_list("search_id", flat=True).first()
    if search_id is not None:
        events.publish_on_commit(search_id, events.bundle_event(bundle))


def bundle_progress(bundle, progress: int, message: str) -> bool:
    """Record how far a build got (0..100) and what it is doing; False once it was superseded."""
    progress = max(0, min(99, int(progress)))
    updated = _bundle_running(bundle).update(progress=progress, message=message[:300], updated_at=timezone.now())
    bundle.progress, bundle.message = progress, message[:300]
    if updated:
        _bundle_announce(bundle, state="running")
    return bool(updated)


def bundle_ready(bundle, *, result) -> bool:
    """Record a finished build (a ``workers.bundles.BundleResult``). A superseded attempt's
    file is removed and False returned; a replaced older file is removed after commit."""
    fields = {name: getattr(result, name) for name in _BUNDLE_RESULT_FIELDS}
    fields["path"] = str(result.path)
    with transaction.atomic():
        previous = Bundle.objects.filter(pk=bundle.pk).values_list("path", flat=True).first()
        updated = _bundle_running(bundle).update(
            state=Bundle.State.READY, progress=100, message="Ready", error="", finished_at=timezone.now(),
            updated_at=timezone.now(), **fields)
        if updated and previous and previous != fields["path"]:
            transaction.on_commit(lambda: storage.delete(previous))
    if not updated:
        storage.delete(fields["path"])
    else:
        _bundle_announce(bundle, state="ready", progress=100, message="Ready")
    return bool(updated)


def bundle_fail(bundle, *, error: str) -> bool:
    """End a build that could not finish, with the reason."""
    updated = _bundle_running(bundle).update(
        state=Bundle.State.FAILED, message="Failed", error=error, finished_at=timezone.now(),
        updated_at=timezone.now())
    if updated:
        _bundle_announce(bundle, state="failed", message="Failed")
    return bool(updated)
