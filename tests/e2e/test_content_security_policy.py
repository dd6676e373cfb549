"""The pages work under the Content-Security-Policy (issue 14, item 8): Chromium enforces
it, and no page needs an inline script or handler."""
import sys

import pytest
from factories import make_search
from processes import ServiceProcess, free_port, process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_pages_run_under_the_policy_with_no_violation(browser, make_user, log_in, tmp_path, checkpoint_dir):
    user = make_user("csp", "a long enough password")
    search, candidates = make_search(user, checkpoint_dir, name="policy")
    port = free_port()
    server = ServiceProcess([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "nasweb.asgi:application"], process_env(checkpoint_dir), tmp_path / "daphne.log")
    try:
        server.wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        page = browser.new_page(bypass_csp=False)  # the policy enforced, as a visitor's browser does
        violations = []
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: violations.append(str(e)))
        log_in(page, base, "csp", "a long enough password")

        page.goto(f"{base}/searches/new/")
        page.click("button.preset[data-preset=thorough]")  # the presets' script is a static file now
        assert page.input_value("#id_max_candidates") == "100" and page.input_value("#id_epochs") == "30"
        page.goto(f"{base}{search.url}")
        page.wait_for_selector("#search[data-connection=live]", timeout=30_000)  # search.js ran
        page.goto(f"{base}/searches/{search.id}/candidates/{candidates[0].id}/")
        page.goto(f"{base}/searches/{search.id}/delete/")
        page.click("#confirm-delete")  # confirm_delete.js disables the button, then the form posts
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/api/docs/")
        page.wait_for_selector(".swagger-ui", timeout=30_000)
        assert violations == []
    finally:
        server.stop()
