"""What a new user meets on the pages (issue 18): every page reachable from the navigation by
clicking, the bundle panel and exports on the pages, the live worker count, the search list's
columns, filters and sorting, the grouped form with its estimate, candidate ids and hours."""
import re
import sys

import pytest
from playwright.sync_api import expect

from searches import services
from tests.conftest import ServiceProcess, free_port, process_env
from tests.factories import make_ready_bundle, make_search

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "a long enough password"
SHOTS = "/tmp/ux-shots"


@pytest.fixture
def daphne(tmp_path, checkpoint_dir):
    port = free_port()
    server = ServiceProcess([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nasweb.asgi:application"],
                            process_env(checkpoint_dir), tmp_path / "daphne.log")
    try:
        server.wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def user(make_user):
    u = make_user("ux", PASSWORD)
    u.is_staff = True
    u.is_superuser = True
    u.save()
    return u


@pytest.fixture
def page(browser, daphne, log_in, user):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, daphne, "ux", PASSWORD)
    yield page
    context.close()


def heartbeat(name="cpu0@box"):
    services.worker_heartbeat(name=name, host="box", device="cpu", candidate_id=None)


def test_ux_every_page_is_reachable_from_the_navigation_by_clicking(page, daphne, user, checkpoint_dir):
    search, candidates = make_search(user, checkpoint_dir, name="walked")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Searches").click()
    expect(page.get_by_role("heading", name="Searches", level=1)).to_be_visible()
    page.get_by_role("link", name="walked").click()
    expect(page.get_by_role("heading", name=re.compile("walked"), level=1)).to_be_visible()
    page.get_by_role("link", name="Architectures").click()
    page.go_back()
    nav.get_by_role("link", name="New search").click()
    expect(page.get_by_role("heading", name="New search")).to_be_visible()
    nav.get_by_role("link", name="Data sets").click()
    expect(page.get_by_role("heading", name="Data sets", level=1)).to_be_visible()
    nav.get_by_role("link", name="Workers").click()
    expect(page.get_by_role("heading", name="Workers", level=1)).to_be_visible()
    nav.get_by_text("Settings").click()
    nav.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API docs").click()
    expect(page).to_have_title(re.compile("NASWeb API"))
    page.go_back()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Compare").click()
    expect(page.get_by_role("heading", name="Compare searches", level=1)).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def test_ux_bundle_panel_and_exports_are_on_the_search_and_candidate_pages(page, daphne, user, checkpoint_dir,
                                                                           tmp_path):
    search, candidates = make_search(user, checkpoint_dir, name="bundled", finished=(0.6, 0.8), running=0)
    best = max(candidates, key=lambda c: c.best_val_accuracy or 0)
    page.get_by_role("link", name="bundled").click()
    panel = page.locator(".bundle-panel")
    expect(panel.get_by_role("heading", name=re.compile("Model bundle"))).to_contain_text(f"candidate {best.index}")
    exports = page.locator("#exports-card")
    expect(exports.get_by_role("link", name="candidates CSV")).to_have_attribute("href", re.compile(r"candidates\.csv$"))
    expect(exports.get_by_role("link", name="epochs JSON")).to_be_visible()
    panel.get_by_role("button", name="Build model bundle").click()
    expect(page.locator(".bundle-panel").get_by_role("progressbar")).to_be_visible()
    page.wait_for_selector("#search[data-connection=live]")
    expect(page.locator("#leaderboard tbody tr")).to_have_count(2)
    page.screenshot(path=f"{SHOTS}/search.png", full_page=True)

    other = min(candidates, key=lambda c: c.best_val_accuracy or 0)
    make_ready_bundle(other, tmp_path)
    page.goto(page.url)  # the leaderboard's link to the other candidate
    page.locator(f"#leaderboard tr[data-candidate='{other.id}'] a", has_text=f"#{other.index}").first.click()
    expect(page.get_by_role("heading", name=re.compile(f"Candidate #{other.index}"))).to_contain_text(f"id {other.id}")
    panel = page.locator(".bundle-panel")
    expect(panel.get_by_role("link", name=re.compile("Download bundle"))).to_be_visible()
    expect(panel.get_by_role("row", name=re.compile("int8"))).to_contain_text("test accuracy 0.8900")
    page.screenshot(path=f"{SHOTS}/candidate.png", full_page=True)


