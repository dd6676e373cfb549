"""A candidate at work, seen from the pages (issue 18, item 3): in-epoch progress on the search
page and the candidate page, and the candidate's log live, kept across a reload."""
import re

import pytest
from playwright.sync_api import expect

from searches import services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

PASSWORD = "a long enough password"


def test_ux_pages_show_a_candidate_working_inside_its_epoch_and_its_log(live_stack, browser, make_user, log_in):
    user = make_user("live", PASSWORD)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_stack, "live", PASSWORD)  # first, so the pages open while epoch 1 still runs
    search = services.search_create(owner=user, name="live one", dataset="digits", space="chain", strategy="random",
                                    max_candidates=1, epochs=4, parallel=1, seed=3,
                                    # long enough to still be training when the candidate page opens
                                    train_settings={"batch_size": 4, "train_fraction": 1.0})
    page.reload()
    page.get_by_role("link", name="live one").click()
    training_now = page.get_by_role("region", name="Training now")
    expect(training_now.get_by_text(re.compile(r"epoch 1 · batch \d+ of \d+"))).to_be_visible(timeout=120_000)
    training_now.get_by_role("link", name="#0").click()

    expect(page.get_by_text(re.compile(r"epoch \d · batch \d+ of \d+"))).to_be_visible(timeout=60_000)
    log = page.get_by_role("log", name="Training log")
    expect(log).to_contain_text("claimed by")
    page.screenshot(path="/tmp/ux-shots/candidate-live.png", full_page=True)
    expect(log).to_contain_text("epoch 2: train loss", timeout=120_000)
    expect(log).to_contain_text("epoch 4: train loss", timeout=120_000)
    expect(page.get_by_text("done: finished")).to_be_visible(timeout=60_000)

    page.reload()
    log = page.get_by_role("log", name="Training log")
    expect(log).to_contain_text("claimed by")
    expect(log).to_contain_text("epoch 4: train loss")
    assert search.candidates.get().log_chunks.count() >= 1
