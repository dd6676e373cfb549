"""Events for the browser, sent through the channel layer after commit.

Postgres holds the truth; an event only tells open pages what changed. Each
epoch event carries the search's sequence number, so a page that lost its
connection asks for everything after the last one it saw.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)
SEND_TIMEOUT_SECONDS = 5


class _Publisher:
    """One event loop thread per process that sends every event.

    ``async_to_sync`` would start a new loop, and so open a new Redis
    connection, for every event (about 4 ms each); one long-lived loop keeps
    the layer's connections open (about 0.25 ms). It is made anew in a
    forked child (Celery's prefork pool), where the parent's thread is gone.
    """

    _lock = threading.Lock()
    _instance: "_Publisher | None" = None

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="nasweb-events", daemon=True).start()

    @classmethod
    def get(cls) -> "_Publisher":
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = cls()
            return cls._instance

    def send(self, group: str, message: dict, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        layer = get_channel_layer()
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), self.loop)
        future.result(timeout=timeout)  # sent before the caller goes on (event order)


def group_name(search_id: int) -> str:
    return f"search-{search_id}"


def _send(search_id: int, event: dict) -> None:
    try:
        _Publisher.get().send(group_name(search_id), {"type": "search.event", "event": event, "sent_at": time.time()})
    except Exception:  # a lost message costs a redraw, never data: log, don't fail the caller
        log.warning("could not publish %s event for search %s", event.get("type"), search_id, exc_info=True)


def live_group(search_id: int) -> str:
    """In-epoch progress and log lines: a group of their own, so the search's pages that do
    not show them (and the ordered epoch stream) never carry them."""
    return f"live-{search_id}"


LIVE_SEND_TIMEOUT_SECONDS = 0.5
LIVE_PAUSE_SECONDS = 5.0


def publish_live(search_id: int, event: dict) -> bool:
    """Send a progress or log event now (nothing is committed with it: it is never the truth).
    Returns False when it could not leave; then live sends pause for ``LIVE_PAUSE_SECONDS``, so a
    slow or absent Redis costs training at most one short wait every few seconds."""
    publisher = _Publisher.get()
    if time.monotonic() < getattr(publisher, "live_paused_until", 0.0):
        return False
    try:
        publisher.send(live_group(search_id), {"type": "live.event", "event": event},
                       timeout=LIVE_SEND_TIMEOUT_SECONDS)
        return True
    except Exception:  # noqa: BLE001 - the next event replaces a lost one
        publisher.live_paused_until = time.monotonic() + LIVE_PAUSE_SECONDS
        log.warning("could not publish a live event for search %s; pausing live events", search_id, exc_info=True)
        return False


def publish_on_commit(search_id: int, event: dict) -> None:
    """Send ``event`` to the search's pages once the current transaction commits."""
    transaction.on_commit(lambda: _send(search_id, event))


def epoch_event(metric) -> dict:
    return {
        "type": "epoch", "seq": metric.seq, "candidate": metric.candidate_id, "epoch": metric.epoch,
        "train_loss": metric.train_loss, "train_accuracy": metric.train_accuracy,
        "val_loss": metric.val_loss, "val_accuracy": metric.val_accuracy, "seconds": metric.seconds,
    }


def candidate_event(candidate) -> dict:
    return {"type": "candidate", "candidate": candidate_data(candidate)}


def bundle_event(bundle) -> dict:
    """A model bundle's build moved: its panel shows the progress without asking."""
    return {"type": "bundle", "bundle": {"id": bundle.id, "candidate": bundle.candidate_id, "state": bundle.state,
                                         "progress": bundle.progress, "message": bundle.message}}


def search_event(search, counts: dict) -> dict:
    return {"type": "search", "search": search_data(search, counts)}


def candidate_data(c) -> dict:
    """The plain-JSON form of a candidate the page draws (snapshot, leaderboard pages and
    events alike). Small on purpose: no confusion matrix, no full traceback."""
    return {
        "id": c.id, "index": c.index, "genotype": c.genotype, "state": c.state, "arch": c.arch,
        "kind": c.kind, "param_count": c.param_count, "flops": c.flops, "latency_ms": c.latency_ms,
        "on_pareto_front": c.on_pareto_front, "epochs_done": c.epochs_done,
        "best_val_accuracy": c.best_val_accuracy, "final_val_accuracy": c.final_val_accuracy,
        "test_accuracy": c.test_accuracy, "test_macro_f1": c.test_macro_f1,
        "worker": c.worker, "device": c.device,
        "error": c.error.splitlines()[-1] if c.error else "", "stop_reason": c.stop_reason,
        "started_at": c.started_at.isoformat() if c.started_at else None,
        "finished_at": c.finished_at.isoformat() if c.finished_at else None,
        "has_checkpoint": bool(c.checkpoint_path),
        # Only a DARTS job reads its (deferred) extra: the derived cell may be all skips.
        **({"skip_collapse": bool(c.extra.get("skip_collapse"))} if c.kind == "darts" else {}),
    }


def search_data(s, counts: dict) -> dict:
    return {
        "id": s.id, "name": s.name, "state": s.state, "error": s.error,
        "max_candidates": s.max_candidates, "epochs": s.epochs, "parallel": s.parallel,
        "objectives": s.objectives, "last_seq": s.last_seq, "counts": counts,
        "started_at": s.started_at.isoformat() if s.started_at else None,
        "finished_at": s.finished_at.isoformat() if s.finished_at else None,
    }

