"""Redis, then the ASGI server, restart while a browser watches a running search."""
import sys
import time

import pytest
from processes import PrivateRedis, ServiceProcess, free_port, process_env

from searches.models import EpochMetric, Search

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

FAST = {"HEARTBEAT_SECONDS": "0.5", "HEARTBEAT_TIMEOUT_SECONDS": "5"}


def start_daphne(port, env, log_path):
    server = ServiceProcess([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "nasweb.asgi:application"], env, log_path)
    server.wait_for_port(port)
    return server


def circle_seqs(page):
    return page.locator("#chart circle.point").evaluate_all("els => els.map(e => Number(e.dataset.seq))")


def test_the_page_says_it_reconnects_then_resyncs_without_gap_or_duplicate(
        start_celery_worker, browser, make_user, log_in, tmp_path, checkpoint_dir):
    redis_server = PrivateRedis(tmp_path)
    env = dict(FAST, TEST_REDIS_URL=redis_server.url)
    start_celery_worker("control", "control", pool="threads", concurrency=2, beat=True, env=env)
    start_celery_worker("gpu", "cpu0", env=env)
    full_env = dict(process_env(checkpoint_dir), **env)
    port = free_port()
    server = start_daphne(port, full_env, tmp_path / "daphne-1.log")
    base = f"http://127.0.0.1:{port}"
    try:
        make_user("watcher", "a long enough password")
        page = browser.new_page()
        log_in(page, base, "watcher", "a long enough password")
        page.goto(f"{base}/searches/new/")
        page.fill("#id_name", "restarts")
        page.select_option("#id_dataset", "synthetic")
        page.fill("#id_max_candidates", "5")
        page.fill("#id_epochs", "8")
        page.fill("#id_parallel", "1")
        page.get_by_text("Advanced settings").click()  # the seed is an advanced setting
        page.fill("#id_seed", "3")
        page.click("#start-search")
        page.wait_for_url("**/searches/*/")
        search = Search.objects.get(name="restarts")
        page.wait_for_function("Number(document.getElementById('search').dataset.points) >= 3", timeout=120_000)

        # 1. Redis goes away and comes back: the page must notice, say so, and resync.
        redis_server.stop()
        page.wait_for_selector("#search[data-connection=lost]", timeout=30_000)
        assert "reconnecting" in page.inner_text("#connection")
        time.sleep(2)
        redis_server.start()
        page.wait_for_selector("#search[data-connection=live]", timeout=60_000)

        # 2. The ASGI server is killed and started again on the same port.
        server.stop(sig=9)
        page.wait_for_selector("#search[data-connection=lost]", timeout=30_000)
        server = start_daphne(port, full_env, tmp_path / "daphne-2.log")
        page.wait_for_selector("#search[data-connection=live]", timeout=60_000)

        page.wait_for_function("document.getElementById('search-state').textContent.trim() === 'finished'",
                               timeout=300_000)
        expected = sorted(EpochMetric.objects.filter(search=search).values_list("seq", flat=True))
        page.wait_for_function(f"Number(document.getElementById('search').dataset.points) === {len(expected)}",
                               timeout=30_000)
        drawn = circle_seqs(page)
        assert len(drawn) == len(set(drawn)), "a point was drawn twice"
        assert sorted(drawn) == expected, "the page misses points the database has"
        # The workers carried on: every candidate trained all its epochs, none twice.
        for cand in search.candidates.all():
            epochs = list(EpochMetric.objects.filter(candidate=cand).order_by("epoch").values_list("epoch", flat=True))
            assert epochs == list(range(1, 9)), (cand.index, epochs)
        assert search.candidates.count() == 5
    finally:
        server.stop()
        redis_server.stop()
