"""Deterministic training is reachable by clicking (issue 18 follow-up): from the front page to the
new-search form, ticked under the advanced settings, and shown on the search page it creates."""
import re

import pytest
from playwright.sync_api import expect

from searches.models import Search
from tests.e2e.test_ux_pages import daphne, page, user  # noqa: F401  (the same server, user and logged-in page)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_deterministic_training_is_ticked_in_the_form_and_shown_on_the_search_page(page, daphne, user):  # noqa: F811
    assert page.url == f"{daphne}/"  # logged in on the front page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New search").click()
    expect(page.get_by_role("heading", name="New search")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("repeatable")
    page.get_by_label("Dataset", exact=True).select_option("digits")
    deterministic = page.get_by_label("Deterministic training")
    expect(deterministic).to_be_hidden()
    page.get_by_text("Advanced settings").click()
    expect(deterministic).to_be_visible()
    expect(deterministic).not_to_be_checked()
    deterministic.check()
    page.get_by_label("Seed", exact=True).fill("7")
    page.get_by_role("button", name=re.compile("Start search")).click()
    page.wait_for_url("**/searches/*/")
    expect(page.get_by_role("heading", name=re.compile("repeatable"), level=1)).to_be_visible()
    expect(page.get_by_test_id("deterministic")).to_have_text("deterministic training")
    expect(page.get_by_text(re.compile("seed 7"))).to_be_visible()
    assert Search.objects.get(name="repeatable").train_settings["deterministic"] is True


def test_a_search_without_deterministic_training_does_not_say_so(page, daphne, user):  # noqa: F811
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New search").click()
    page.get_by_label("Name", exact=True).fill("free running")
    page.get_by_label("Dataset", exact=True).select_option("digits")
    page.get_by_role("button", name=re.compile("Start search")).click()
    page.wait_for_url("**/searches/*/")
    expect(page.get_by_role("heading", name=re.compile("free running"), level=1)).to_be_visible()
    expect(page.get_by_test_id("deterministic")).to_have_count(0)
    assert Search.objects.get(name="free running").train_settings["deterministic"] is False
