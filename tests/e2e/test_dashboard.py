"""The dashboard of a big search in a real Chromium, against Daphne and the real channel layer.

The history is generated (bulk COPY, no training); "live workers" are the service calls a
worker makes (epoch_record) and events sent through the channel layer, so the test stays
fast on a small machine while every byte still goes Postgres -> Redis -> Daphne -> browser.
"""
import asyncio
import re
import sys
import threading
import time

import pytest
from django.utils import timezone

from bench.dashboard import fill_search
from searches import selectors, services
from searches.models import Candidate, Search, Worker
from tests.conftest import ServiceProcess, free_port, process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "a long enough password"
N = 120


@pytest.fixture
def daphne(tmp_path, checkpoint_dir):
    """Daphne alone: this test needs no Celery worker."""
    port = free_port()
    server = ServiceProcess([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nasweb.asgi:application"],
                            process_env(checkpoint_dir), tmp_path / "daphne.log")
    try:
        server.wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def big_search(make_user, checkpoint_dir):
    user = make_user("dash", PASSWORD)
    search = services.search_create(
        owner=user, name="big", dataset="digits", space="cell", strategy="random", max_candidates=N + 30,
        epochs=3, parallel=4, seed=1,
        objectives=[{"metric": "val_accuracy", "direction": "max"}, {"metric": "params", "direction": "min"}])
    Search.objects.filter(pk=search.pk).update(state=Search.State.RUNNING, started_at=timezone.now())
    search.refresh_from_db()
    fill_search(search, N, epochs=3, seed=4, running=2, queued=1)
    return search


def ids_on_page(page):
    return [int(v) for v in page.locator("#leaderboard tbody tr").evaluate_all("rows => rows.map(r => r.dataset.candidate)")]


def expected_ids(search, **params):
    board = selectors.leaderboard_page(search, selectors.LeaderboardQuery.from_params(params))
    return [r["id"] for r in board["rows"]]


def wait_for_rows(page, ids, timeout=10_000):
    page.wait_for_function("""(ids) => {
        const got = [...document.querySelectorAll('#leaderboard tbody tr')].map(r => Number(r.dataset.candidate));
        return got.length === ids.length && got.every((v, i) => v === ids[i]);
    }""", arg=ids, timeout=timeout)


def open_search(page, url):
    """Open the search page and wait until its websocket snapshot is drawn."""
    page.goto(url)
    page.wait_for_selector("#search[data-connection=live]")
    page.wait_for_function("document.getElementById('search').dataset.readyMs !== undefined")


def dataset_number(page, key):
    return page.evaluate(f"Number(document.getElementById('search').dataset.{key} || 0)")


def in_thread(fn, *args, **kwargs):
    """Run ``fn`` in a thread of its own: Playwright's sync API keeps an event loop in the test's
    thread, where asgiref's async_to_sync (which sends events) and asyncio.run refuse to run."""
    from django.db import connection

    result = {}

    def target():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the test's thread)
            result["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def send_epoch_events(search_id, candidate_ids, first_seq, count):
    from channels.layers import get_channel_layer

    from searches.events import group_name

    async def send():
        layer = get_channel_layer()
        for i in range(count):
            if i and i % 20 == 0:
                await asyncio.sleep(0.1)  # about 200 a second: a busy search, within what one page absorbs
            seq = first_seq + i
            await layer.group_send(group_name(search_id), {"type": "search.event", "event": {
                "type": "epoch", "seq": seq, "candidate": candidate_ids[i % len(candidate_ids)], "epoch": 1,
                "train_loss": 1.0, "train_accuracy": 0.2, "val_loss": 1.0, "val_accuracy": 0.1, "seconds": 1.0}})
    asyncio.run(send())


def test_a_user_sorts_filters_pages_inspects_and_controls_a_big_search_live(daphne, browser, big_search, log_in,
                                                                             checkpoint_dir):
    search = big_search
    url = f"{daphne}/searches/{search.id}/"
    context = browser.new_context()
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, daphne, "dash", PASSWORD)
    open_search(page, url)

    # First page, best first, from the websocket snapshot; the rest is on other pages.
    wait_for_rows(page, expected_ids(search))
    assert "page 1 of 3" in page.inner_text("#lb-page") and f"{N} candidates" in page.inner_text("#lb-page")
    best = [float(v) for v in page.locator("#leaderboard tbody td.best").all_inner_texts() if v != "—"]
    assert best == sorted(best, reverse=True)
    # The chart draws the top 10 (and the running ones' curves are held), not all 120.
    assert page.locator("#chart polyline").count() == 10
    # Pareto scatter of a two-objective search: front highlighted.
    page.wait_for_selector("#pareto circle.scatter-point.front")
    assert page.locator("#pareto circle.scatter-point").count() == search.candidates.filter(state="finished").count()

    # Sort by parameters (a click on the header), then filter, then page.
    page.click("#leaderboard th[data-sort=params]")
    wait_for_rows(page, expected_ids(search, sort="params"))
    assert "sort=params" in page.url
    page.check("#lb-filters input[name=state][value=failed]")
    page.check("#lb-filters input[name=state][value=pruned]")
    page.click("#lb-apply")
    wait_for_rows(page, expected_ids(search, sort="params", state=["failed", "pruned"]))
    assert set(page.locator("#leaderboard tbody tr").evaluate_all("rs => rs.map(r => r.dataset.state)")) <= {"failed", "pruned"}
    page.fill("#lb-filters input[name=q]", "no such architecture")
    page.click("#lb-apply")
    page.wait_for_selector("#leaderboard-nomatch:not([hidden])")
    page.click("#lb-clear")
    wait_for_rows(page, expected_ids(search, sort="params"))
    page.click("#lb-next")
    second_page = expected_ids(search, sort="params", page="2")
    wait_for_rows(page, second_page)
    assert "page 2 of 3" in page.inner_text("#lb-page")

    # Tick two candidates of page 2: the chart draws them besides the top 10, then compare them.
    a, b = second_page[0], second_page[1]
    page.check(f"#leaderboard input.pick[data-candidate='{a}']")
    page.check(f"#leaderboard input.pick[data-candidate='{b}']")
    page.wait_for_selector(f"#chart polyline[data-candidate='{a}']")
    page.wait_for_selector(f"#chart polyline[data-candidate='{b}']")
    page.click("#compare-selected")
    page.wait_for_url("**/diff/?a=*")
    ca, cb = Candidate.objects.get(id=a), Candidate.objects.get(id=b)
    differing = sum(ca.arch[k] != cb.arch[k] for k in ca.arch)
    assert page.locator("#diff-table tr.differs").count() == differing > 0
    assert page.locator("svg.arch-diagram[data-space=cell]").count() == 2
    assert page.locator("svg.arch-diagram").first.locator("g.edge").count() == sum(v != "none" for v in ca.arch.values())

    # Open a finished candidate from the leaderboard: curves, heat map, diagram.
    open_search(page, url)
    finished_link = page.locator("#leaderboard tbody tr[data-state=finished] a.candidate-link").first
    cid = int(finished_link.evaluate("a => a.closest('tr').dataset.candidate"))
    finished_link.click()
    page.wait_for_url(f"**/candidates/{cid}/")
    cand = Candidate.objects.get(id=cid)
    assert page.locator("#confusion td[style*='--share']").count() == 100
    assert page.locator("#accuracy-chart circle.point").count() == 2 * cand.epochs_done
    page.select_option("#cand-scale", "log")
    page.wait_for_selector("#loss-chart[data-scale=log]")
    assert page.locator("svg.arch-diagram g.edge").count() == sum(v != "none" for v in cand.arch.values())

    # Back on the search page: curves on a log axis, a Pareto point opens its candidate.
    open_search(page, url)
    page.select_option("#curve-metric", "val_loss")
    page.select_option("#curve-scale", "log")
    page.wait_for_selector("#chart[data-scale=log][data-metric=val_loss]")
    front_point = page.locator("#pareto circle.scatter-point.front").first
    front_id = int(front_point.get_attribute("data-candidate"))
    front_point.click(force=True)
    page.wait_for_url(f"**/candidates/{front_id}/")
    page.go_back()
    page.wait_for_function("document.getElementById('search').dataset.readyMs !== undefined")

    # A second browser watches; from here on it only listens.
    other = browser.new_context().new_page()
    log_in(other, daphne, "dash", PASSWORD)
    open_search(other, url)
    other_requests = []
    other.on("request", lambda r: other_requests.append(r.url) if r.resource_type != "websocket" else None)

    # A worker records an epoch: both pages show it without asking.
    running = Candidate.objects.filter(search=search, state="running").order_by("index").first()
    points_before = dataset_number(other, "points")
    ok = in_thread(services.epoch_record, running, epoch=running.epochs_done + 1, train_loss=0.1, train_accuracy=0.99,
              val_loss=0.1, val_accuracy=0.999, seconds=1.0)
    assert ok
    other.wait_for_function(f"Number(document.getElementById('search').dataset.points) === {points_before + 1}")
    wait_for_rows(other, expected_ids(search))  # it leads the leaderboard now
    other.wait_for_selector(f"#chart polyline[data-candidate='{running.id}']")

    # A burst of 400 events is absorbed in far fewer redraws (one per animation frame at most).
    events_before, draws_before = dataset_number(other, "events"), dataset_number(other, "draws")
    search.refresh_from_db()
    finished_ids = [c.id for c in search.candidates.filter(state="finished")[:20]]
    in_thread(send_epoch_events, search.id, finished_ids, search.last_seq + 1, 400)
    other.wait_for_function(f"Number(document.getElementById('search').dataset.events) >= {events_before + 400}")
    other.wait_for_function(f"window.nasweb.lastDrawn.seq === {search.last_seq + 400}")
    draws = dataset_number(other, "draws") - draws_before
    assert 1 <= draws <= 100, draws

    # Pause, resume, cancel in one browser; the other sees each change live.
    for button, expected in (("#pause-button", "paused"), ("#resume-button", "running"), ("#cancel-button", "cancelled")):
        page.click(button)
        page.wait_for_function(f"document.getElementById('search-state').textContent === '{expected}'")
        other.wait_for_function(f"document.getElementById('search-state').textContent === '{expected}'")
        search.refresh_from_db()
        assert search.state == expected
    assert other.locator("#resume-form").is_hidden() and other.locator("#cancel-form").is_hidden()

    # Clone: the form comes pre-filled from this search.
    page.click("#clone-link")
    page.wait_for_selector("#clone-note")
    assert page.input_value("#id_name") == "Copy of big"
    assert page.input_value("#id_max_candidates") == str(N + 30) and page.input_value("#id_space") == "cell"

    # Delete, after a confirmation; checkpoint files go too, the watcher is told.
    folder = checkpoint_dir / f"search-{search.id}"
    folder.mkdir(parents=True)
    files = []
    for c in search.candidates.filter(state="finished")[:3]:
        path = folder / f"candidate-{c.index}.pt"
        path.write_bytes(b"weights")
        Candidate.objects.filter(pk=c.pk).update(checkpoint_path=str(path))
        files.append(path)
    page.goto(url + "delete/")
    assert "3 checkpoint files" in page.inner_text("#delete-summary")
    page.click("#confirm-delete")
    page.wait_for_url(f"{daphne}/")
    assert re.search(r"Deleted “big” and 3 checkpoint files", page.inner_text("main"))
    other.wait_for_selector("#search-deleted:not([hidden])")
    assert not Search.objects.filter(pk=search.pk).exists() and not any(p.exists() for p in files)
    assert other_requests == []

    # Workers: one beating, one silent past the timeout.
    Worker.objects.create(name="gpu0@alive", host="alive", device="cuda:0 (H100)", last_heartbeat=timezone.now(),
                          samples_per_second=900.0)
    Worker.objects.create(name="gpu1@gone", host="gone", device="cpu",
                          last_heartbeat=timezone.now() - timezone.timedelta(minutes=10))
    page.goto(f"{daphne}/workers/")
    assert "live" in page.inner_text("tr[data-worker='gpu0@alive'] td.status")
    assert "lost" in page.inner_text("tr[data-worker='gpu1@gone'] td.status")
