"""The comparison page (issue 18 item 10): reached by clicking from a search's page, it
overlays the best-so-far curves of chosen searches and shows one search's decisions
against accuracy (a box per choice, parallel coordinates), bounded at 50,000 candidates."""
import re

import pytest

from searches import selectors_compare
from searches.models import Candidate
from tests.e2e.pages_helpers import make_search, open_page, page_user, wait_search_ready  # noqa: F401
from tests.e2e.test_dashboard import daphne  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_a_user_compares_two_searches_and_one_searchs_decisions(daphne, browser, page_user):
    first = make_search(page_user, "first run", 150, finished=True, seed=2)
    second = make_search(page_user, "second run", 90, finished=True, seed=3)
    w = open_page(browser, daphne, "pages")
    page = w.page
    page.goto(f"{daphne}/searches/{first.id}/")
    wait_search_ready(page)
    page.get_by_role("link", name="Compare searches").click()
    page.wait_for_url("**/compare/**")
    page.get_by_role("checkbox", name=re.compile("second run")).check()
    page.get_by_role("button", name="Compare").click()
    page.wait_for_selector("#compare[data-drawn]")
    assert page.get_by_role("checkbox", name=re.compile("first run")).is_checked()
    # Both searches' best-so-far, against candidates and against time, with a legend.
    for chart in ("best validation accuracy against candidates", "best validation accuracy against time"):
        svg = page.get_by_role("img", name=chart)
        assert svg.get_attribute("data-lines") == "2"
        assert sorted(int(v) for v in svg.locator("polyline.best-curve").evaluate_all("e => e.map(x => x.dataset.search)")) \
            == sorted([first.id, second.id])
    legend = page.locator("#compare-legend").inner_text()
    assert "first run" in legend and "second run" in legend
    # The decisions of the first one: a box per choice of every decision, with counts that add up.
    space = selectors_compare.space_of(first)
    finished = first.candidates.filter(state="finished", best_val_accuracy__isnull=False).count()
    assert page.locator(".decision-box").count() == len(space.decisions)
    for d in space.decisions:
        box = page.get_by_role("img", name=f"accuracy per choice of {d.name}")
        counts = box.locator("g.choice").evaluate_all("gs => gs.map(g => Number(g.dataset.count))")
        assert len(counts) == len(d.choices) and sum(counts) == finished
    parallel = page.get_by_role("img", name="decisions against accuracy, one line per candidate")
    assert parallel.get_attribute("data-lines") == str(finished)
    assert f"{finished} finished candidates" in page.locator("#parallel-note").inner_text()
    assert w.errors == []


def test_the_comparison_stays_bounded_at_50000_candidates(daphne, browser, page_user):
    big = make_search(page_user, "huge", 50_000, epochs=1, seed=4, finished=True, space="mobile")
    finished = Candidate.objects.filter(search=big, state="finished").count()
    w = open_page(browser, daphne, "pages")
    page = w.page
    response = page.goto(f"{daphne}/compare/?s={big.id}&decisions={big.id}")
    assert response.ok
    assert len(response.body()) < 2_000_000  # aggregated and sampled, not 50,000 rows
    page.wait_for_selector("#compare[data-drawn]")
    parallel = page.get_by_role("img", name="decisions against accuracy, one line per candidate")
    lines = int(parallel.get_attribute("data-lines"))
    assert selectors_compare.PARALLEL_TOP < lines <= selectors_compare.PARALLEL_LIMIT
    assert f"{lines:,} of {finished:,} finished candidates drawn" in page.locator("#parallel-note").inner_text()
    boxes = page.get_by_role("img", name=re.compile("accuracy per choice of"))
    total = sum(boxes.first.locator("g.choice").evaluate_all("gs => gs.map(g => Number(g.dataset.count))"))
    assert total == finished  # the boxes count every finished candidate, aggregated in Postgres
    assert page.get_by_role("img", name="best validation accuracy against candidates").get_attribute("data-lines") == "1"
    assert w.errors == []
