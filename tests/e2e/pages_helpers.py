"""Helpers of the page tests (test_pages_*.py, test_compare.py): a Daphne server, a search
filled with generated history, a logged-in page that records what it sends and fails on
any script error."""
from __future__ import annotations

import json

import pytest
from django.utils import timezone

from bench.dashboard import fill_search
from searches import services
from searches.models import Search

PASSWORD = "a long enough password"


def make_search(user, name, n, *, epochs=3, seed=1, running=0, queued=0, finished=False, objectives=None, space="cell"):
    search = services.search_create(
        owner=user, name=name, dataset="digits", space=space, strategy="random", max_candidates=n + running + queued,
        epochs=epochs, parallel=4, seed=seed,
        objectives=objectives or [{"metric": "val_accuracy", "direction": "max"}, {"metric": "params", "direction": "min"}])
    Search.objects.filter(pk=search.pk).update(state=Search.State.RUNNING, started_at=timezone.now())
    search.refresh_from_db()
    fill_search(search, n + running + queued, epochs=epochs, seed=seed, running=running, queued=queued)
    if finished:
        last = search.candidates.order_by("-finished_at").values_list("finished_at", flat=True).first()
        Search.objects.filter(pk=search.pk).update(state=Search.State.FINISHED, finished_at=last)
    search.refresh_from_db()
    return search


class Watched:
    """A page with its script errors, its HTTP requests and the frames its websockets sent."""

    def __init__(self, page):
        self.page, self.errors, self.requests, self.sent = page, [], [], []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: self.requests.append(r.url) if r.resource_type not in ("websocket",) else None)
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: self.sent.append(json.loads(payload))))

    def sent_types(self):
        return [m.get("type") for m in self.sent if isinstance(m, dict)]


def open_page(browser, base, username, *, width=1280, height=900):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    watched = Watched(page)
    page.goto(f"{base}/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    return watched


def wait_search_ready(page):
    page.wait_for_selector("#search[data-connection=live]")
    page.wait_for_function("document.getElementById('search').dataset.readyMs !== undefined")


@pytest.fixture
def page_user(make_user):
    return make_user("pages", PASSWORD)
