"""Processes start on a bare machine (issue 14, item 6): Celery beat used to crash with
FileNotFoundError when ``<repo>/var`` did not exist, and ``make demo`` then stopped
everything. Each process makes the folders it writes to; beat's file is a setting."""
import sys
import time

import pytest
from processes import PrivateRedis, ServiceProcess, process_env


@pytest.mark.worker
def test_beat_starts_when_its_folders_do_not_exist(tmp_path, settings):
    redis_server = PrivateRedis(tmp_path)
    missing = tmp_path / "fresh" / "var"  # nothing under fresh/ exists yet
    env = process_env(missing / "checkpoints")
    env.update(TEST_REDIS_URL=redis_server.url, BEAT_SCHEDULE_FILE=str(missing / "beat" / "schedule"),
               STATIC_ROOT=str(tmp_path / "elsewhere" / "static"), DATA_DIR=str(missing / "data"))
    beat = ServiceProcess([sys.executable, "-m", "celery", "-A", "nasweb", "beat", "--loglevel=INFO"], env,
                          tmp_path / "beat.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((missing / "beat").glob("schedule*")):
            assert beat.proc.poll() is None, f"beat exited:\n{beat.output()[-3000:]}"
            time.sleep(0.2)
        assert list((missing / "beat").glob("schedule*")), f"no schedule file:\n{beat.output()[-3000:]}"
        beat.wait_for_output("Sending due task", timeout=30)  # the scheduler runs, not only starts
        assert beat.proc.poll() is None
        assert "FileNotFoundError" not in beat.output()
        assert (missing / "checkpoints").is_dir() and (missing / "data").is_dir()
    finally:
        beat.stop()
        redis_server.stop()
