"""A worker's pulse: a daemon thread that writes a heartbeat every few seconds.

Heartbeats come from a thread, not from the training loop, so a long epoch
on a big data set does not look like a dead worker; a killed process stops
beating and the reaper hands its candidate back to the queue.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

from django.db import connection

from searches import services

log = logging.getLogger(__name__)

INTERVAL_SECONDS = float(os.environ.get("HEARTBEAT_SECONDS", 5))


class Heartbeat:
    def __init__(self, name: str, device: str, interval: float = INTERVAL_SECONDS):
        self.name, self.device, self.interval = name, device, interval
        self.candidate_id: int | None = None
        self.attempt: int | None = None
        self.samples_per_second: float | None = None
        self._epochs = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nasweb-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def running(self, candidate_id: int | None, attempt: int | None = None) -> None:
        with self._lock:
            self.candidate_id, self.attempt = candidate_id, attempt
        self.beat()  # say it at once, not at the next tick

    def epoch_done(self, samples_per_second: float) -> None:
        with self._lock:
            self._epochs += 1
            self.samples_per_second = samples_per_second

    def beat(self) -> None:
        with self._lock:
            candidate_id, attempt, sps = self.candidate_id, self.attempt, self.samples_per_second
            epochs, self._epochs = self._epochs, 0
        try:
            services.worker_heartbeat(name=self.name, host=socket.gethostname(), device=self.device,
                                      candidate_id=candidate_id, attempt=attempt, samples_per_second=sps,
                                      epochs_delta=epochs)
        except Exception:  # the database may be restarting; the next beat tries again
            log.warning("heartbeat of %s failed", self.name, exc_info=True)
            with self._lock:
                self._epochs += epochs
        finally:
            if threading.current_thread() is self._thread:
                connection.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


_current: Heartbeat | None = None


def start(name: str, device: str) -> Heartbeat:
    global _current
    if _current is None:
        _current = Heartbeat(name, device).start()
    return _current


def current() -> Heartbeat | None:
    return _current
