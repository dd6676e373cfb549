"""The search and candidate pages as ES modules over one socket helper (issue 13 item 5,
issue 16 item 2): the server orders the leaderboard, the server alone fills lost events,
redraws happen on animation frames and say when they drew, bundle progress arrives over
the websocket instead of polling."""
import hashlib

import pytest
from django.utils import timezone

from searches import selectors, services
from searches.models import Candidate, EpochMetric, Search
from tests.e2e.pages_helpers import make_search, open_page, page_user, wait_search_ready  # noqa: F401
from tests.e2e.test_dashboard import daphne, in_thread  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def board_ids(page):
    return page.locator("#leaderboard tbody tr").evaluate_all("rows => rows.map(r => Number(r.dataset.candidate))")


def test_pages_load_their_scripts_as_modules_without_errors(daphne, browser, page_user):
    search = make_search(page_user, "modules", 40, running=1)
    cand = search.candidates.filter(state="finished").first()
    w = open_page(browser, daphne, "pages")
    for path, script in ((f"/searches/{search.id}/", "search.js"),
                         (f"/searches/{search.id}/candidates/{cand.id}/", "candidate.js"), ("/workers/", "workers.js")):
        w.page.goto(daphne + path)
        assert w.page.locator(f"script[type=module][src$='js/{script}']").count() == 1
        w.page.wait_for_function("document.getElementById('connection').textContent !== 'connecting…'")
    assert w.errors == []


def test_the_leaderboard_order_comes_from_the_server_not_the_page(daphne, browser, page_user):
    search = make_search(page_user, "order", 80, running=2)
    w = open_page(browser, daphne, "pages")
    w.page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(w.page)
    # A running candidate far down the board jumps to the top with one epoch.
    running = Candidate.objects.filter(search=search, state="running").order_by("index").first()
    assert running.id not in board_ids(w.page)[:1]
    assert in_thread(services.epoch_record, running, epoch=running.epochs_done + 1, train_loss=0.1,
                     train_accuracy=0.99, val_loss=0.1, val_accuracy=0.9999, seconds=1.0)
    expected = [r["id"] for r in selectors.leaderboard_page(search)["rows"]]
    assert expected[0] == running.id
    w.page.wait_for_function("""ids => {
        const got = [...document.querySelectorAll('#leaderboard tbody tr')].map(r => Number(r.dataset.candidate));
        return got.length === ids.length && got.every((v, i) => v === ids[i]); }""", arg=expected)
    # It asked the server for the order, over its socket, with the view it shows.
    asks = [m for m in w.sent if m.get("type") == "leaderboard"]
    assert asks and asks[-1]["leaderboard"]["sort"] == "-best"
    assert w.errors == []


def test_a_lost_event_is_filled_by_the_server_and_the_page_never_asks(daphne, browser, page_user):
    search = make_search(page_user, "gap", 30, running=1)
    w = open_page(browser, daphne, "pages")
    running = Candidate.objects.filter(search=search, state="running").first()
    w.page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(w.page)
    before = int(w.page.get_attribute("#search", "data-points"))  # the running one's curve is held
    # One epoch reaches Postgres but its event is lost (written without one) ...
    search.refresh_from_db()
    lost_seq = search.last_seq + 1
    EpochMetric.objects.create(candidate=running, search=search, epoch=running.epochs_done + 1, seq=lost_seq,
                               train_loss=0.5, train_accuracy=0.8, val_loss=0.5, val_accuracy=0.8, seconds=1.0)
    Search.objects.filter(pk=search.pk).update(last_seq=lost_seq)
    Candidate.objects.filter(pk=running.pk).update(epochs_done=running.epochs_done + 1)
    running.refresh_from_db()
    # ... the next one arrives: the consumer sends the lost one first, from Postgres.
    assert in_thread(services.epoch_record, running, epoch=running.epochs_done + 1, train_loss=0.4,
                     train_accuracy=0.85, val_loss=0.4, val_accuracy=0.85, seconds=1.0)
    w.page.wait_for_function(f"Number(document.getElementById('search').dataset.points) === {before + 2}")
    w.page.wait_for_function(f"window.nasweb.lastDrawn.seq === {lost_seq + 1}")
    assert "resume" not in w.sent_types()
    assert w.errors == []


def test_each_redraw_with_new_epochs_records_when_it_drew(daphne, browser, page_user):
    search = make_search(page_user, "drawn", 30, running=1)
    w = open_page(browser, daphne, "pages")
    w.page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(w.page)
    running = Candidate.objects.filter(search=search, state="running").first()
    marks_before = w.page.evaluate("performance.getEntriesByName('nasweb-drawn').length")
    assert in_thread(services.epoch_record, running, epoch=running.epochs_done + 1, train_loss=0.1,
                     train_accuracy=0.9, val_loss=0.1, val_accuracy=0.9, seconds=1.0)
    search.refresh_from_db()
    w.page.wait_for_function(f"window.nasweb && window.nasweb.lastDrawn.seq === {search.last_seq}")
    drawn = w.page.evaluate("window.nasweb.lastDrawn")
    assert drawn["drawnAt"] > timezone.now().timestamp() * 1000 - 60_000
    assert w.page.evaluate("performance.getEntriesByName('nasweb-drawn').length") > marks_before


def test_bundle_progress_arrives_over_the_websocket_without_polling(daphne, browser, page_user, tmp_path):
    search = make_search(page_user, "bundle", 10)
    cand = search.candidates.filter(state="finished").first()
    checkpoint = tmp_path / "c.pt"
    checkpoint.write_bytes(b"weights")
    Candidate.objects.filter(pk=cand.pk).update(checkpoint_path=str(checkpoint),
                                                checkpoint_sha256=hashlib.sha256(b"weights").hexdigest())
    cand.refresh_from_db()
    bundle = in_thread(services.bundle_request, cand)
    w = open_page(browser, daphne, "pages")
    w.page.goto(f"{daphne}/searches/{search.id}/candidates/{cand.id}/")
    panel = w.page.locator(".bundle-panel")
    w.page.wait_for_function("document.getElementById('connection').textContent === 'live'")
    w.requests.clear()
    claimed = in_thread(services.bundle_start, bundle.id, bundle.attempt, worker="w1@test")
    in_thread(services.bundle_progress, claimed, 40, "Exporting ONNX")
    w.page.wait_for_function("document.querySelector('.bundle-message').textContent.includes('40% · Exporting ONNX')")
    assert w.page.get_by_role("progressbar").get_attribute("aria-valuenow") == "40"
    w.page.wait_for_timeout(1500)  # a poller would have asked by now
    assert w.requests == []
    in_thread(services.bundle_fail, claimed, error="onnx export broke")
    w.page.wait_for_selector(".bundle-error")
    assert "onnx export broke" in panel.inner_text()
    assert len(w.requests) == 1 and "/bundle" in w.requests[0]
