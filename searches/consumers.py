"""The websocket of one search: a bounded snapshot from Postgres, then live events."""
from __future__ import annotations

import asyncio
import logging
import random
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import health, selectors
from .events import group_name

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
RECONCILE_SECONDS = 2.0



async def _admit_owner(consumer) -> bool:
    """Set ``consumer.search_id`` from the route and keep the socket only for the search's
    logged-in owner; anyone else is closed (4401 or 4404). Returns whether it may go on."""
    user = consumer.scope.get("user")
    if user is None or not user.is_authenticated:
        await consumer.close(code=CLOSE_UNAUTHENTICATED)
        return False
    consumer.search_id = int(consumer.scope["url_route"]["kwargs"]["search_id"])
    if not await database_sync_to_async(selectors.search_owned_by)(user, consumer.search_id):
        await consumer.close(code=CLOSE_NOT_FOUND)
        return False
    return True

class SharedReads:
    """Reads of Postgres that every page of a search in this process needs at the same
    moment, made once and shared: fifty pages otherwise queue fifty identical reads on
    the process's one database thread, and each page waits for all of them (a message the
    channel layer lost made every page fetch the same gap: ~200 ms for all fifty).

    A result is shared for ``fresh_for`` seconds after its read began; a read still
    running is shared however old, so a backed-up database thread gets no second one.
    """

    def __init__(self, fresh_for: float):
        self.fresh_for = fresh_for
        self.reads: dict[tuple, tuple[asyncio.AbstractEventLoop, float, asyncio.Future]] = {}

    async def get(self, read, *args):
        loop = asyncio.get_running_loop()
        now = loop.time()
        key = (read, *args)
        cached = self.reads.get(key)
        if cached is None or cached[0] is not loop or (cached[2].done() and now - cached[1] > self.fresh_for):
            for old in [k for k, (_, at, f) in self.reads.items() if f.done() and now - at > self.fresh_for]:
                del self.reads[old]
            future = asyncio.ensure_future(database_sync_to_async(read)(*args))
            future.add_done_callback(_retrieve_error)  # every waiter may be gone when it fails
            cached = self.reads[key] = (loop, now, future)
        return await asyncio.shield(cached[2])


def _retrieve_error(read: asyncio.Future) -> None:
    if not read.cancelled():
        read.exception()  # marks it retrieved; the waiters log it


shared_reads = SharedReads(fresh_for=RECONCILE_SECONDS / 2)


def _ids(value) -> list[int]:
    """``"1,2,3"`` or ``[1, 2, 3]`` -> ``[1, 2, 3]``; anything else is skipped."""
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [])
    ids = []
    for item in items:
        try:
            ids.append(int(item))
        except (TypeError, ValueError):
            continue
    return ids


def _int(value, default=0) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


