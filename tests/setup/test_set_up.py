"""The set-up's quick promises: the browser tests fail with one line that says what to run,
the server lookup finds the pinned packages, and the demo user reaches the admin pages."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from scripts import prereqs

ROOT = Path(__file__).resolve().parents[2]


def test_without_chromium_the_browser_fixture_fails_with_the_one_line_to_run(monkeypatch, request):
    monkeypatch.setattr(prereqs, "CHROMIUM", "/nonexistent/chromium")
    line = prereqs.browser_problem()
    assert "\n" not in line and "apt-get install -y chromium chromium-driver" in line
    with pytest.raises(pytest.fail.Exception) as failed:
        request.getfixturevalue("browser")
    assert str(failed.value) == line
    assert failed.value.pytrace is False  # pytest prints the line, not a traceback


def test_the_browser_check_is_quiet_when_chromium_is_there():
    result = subprocess.run([sys.executable, "scripts/prereqs.py", "browser"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout) == ((0, "") if prereqs.browser_problem() is None
                                                  else (1, prereqs.browser_problem() + "\n"))


def test_the_servers_come_from_the_pinned_packages_first():
    for what, expected, name in (("pg-bindir", prereqs.embedded_pg_bindir(), "initdb"),
                                 ("redis-server", prereqs.embedded_redis_server(), "redis-server")):
        result = subprocess.run([sys.executable, "scripts/prereqs.py", what], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=True)
        found = Path(result.stdout.strip())
        assert expected is not None and found == expected, what
        assert "site-packages" in found.parts
        binary = found / name if found.is_dir() else found
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=True)
        assert ("PostgreSQL) 18." if what == "pg-bindir" else "v=6.2.") in version.stdout


@pytest.mark.django_db
def test_the_demo_user_reaches_the_admin_pages(client):
    call_command("demo_setup", "--password", "demo-password-1", "--no-search", stdout=open("/dev/null", "w"))
    assert client.login(username="demo", password="demo-password-1")
    page = client.get("/admin/")
    assert page.status_code == 200
    assert b"/admin/searches/search/" in page.content  # the models are listed, not "no permission"
    assert client.get("/admin/searches/search/").status_code == 200
