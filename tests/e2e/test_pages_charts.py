"""Charts, leaderboard and Pareto front of the search page at 1,280 px (issue 18 items 5, 6
and 7; issue 13 item 4's page side): read by labels and roles where the page has them."""
import re
from datetime import datetime

import pytest

from searches import selectors
from searches.models import Candidate
from tests.e2e.pages_helpers import make_search, open_page, page_user, wait_search_ready  # noqa: F401
from tests.e2e.test_dashboard import daphne  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def svg_geometry(page, selector):
    return page.eval_on_selector(selector, """svg => {
        const r = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
        return {w: r.width, h: r.height, vw: vb.width, vh: vb.height}; }""")


def test_a_finished_search_draws_undistorted_charts_to_its_end_without_a_live_badge(daphne, browser, page_user):
    search = make_search(page_user, "finished one", 60, finished=True)
    w = open_page(browser, daphne, "pages")
    w.page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(w.page)
    page = w.page
    page.wait_for_selector("#best-chart polyline.best-line")
    # No "live" badge: the search ended and says so.
    connection = page.locator("#connection").inner_text()
    assert "live" not in connection and "finished" in connection
    # Tick labels never repeat, on either axis.
    for axis in ("y-tick", "x-tick"):
        labels = page.locator(f"#best-chart text.{axis}").evaluate_all("els => els.map(e => e.textContent)")
        assert len(labels) >= 2 and len(labels) == len(set(labels)), labels
    # The time axis ends where the search ended, not now.
    end = page.get_attribute("#best-chart", "data-end")
    assert abs(datetime.fromisoformat(end.replace("Z", "+00:00")) - search.finished_at).total_seconds() < 1
    # Every chart is drawn in the pixels it has: no stretched text, round dots.
    page.get_by_role("combobox", name=re.compile("^Cost")).select_option(label="parameters")
    page.wait_for_selector("#pareto circle.scatter-point")
    for chart in ("#chart", "#best-chart", "#pareto"):
        g = svg_geometry(page, chart)
        assert abs(g["w"] - g["vw"]) <= 1 and abs(g["h"] - g["vh"]) <= 1, (chart, g)
    assert w.errors == []


def test_state_filters_sit_next_to_their_labels_and_the_site_has_a_favicon(daphne, browser, page_user):
    search = make_search(page_user, "filters", 20, running=1)
    w = open_page(browser, daphne, "pages")
    w.page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(w.page)
    filters = w.page.get_by_role("group", name="State")
    for state in ("queued", "finished", "cancelled"):
        box = filters.get_by_role("checkbox", name=state, exact=True)
        gap = box.evaluate("""input => {
            const text = [...input.parentElement.childNodes].find(n => n.nodeType === 3 && n.textContent.trim());
            const range = document.createRange();
            range.selectNodeContents(text);
            const words = [...range.getClientRects()].filter(r => r.width > 0)[0];
            return words.left - input.getBoundingClientRect().right; }""")
        assert -1 <= gap <= 10, (state, gap)
    icon = w.page.request.get(f"{daphne}/favicon.ico")
    assert icon.ok and "svg" in icon.headers["content-type"]
    assert not [e for e in w.errors if "404" in e]


def test_the_leaderboard_fits_1280_px_with_the_whole_architecture_on_hover_or_click(daphne, browser, page_user):
    search = make_search(page_user, "wide", 60, running=1)
    best = search.candidates.filter(state="finished").order_by("-best_val_accuracy")[:10]
    Candidate.objects.filter(id__in=[c.id for c in best]).update(checkpoint_path="/nowhere/c.pt")  # a download link each
    w = open_page(browser, daphne, "pages", width=1280)
    page = w.page
    page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(page)
    wrap = page.eval_on_selector("#leaderboard", "t => [t.parentElement.scrollWidth, t.parentElement.clientWidth]")
    assert wrap[0] <= wrap[1], wrap
    page.get_by_role("link", name="checkpoint").first.wait_for()
    for header in ("Best val. acc.", "Test acc.", "State"):
        box = page.get_by_role("columnheader", name=header).bounding_box()
        assert box["x"] + box["width"] <= 1280, header
    first = page.locator("#leaderboard tbody tr").first
    cid = int(first.get_attribute("data-candidate"))
    genotype = search.candidates.get(id=cid).genotype
    toggle = first.get_by_role("button", name=re.compile("architecture of"))
    assert toggle.get_attribute("title") == genotype  # the whole text on hover
    short_height = toggle.bounding_box()["height"]
    toggle.click()
    page.wait_for_function("document.querySelector('#leaderboard tbody tr .arch-toggle').getAttribute('aria-expanded') === 'true'")
    assert first.locator("code.arch").inner_text() == genotype
    assert page.locator("#leaderboard tbody tr").first.locator(".arch-toggle").bounding_box()["height"] > short_height


def test_switching_the_pareto_cost_draws_every_finished_candidate_and_the_servers_front(daphne, browser, page_user):
    search = make_search(page_user, "pareto", 140, running=1)
    w = open_page(browser, daphne, "pages")
    page = w.page
    page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(page)
    page.wait_for_selector("#pareto circle.scatter-point")
    for cost, label in (("flops", "FLOPs"), ("latency", "latency (ms)"), ("params", "parameters")):
        page.get_by_role("combobox", name=re.compile("^Cost")).select_option(label=label)
        expected = selectors.scatter_points(search, cost)
        n = len(expected["points"])
        assert n > 100  # more than the page's leaderboard holds
        page.wait_for_selector(f"#pareto[data-cost={cost}]")
        page.wait_for_function(f"Number(document.getElementById('pareto').dataset.points) === {n}")
        page.wait_for_function(f"document.getElementById('pareto-note').textContent.includes('of {n} drawn')")
        front = sorted(int(v) for v in page.locator("#pareto circle.scatter-point.front")
                       .evaluate_all("els => els.map(e => e.dataset.candidate)"))
        assert front == sorted(expected["front"]), cost
        assert page.locator("#pareto-capped").is_hidden()
    assert w.errors == []


def test_a_capped_pareto_chart_says_so(daphne, browser, page_user):
    search = make_search(page_user, "many", 2200, epochs=1)
    w = open_page(browser, daphne, "pages")
    page = w.page
    page.goto(f"{daphne}/searches/{search.id}/")
    wait_search_ready(page)
    page.get_by_role("combobox", name=re.compile("^Cost")).select_option(label="FLOPs")
    expected = selectors.scatter_points(search, "flops")
    assert expected["sampled"]
    page.wait_for_selector("#pareto[data-cost=flops]")
    note = page.get_by_role("status")
    note.wait_for()
    assert re.search(rf"Capped: {len(expected['points']):,} of {expected['total']:,} finished", note.inner_text())
    front = page.locator("#pareto circle.scatter-point.front").count()
    assert front == len(expected["front"])
