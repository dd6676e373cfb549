"""Fixtures shared by the suite: users, and real worker / server processes
started against the test database and the test Redis database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    db = settings.DATABASES["default"]
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    auth = db.get("USER") or "root"
    if db.get("PASSWORD"):
        auth += ":" + db["PASSWORD"]
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def process_env(checkpoint_dir: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "nasweb.settings_test",
        "DATABASE_URL": database_url(),  # the test database pytest-django made
        "TEST_REDIS_URL": settings.REDIS_URL,
        "CHECKPOINT_DIR": str(checkpoint_dir),
        "DATA_DIR": str(settings.DATA_DIR),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    })
    return env


class ServiceProcess:
    """A child process with its output in a log file, stopped on exit."""

    def __init__(self, args, env, log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited early:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"no {text!r} after {timeout}s:\n{self.output()[-3000:]}")

    def wait_for_port(self, port: int, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited early:\n{self.output()[-3000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"port {port} not open after {timeout}s:\n{self.output()[-3000:]}")

    def stop(self, sig=15, timeout: float = 20):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def start_celery_worker(tmp_path, checkpoint_dir, clean_test_broker):
    """Start real Celery worker processes against the test database and broker."""
    started: list[ServiceProcess] = []

    def start(queues: str, name: str, pool: str = "solo", concurrency: int = 1) -> ServiceProcess:
        args = [sys.executable, "-m", "celery", "-A", "nasweb", "worker", "-Q", queues, "-n", f"{name}@%h",
                f"--pool={pool}", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
                "--loglevel=INFO"]
        proc = ServiceProcess(args, process_env(checkpoint_dir), tmp_path / f"{name}.log")
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
