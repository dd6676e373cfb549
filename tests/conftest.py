"""Fixtures shared by the suite: users, and real worker / server processes
started against the test database and the test Redis database; and the
test tiers: which tests are slow, marked here so a new test is not forgotten."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings
from processes import ServiceProcess, free_port, process_env

from scripts.prereqs import CHROMIUM, browser_problem

# The slow tier (make test runs it, make test-fast leaves it out): each marker
# is registered in pytest.ini and also brings "slow". A test gets one by the
# fixtures it uses, by where it lives, or by saying so (pytest.mark.<name>).
SLOW_MARKERS = {"browser", "worker", "faults", "oneshot", "fuzz", "cli", "embedded", "training"}
FIXTURE_MARKERS = {"browser": "browser", "start_celery_worker": "worker", "live_stack": "worker"}
PATH_MARKERS = {  # relative to tests/; a folder ends with "/"
    "faults/": "faults",
    "workers/test_oneshot_jobs.py": "oneshot",
    "searches/test_form_fuzz.py": "fuzz",
    "searches/api/test_api_schema.py": "fuzz",
    "test_cli.py": "cli",
}
TEST_MARKERS = {  # single tests, by node id without parameters
    # several full training runs in the test process: the bulk of the fast tier's time otherwise;
    # test_training.py and the rest of test_training_engine.py still train in the fast tier
    "workers/test_training_engine.py::test_without_a_rule_the_same_candidate_trains_its_full_budget": "training",
    "workers/test_training_engine.py::test_median_rule_prunes_a_candidate_far_below_its_peers": "training",
    "workers/test_text_training.py::test_a_generated_text_corpus_trains_a_text_candidate_well_above_chance": "training",
    "workers/test_text_training.py::test_an_uploaded_image_folder_of_generated_pngs_trains_a_candidate": "training",
}
TESTS = Path(__file__).resolve().parent
FAST_ONLY = "not slow"  # the mark expression of make test-fast


def _path_marker(path: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return None
    for prefix, marker in PATH_MARKERS.items():
        if rel == prefix or (prefix.endswith("/") and rel.startswith(prefix)):
            return marker
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = {marker for fixture, marker in FIXTURE_MARKERS.items() if fixture in item.fixturenames}
        names |= {m.name for m in item.iter_markers()} & SLOW_MARKERS
        if (by_path := _path_marker(Path(str(item.fspath)))):
            names.add(by_path)
        if (by_name := TEST_MARKERS.get(item.nodeid.split("[")[0].removeprefix("tests/"))):
            names.add(by_name)
        for name in sorted(names):
            item.add_marker(name)
        if names:
            item.add_marker("slow")


def pytest_ignore_collect(collection_path, config):
    """Under make test-fast, do not import modules whose every test is slow (schemathesis,
    hypothesis and the like cost seconds at collection)."""
    if config.getoption("markexpr", "") == FAST_ONLY and _path_marker(Path(collection_path)):
        return True
    return None


@pytest.fixture(scope="session")
def clean_test_broker():
    """Drop messages a previous run left in the test broker (its own Redis database),
    once per session and only for tests that start workers."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, plus an end to connections that outlive
    their tests (consumer executor threads, killed worker processes) so the
    database can be dropped at the end."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        connection.close()


@pytest.fixture
def make_user(django_user_model):
    def make(username="alice", password="correct horse battery"):
        return django_user_model.objects.create_user(username=username, password=password)
    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def checkpoint_dir(tmp_path, settings):
    path = tmp_path / "checkpoints"
    settings.CHECKPOINT_DIR = path
    return path


@pytest.fixture
def start_celery_worker(tmp_path, checkpoint_dir, clean_test_broker):
    """Start real Celery worker processes against the test database and broker."""
    started: list[ServiceProcess] = []

    def start(queues: str, name: str, pool: str = "solo", concurrency: int = 1, beat: bool = False,
              env: dict | None = None) -> ServiceProcess:
        args = [sys.executable, "-m", "celery", "-A", "nasweb", "worker", "-Q", queues, "-n", f"{name}@%h",
                f"--pool={pool}", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
                "--loglevel=INFO"]
        if beat:  # the embedded scheduler runs the stale-heartbeat reaper
            args += ["-B", "--schedule", str(tmp_path / f"{name}-beat-schedule")]
        full_env = process_env(checkpoint_dir)
        full_env.update(env or {})
        log_path = tmp_path / f"{name}.log"
        if log_path.exists():  # a restarted worker of the same name keeps the first log
            log_path = tmp_path / f"{name}-{len(started)}.log"
        proc = ServiceProcess(args, full_env, log_path)
        started.append(proc)
        proc.wait_for_output("ready.", timeout=90)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def live_stack(start_celery_worker, tmp_path, checkpoint_dir):
    """Daphne serving the ASGI app plus a control and a training worker; yields the base URL."""
    port = free_port()
    server = ServiceProcess(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nasweb.asgi:application"],
        process_env(checkpoint_dir), tmp_path / "daphne.log")
    try:
        start_celery_worker("control", "control", pool="threads", concurrency=2)
        start_celery_worker("gpu", "cpu0")
        server.wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser(monkeypatch):
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    # Playwright's sync API runs an event loop in the test's thread; the ORM calls
    # these tests make between browser steps are plain blocking calls, safe here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    problem = browser_problem()
    if problem:  # the line make test printed, and no traceback
        pytest.fail(problem, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield _CspBypassingBrowser(browser)
        browser.close()


class _CspBypassingBrowser:
    """Pages that let Playwright's ``wait_for_function("...")`` evaluate its string, which the
    site's Content-Security-Policy forbids. The policy itself is tested with
    ``new_page(bypass_csp=False)`` (tests/e2e/test_content_security_policy.py)."""

    def __init__(self, browser):
        self._browser = browser

    def new_page(self, **kwargs):
        kwargs.setdefault("bypass_csp", True)
        return self._browser.new_page(**kwargs)

    def new_context(self, **kwargs):
        kwargs.setdefault("bypass_csp", True)
        return self._browser.new_context(**kwargs)

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture
def log_in():
    return _log_in


def _log_in(page, base_url, username, password):
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