class SearchConsumer(AsyncJsonWebsocketConsumer):
    """Joins the search's group before reading the snapshot, so nothing falls between the
    two; the page drops epochs whose sequence number it has seen.

    What the page asks for, in the URL's query string or in a ``resume`` message:
    ``after`` (last sequence number seen), ``have`` (candidates whose curves it holds),
    ``selected`` (candidates the user picked), ``top`` (how many of the best to draw) and
    the leaderboard view (``sort``, ``state``, ``page``... as the JSON endpoint takes them).
    With ``candidate=<id>`` (the candidate page) the snapshot and the events are those of
    that one candidate and of the search itself.
    """

    async def connect(self):
        if not await _admit_owner(self):
            return
        query = {k: v for k, v in parse_qs(self.scope.get("query_string", b"").decode(), keep_blank_values=True).items()}
        self.only_candidate = _ids(query.get("candidate", [""])[0])[:1] or None
        self.group = group_name(self.search_id)
        self.send_lock = asyncio.Lock()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await self._snapshot({k: v[0] if len(v) == 1 else v for k, v in query.items()}, query)
        # Every epoch up to here is in the snapshot or, for curves the page does not draw,
        # fetched when it needs them; the stream is gap-free from this number on.
        self.sent_seq = (snapshot.get("search") or {}).get("last_seq", 0)
        await self.send_json(snapshot)
        if not self.only_candidate:
            self.reconcile_task = asyncio.create_task(self._reconcile())

    async def _snapshot(self, fields: dict, params) -> dict:
        after = _int(fields.get("after", 0))
        if self.only_candidate:
            return await database_sync_to_async(selectors.candidate_snapshot)(
                self.search_id, self.only_candidate[0], after)
        have = _ids(fields["have"]) if "have" in fields else None
        return await database_sync_to_async(selectors.search_snapshot)(
            self.search_id, after, have=have, selected=_ids(fields.get("selected", "")),
            query=selectors.LeaderboardQuery.from_params(params),
            top_n=_int(fields["top"], None) if "top" in fields else None)

    async def receive_json(self, content, **kwargs):
        """``resume``: a new snapshot after ``after``. ``leaderboard``: the page's leaderboard
        view again, in the server's order (the page never sorts); pages of this process that
        show the same view share one read."""
        kind = content.get("type") if isinstance(content, dict) else None
        view = content.get("leaderboard") if kind and isinstance(content.get("leaderboard"), dict) else {}
        if kind == "resume":
            async with self.send_lock:  # live epochs and the reconciler send too: one at a time keeps the order
                snapshot = await self._snapshot(content, view)
                await self.send_json(snapshot)
                if not self.only_candidate:  # what the snapshot holds is not sent again
                    self.sent_seq = max(self.sent_seq, (snapshot.get("search") or {}).get("last_seq", 0))
        elif kind == "leaderboard" and not self.only_candidate:
            query = selectors.LeaderboardQuery.from_params(view)
            board = await shared_reads.get(selectors.leaderboard_page_of, self.search_id, query)
            await self.send_json({"type": "leaderboard", "view": str(content.get("view", ""))[:2000], "board": board})

    async def _reconcile(self):
        """Every few seconds, compare with Postgres and send what the stream has not.

        The channel layer drops messages for a page that falls far behind (capacity,
        expiry after 60 s), and the last ones lost show no gap until another arrives;
        Postgres is the truth, so the consumer checks against it and the page ends
        with every epoch however the layer fared. Only what was committed before the
        previous check counts as lost: a newer epoch may still be on its way through
        the layer, and fetching it would hold the send lock (and the process's one
        database thread) while its event waits behind. So a lost last epoch reaches the
        page two or three checks after its commit, within about 7 s.
        """
        committed_before = None  # the search's last sequence number at the previous check
        await asyncio.sleep(random.uniform(0, RECONCILE_SECONDS))  # pages opened together check apart
        while True:
            try:
                last = await shared_reads.get(selectors.search_last_seq, self.search_id)
                if committed_before is not None and committed_before > self.sent_seq:
                    async with self.send_lock:
                        await self._fill_gap_before(committed_before + 1, why="late")
                committed_before = last
            except Exception:  # Postgres away for a moment: check again next time, keep the page
                log.warning("could not reconcile search %s with Postgres", self.search_id, exc_info=True)
            await asyncio.sleep(RECONCILE_SECONDS)

    async def disconnect(self, code):
        task = getattr(self, "reconcile_task", None)
        if task is not None:
            task.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def search_event(self, message):
        event = message["event"]
        if self.only_candidate and not self._concerns_candidate(event):
            return
        if event.get("type") != "epoch" or self.only_candidate:
            await self.send_json(event)
            return
        async with self.send_lock:  # the reconciler sends too; one at a time keeps the order
            if event["seq"] <= self.sent_seq:
                return  # already sent, from Postgres, while this message waited in the layer
            await self._fill_gap_before(event["seq"])
            await self.send_json(event)
            self.sent_seq = event["seq"]
        health.observe_push(message.get("sent_at"))

    async def _fill_gap_before(self, seq: int, why: str = "jump") -> None:
        """Send, from Postgres and in order, every epoch after the last one sent and before
        ``seq``. The channel layer drops messages when a page falls behind (capacity,
        expiry); consecutive sequence numbers show the hole (``why`` "jump"), or the
        reconciler finds it still missing a check after its commit ("late"). Call with
        ``send_lock`` held."""
        if seq > self.sent_seq + 1:
            missed = await shared_reads.get(selectors.epochs_between, self.search_id, self.sent_seq, seq)
            # One line per page and fill: the soak counts them (0 when the layer lost nothing).
            log.info("gap fill (%s): search %s, seq %s..%s, %s epoch(s) from Postgres",
                     why, self.search_id, self.sent_seq + 1, seq - 1, len(missed))
            for event in missed:
                await self.send_json(event)
        self.sent_seq = max(self.sent_seq, seq - 1)

    def _concerns_candidate(self, event: dict) -> bool:
        kind = event.get("type")
        if kind == "epoch":
            return event.get("candidate") == self.only_candidate[0]
        if kind == "candidate":
            return (event.get("candidate") or {}).get("id") == self.only_candidate[0]
        if kind == "bundle":
            return (event.get("bundle") or {}).get("candidate") == self.only_candidate[0]
        return kind == "search"


