"""One search as a new user runs it: in a real Chromium, against Daphne and real Celery workers."""
import pytest
import torch

from searches.models import Candidate, Search
from searches.nas import build_model
from workers import datasets, training

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def leaderboard_best_values(page):
    cells = page.locator("#leaderboard tbody td.best").all_inner_texts()
    return [float(v) for v in cells if v != "—"]


def test_a_new_user_runs_a_search_and_downloads_the_best_model(live_stack, browser, make_user, tmp_path, log_in):
    make_user("newuser", "a long enough password")
    page = browser.new_page(accept_downloads=True)
    requests_after_load = []
    log_in(page, live_stack, "newuser", "a long enough password")

    page.click("text=New search")
    page.fill("#id_name", "first search")
    page.select_option("#id_dataset", "digits")
    page.fill("#id_max_candidates", "4")
    page.fill("#id_epochs", "3")
    page.fill("#id_parallel", "2")
    page.get_by_text("Advanced settings").click()  # the seed is an advanced setting
    page.fill("#id_seed", "5")
    page.click("#start-search")
    page.wait_for_url("**/searches/*/")
    search = Search.objects.get(name="first search")
    page.wait_for_selector("#search[data-connection=live]")
    # From here on the page may only listen: no reloads, no polling requests.
    page.on("request", lambda r: requests_after_load.append(r.url) if r.resource_type != "websocket" else None)

    page.wait_for_selector("#chart circle.point", timeout=120_000)  # first epoch point, pushed live
    page.wait_for_selector("#leaderboard tbody tr", timeout=60_000)
    page.wait_for_function("document.getElementById('search-state').textContent === 'finished'", timeout=240_000)
    page.wait_for_function("Number(document.getElementById('search').dataset.points) === 12", timeout=30_000)

    assert requests_after_load == []
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.locator("#leaderboard tbody tr").count() == 4
    # The order is the server's, asked again over the socket when the search ends.
    page.wait_for_function("""() => {
        const v = [...document.querySelectorAll('#leaderboard tbody td.best')].map(td => Number(td.textContent));
        return v.every((x, i) => i === 0 || v[i - 1] >= x); }""")
    best_values = leaderboard_best_values(page)
    assert len(best_values) == 4 and best_values == sorted(best_values, reverse=True)
    assert page.locator("#chart polyline").count() == 4
    seqs = sorted(int(s) for s in page.locator("#chart circle.point").evaluate_all("els => els.map(e => e.dataset.seq)"))
    assert seqs == list(range(1, 13))
    assert "4 / 4 candidates done" in page.inner_text("#progress-text")

    with page.expect_download() as download_info:
        page.click("#best-download")
    path = tmp_path / "best.pt"
    download_info.value.save_as(path)

    ckpt = torch.load(path, weights_only=True)
    model = build_model(ckpt["space"], ckpt["space_settings"], ckpt["arch"], ckpt["input_shape"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    best = search.candidates.filter(state=Candidate.State.FINISHED).order_by("-best_val_accuracy", "index").first()
    assert ckpt["arch"] == best.arch
    data = datasets.load(search.dataset, search.seed, "unused")
    _, accuracy, _ = training.evaluate(model, data.x_test, data.y_test)
    assert abs(accuracy - best.test_accuracy) * 100 <= 0.5


def test_another_user_cannot_open_or_stream_the_search(live_stack, browser, make_user, log_in):
    owner = make_user("owner", "a long enough password")
    make_user("intruder", "a long enough password")
    from searches import services
    search = services.search_create(owner=owner, name="private", dataset="digits", space="chain",
                                    strategy="random", max_candidates=1, epochs=1, seed=1)
    page = browser.new_page()
    log_in(page, live_stack, "intruder", "a long enough password")
    response = page.goto(f"{live_stack}/searches/{search.id}/")
    assert response.status == 404
    # The websocket refuses too, even when the page is forged.
    closed = page.evaluate("""(url) => new Promise(resolve => {
        const ws = new WebSocket(url);
        ws.onclose = e => resolve(e.code);
        ws.onmessage = () => resolve('message');
    })""", f"{live_stack.replace('http', 'ws')}/ws/searches/{search.id}/")
    assert closed != "message"
