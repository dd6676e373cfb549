"""Every state change of the domain goes through one function here.

Views, consumers and Celery tasks call these and nothing else that writes.
Work for the workers is enqueued only after the transaction that made it
commits, so a worker never sees a row a rollback took back.

One module per entity; this package re-exports every public name, so callers
write ``services.search_create`` whichever module holds it.
"""
from django.core.exceptions import ValidationError

from nasweb.celery import app as celery_app

from .. import events
from ..selectors import state_counts  # a read, kept here for callers that know it here
from .accounts import user_set_password
from .bundles import (BUNDLE_STALE_SECONDS, BUNDLE_TASK, bundle_fail, bundle_progress, bundle_ready,
                      bundle_request, bundle_start)
from .candidates import (candidate_claim, candidate_fail, candidate_finish, candidate_metrics, candidate_note,
                         candidate_prune, candidate_set_measurements, candidate_stop, candidates_cancel_orphans,
                         oneshot_finish)
from .controller import _strategy_for, score_spec, search_advance, search_history
from .datasets import dataset_delete, dataset_upload
from .enqueue import ADVANCE_TASK, TRAIN_TASK
from .epochs import EPOCH_LOCK_NAMESPACE, epoch_record
from .logs import LOG_MAX_LINES, candidate_log_append
from .heartbeats import candidates_requeue_stale, queue_repair, worker_heartbeat
from .searches import (LIMITS, ONE_SHOT, search_cancel, search_clone, search_create, search_delete, search_fail,
                       search_pause, search_resume)
from .tokens import (API_TOKEN_PREFIX, MAX_ACTIVE_API_TOKENS, api_token_create, api_token_digest, api_token_revoke,
                     api_token_touch)

__all__ = [
    "ADVANCE_TASK", "API_TOKEN_PREFIX", "BUNDLE_STALE_SECONDS", "BUNDLE_TASK", "EPOCH_LOCK_NAMESPACE", "LIMITS",
    "MAX_ACTIVE_API_TOKENS", "ONE_SHOT", "TRAIN_TASK", "ValidationError", "api_token_create", "api_token_digest",
    "api_token_revoke", "api_token_touch", "bundle_fail", "bundle_progress", "bundle_ready", "bundle_request",
    "bundle_start", "candidate_claim", "candidate_fail", "candidate_finish",
    "candidate_log_append", "LOG_MAX_LINES",
    "candidate_metrics", "candidate_note", "candidate_prune", "candidate_set_measurements", "candidate_stop",
    "candidates_cancel_orphans", "candidates_requeue_stale", "celery_app", "dataset_delete", "dataset_upload",
    "epoch_record", "events",
    "oneshot_finish", "queue_repair", "score_spec", "search_advance", "search_cancel", "search_clone",
    "search_create", "search_delete", "search_fail", "search_history", "search_pause", "search_resume",
    "state_counts", "user_set_password", "worker_heartbeat", "_strategy_for",
]