class WorkersConsumer(AsyncJsonWebsocketConsumer):
    """The Workers page's websocket: the worker table whenever it changes.

    Heartbeats are frequent and Postgres holds them, so instead of an event per beat this
    reads the (small) worker table every ``interval`` seconds on the server and sends it
    only when something besides the heartbeat ages changed; the page counts ages itself.
    """

    interval = 2.0

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        await self.accept()
        self._last = None
        self._task = asyncio.ensure_future(self._watch())

    async def _send_if_changed(self):
        rows = await database_sync_to_async(selectors.worker_rows_for)(self.user)
        key = [{k: v for k, v in row.items() if k != "seconds_since_heartbeat"} for row in rows]
        if key != self._last:
            self._last = key
            await self.send_json({"type": "workers", "workers": rows})

    async def _watch(self):
        while True:
            try:
                await self._send_if_changed()
            except Exception:  # Postgres away for a moment: keep the page, read again next time
                log.warning("could not read the workers for the Workers page", exc_info=True)
            await asyncio.sleep(self.interval)

    async def disconnect(self, code):
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()


class SearchListConsumer(WorkersConsumer):
    """The search list's websocket: the user's rows (state, done/total, best accuracy) whenever
    they change, read on the server every ``interval`` seconds like the workers table."""

    async def _send_if_changed(self):
        rows = await database_sync_to_async(selectors.search_list_rows)(self.user)
        if rows != self._last:
            self._last = rows
            await self.send_json({"type": "searches", "searches": rows})


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """In-epoch progress and log lines of a search's running candidates (``?candidate=<id>``:
    that one's only, with its stored log after ``after`` first, so a reload or a reconnect
    misses no line). Nothing here is the truth; a lost message is replaced by the next."""

    async def connect(self):
        from .events import live_group

        if not await _admit_owner(self):
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.candidate = (_ids(query.get("candidate", [""])[0]) or [None])[0]
        self.group = live_group(self.search_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        if self.candidate is not None and await database_sync_to_async(selectors.candidate_in_search)(
                self.search_id, self.candidate):
            after = _int(query.get("after", ["0"])[0])
            self.log_readable = True
            await self._send_log(after)

    async def _send_log(self, after: int):
        lines = await database_sync_to_async(selectors.candidate_log_lines)(self.candidate, after)
        await self.send_json({"type": "log", "candidate": self.candidate, "lines": lines})

    async def receive_json(self, content, **kwargs):
        """``{"type": "log", "after": n}``: the stored lines after n again (a page that saw a gap
        in the live lines, which were sent before its socket opened, asks for them)."""
        if getattr(self, "log_readable", False) and isinstance(content, dict) and content.get("type") == "log":
            await self._send_log(_int(content.get("after", 0)))

    async def live_event(self, message):
        event = message["event"]
        if self.candidate is not None:
            if event.get("candidate") == self.candidate:
                await self.send_json(event)
        else:  # the search page shows progress, not every line of every candidate
            await self.send_json({k: v for k, v in event.items() if k != "lines"})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