def test_ux_search_page_says_asked_at_once_and_workers_online_live(page, daphne, user, checkpoint_dir):
    search, _ = make_search(user, checkpoint_dir, name="capped", finished=(0.7,), running=1)
    heartbeat()
    page.get_by_role("link", name="capped").click()
    count = page.locator("[data-worker-count]")
    expect(count).to_contain_text(f"{search.parallel} at once asked, 1 worker online")
    expect(page.get_by_text(re.compile(r"Worker-hours spent"))).to_be_visible()
    heartbeat("cpu1@box")
    expect(count).to_contain_text("2 workers online", timeout=10_000)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workers").click()
    start = page.get_by_role("region", name="Start more workers")
    expect(start).to_contain_text("celery -A nasweb worker -Q gpu")
    expect(start).to_contain_text("--scale worker-gpu=")
    page.screenshot(path=f"{SHOTS}/workers.png", full_page=True)


def test_ux_search_list_shows_filters_sorts_and_updates_live(page, daphne, user, checkpoint_dir):
    first, _ = make_search(user, checkpoint_dir, name="alpha", finished=(0.9,), running=0, seed=1)
    second, _ = make_search(user, checkpoint_dir, name="beta", finished=(0.5,), running=1, seed=2)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Searches").click()
    table = page.get_by_role("table")
    for header in ("Data set", "Space", "Strategy", "Best val. accuracy", "Done / total", "Duration", "State"):
        expect(table.get_by_role("columnheader", name=header)).to_be_visible()
    expect(table.get_by_role("row", name=re.compile("alpha"))).to_contain_text("digits")
    expect(table.get_by_role("row", name=re.compile("alpha"))).to_contain_text("0.9000")
    table.get_by_role("button", name="Best val. accuracy").click()
    expect(table.locator("tbody tr").first).to_contain_text("alpha")
    table.get_by_role("button", name="Best val. accuracy").click()
    expect(table.locator("tbody tr").first).to_contain_text("beta")
    page.get_by_label("Name").fill("alp")
    expect(table.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Name").fill("")
    expect(table.locator("tbody tr")).to_have_count(2)
    services.search_cancel(second)
    expect(table.get_by_role("row", name=re.compile("beta"))).to_contain_text("cancelled", timeout=10_000)
    page.screenshot(path=f"{SHOTS}/search-list.png", full_page=True)


def test_ux_form_groups_settings_explains_presets_and_estimates_the_run(page, daphne, user, checkpoint_dir):
    make_search(user, checkpoint_dir, name="history", finished=(0.7,), running=0)  # epochs of 0.1 s on digits
    heartbeat()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New search").click()
    basic = page.get_by_role("group", name="Basic settings")
    expect(basic.get_by_label("Candidates")).to_be_visible()
    expect(page.get_by_label("Learning rate")).to_be_hidden()
    page.get_by_text("Advanced settings").click()
    expect(page.get_by_label("Learning rate")).to_be_visible()
    expect(page.get_by_role("button", name="quick")).to_have_accessible_description(re.compile("a few minutes"))
    page.get_by_role("button", name="thorough").click()
    expect(basic.get_by_label("Candidates")).to_have_value("100")
    expect(page.locator("#space-size")).to_contain_text("41,472 architectures")
    estimate = page.locator("#run-estimate")
    expect(estimate).to_contain_text("1 at once with 1 worker online")
    expect(basic.locator("[data-worker-count]")).to_contain_text("4 at once asked, 1 worker online")
    page.get_by_label("Search space").select_option("cell")
    expect(page.locator("#space-size")).to_contain_text("15,625 architectures")
    page.screenshot(path=f"{SHOTS}/search-new.png", full_page=True)
