"""Postgres restarts while a worker trains: it waits, retries, and reports only what was saved."""
import subprocess
import sys
import time

import pytest
from processes import ROOT, PrivatePostgres

pytestmark = pytest.mark.worker

CREATE_SEARCH = """
import django; django.setup()
from django.contrib.auth.models import User
from searches import services
owner = User.objects.create_user("pg-restart", password="x" * 12)
search = services.search_create(owner=owner, name="restart", dataset="synthetic", space="chain",
                                strategy="random", max_candidates=3, epochs=12, parallel=1, seed=2)
print(search.id)
"""


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    yield server
    server.destroy()


def test_a_postgres_restart_between_epochs_loses_nothing(private_postgres, start_celery_worker, tmp_path):
    env = {"DATABASE_URL": private_postgres.url}
    full_env = dict(__import__("os").environ, DJANGO_SETTINGS_MODULE="nasweb.settings_test", **env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=full_env, check=True)
    start_celery_worker("control", "control", pool="threads", concurrency=2, env=env)
    gpu = start_celery_worker("gpu", "cpu0", env=env)
    search_id = int(subprocess.run([sys.executable, "-c", CREATE_SEARCH], cwd=ROOT, env=full_env, check=True,
                                   capture_output=True, text=True).stdout.split()[-1])

    def sql(query):
        return private_postgres.run_sql("nasweb", query)

    deadline = time.monotonic() + 120
    while not sql("SELECT count(*) FROM searches_epochmetric")[0][0]:
        assert time.monotonic() < deadline, "no epoch before the restart"
        time.sleep(0.2)
    private_postgres.stop()
    time.sleep(3)  # the worker finishes its epoch meanwhile and must wait to save it
    private_postgres.start()

    deadline = time.monotonic() + 240
    while sql(f"SELECT state FROM searches_search WHERE id = {search_id}")[0][0] not in ("finished", "failed"):
        assert time.monotonic() < deadline, "search did not end after the restart"
        time.sleep(0.5)

    candidates = sql(f"SELECT id, state, epochs_done, error FROM searches_candidate WHERE search_id = {search_id}")
    assert len(candidates) == 3
    for cid, state, epochs_done, error in candidates:
        epochs = [e for (e,) in sql(f"SELECT epoch FROM searches_epochmetric WHERE candidate_id = {cid} ORDER BY epoch")]
        if state == "finished":
            assert epochs == list(range(1, 13))  # success only for work that was saved, every epoch once
        else:
            assert state == "failed" and error, (state, error)
            assert epochs == list(range(1, len(epochs) + 1))
    seqs = [s for (s,) in sql(f"SELECT seq FROM searches_epochmetric WHERE search_id = {search_id}")]
    assert len(seqs) == len(set(seqs))
    assert sql(f"SELECT state FROM searches_search WHERE id = {search_id}")[0][0] == "finished"
    assert "database unreachable" in gpu.output()  # the outage really hit the worker
