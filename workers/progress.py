"""What a candidate does inside an epoch, told to its pages while it trains.

``LiveReport`` sends in-epoch progress (batches done / total) over the channel layer at most
``PROGRESS_HZ`` times a second and never writes it to the database; it also collects the
candidate's log (this thread's log records and whatever the training prints to stdout or
stderr), sends new lines live, and stores them in chunks of at most ``CHUNK_LINES`` lines or
every ``FLUSH_SECONDS`` seconds, so a reload shows them again.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

from searches import events, selectors, services

log = logging.getLogger(__name__)

PROGRESS_HZ = 4
CHUNK_LINES = 200  # selectors.candidate_log_lines relies on chunks no longer than this
FLUSH_SECONDS = 2.0
UNSENT_MAX = 500  # lines held for the next live event while the channel layer is slow
IGNORED_LOGGERS = ("celery.redirected",)  # Celery's copy of stdout: we read stdout itself


class LiveReport:
    def __init__(self, candidate, clock=time.monotonic):
        self.candidate_id, self.search_id, self.index = candidate.id, candidate.search_id, candidate.index
        self.clock = clock
        self.next_line = selectors.candidate_log_length(candidate.id) + 1
        self.unsaved: list[str] = []
        self.unsent: list[list] = []
        self.last_send = self.last_flush = clock()
        self.lock = threading.RLock()
        self.phase = ""

    # --- progress -----------------------------------------------------------------
    def step(self, phase: str) -> None:
        """A step outside the epochs (loading data, measuring, testing): sent at once."""
        self.phase = phase
        self._send({"phase": phase})

    def batch(self, epoch: int, done: int, total: int) -> None:
        """Called after every batch; sends only a few times a second (and the last batch)."""
        if done == total or self.clock() - self.last_send >= 1 / PROGRESS_HZ:
            self._send({"phase": "training", "epoch": epoch, "batch": done, "batches": total})

    def _send(self, progress: dict) -> None:
        with self.lock:
            self.last_send = self.clock()
            event = {"type": "progress", "candidate": self.candidate_id, "index": self.index, **progress}
            if self.unsent:
                event["lines"] = self.unsent[-UNSENT_MAX:]
            if events.publish_live(self.search_id, event):
                self.unsent = []
            if self.unsaved and self.clock() - self.last_flush >= FLUSH_SECONDS:
                self.flush()

    # --- log --------------------------------------------------------------------------
    def line(self, text: str) -> None:
        with self.lock:
            for part in text.rstrip("\n").split("\n"):
                self.unsaved.append(part)
                self.unsent.append([self.next_line, part])
                self.next_line += 1
            del self.unsent[:-UNSENT_MAX]  # the page reads older ones from the database
            if len(self.unsaved) >= CHUNK_LINES:
                self.flush()
            if self.clock() - self.last_send >= 1 / PROGRESS_HZ:
                self._send({"phase": self.phase})

    def flush(self) -> None:
        """Store the lines not stored yet as one chunk (best effort: a failed write keeps them
        for the next try, and training goes on)."""
        with self.lock:
            self.last_flush = self.clock()
            while self.unsaved:
                chunk = self.unsaved[:CHUNK_LINES]
                first = self.next_line - len(self.unsaved)
                try:
                    services.candidate_log_append(self.candidate_id, first_line=first, lines=chunk)
                except Exception:  # noqa: BLE001 (the database may be away: keep the lines)
                    del self.unsaved[:-CHUNK_LINES * 5]  # bounded while it is
                    return
                del self.unsaved[:len(chunk)]

    def close(self, phase: str = "ended") -> None:
        with self.lock:
            self._send({"phase": phase})
            self.flush()


class _LogHandler(logging.Handler):
    def __init__(self, report: LiveReport, thread_id: int):
        super().__init__(logging.INFO)
        self.report, self.thread_id = report, thread_id
        self.busy = threading.local()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record):
        if record.thread != self.thread_id or record.name in IGNORED_LOGGERS or getattr(self.busy, "on", False):
            return
        self.busy.on = True  # a failure reported while sending must not loop back here
        try:
            self.report.line(self.format(record))
        except Exception:  # noqa: BLE001
            pass
        finally:
            self.busy.on = False


class _Tee:
    """A stream that writes through to the real one and gives whole lines to the report."""

    def __init__(self, stream, report: LiveReport, thread_id: int):
        self.stream, self.report, self.thread_id, self.partial = stream, report, thread_id, ""

    def write(self, text):
        if threading.get_ident() == self.thread_id and text:
            self.partial += text
            if "\n" in self.partial:
                whole, self.partial = self.partial.rsplit("\n", 1)
                self.report.line(whole)
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def capture(report: LiveReport):
    """Feed this thread's log records and its stdout/stderr into ``report`` while the block runs."""
    thread_id = threading.get_ident()
    handler = _LogHandler(report, thread_id)
    root, ours = logging.getLogger(), logging.getLogger("workers")
    previous_level = ours.level
    root.addHandler(handler)
    if ours.getEffectiveLevel() > logging.INFO:
        ours.setLevel(logging.INFO)  # the worker's own step lines, whatever the root's level
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, report, thread_id), _Tee(err, report, thread_id)
    try:
        yield report
    finally:
        sys.stdout, sys.stderr = out, err
        root.removeHandler(handler)
        ours.setLevel(previous_level)
