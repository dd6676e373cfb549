"""The command-line client (issue 18, item 13): installable with a `nasweb` command that works
anywhere, a client-only install with neither torch nor Django, "running" counted right, and
plain appended lines when the output is not a terminal."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nasweb import cli
from searches import services

ROOT = Path(__file__).resolve().parents[1]


def test_ux_piped_output_appends_one_plain_line_per_change_then_the_leaderboard_once():
    out = io.StringIO()
    screen = cli.Screen(out)
    search = {"id": 1, "name": "s", "max_candidates": 6, "state": "running", "counts": {"queued": 6}}
    candidates = {}
    screen.show(search, [])
    for i in range(6):
        search = cli.apply_candidate(search, candidates, {"id": i, "index": i, "state": "running"})
        screen.show(search, list(candidates.values()))
        screen.show(search, list(candidates.values()))  # nothing changed: nothing printed
        search = cli.apply_candidate(search, candidates, {"id": i, "index": i, "state": "finished",
                                                          "best_val_accuracy": 0.5 + i / 100})
        screen.show(search, list(candidates.values()))
    screen.show(dict(search, state="finished"), list(candidates.values()), force=True)
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()
    progress = [line for line in lines if "candidates ·" in line]
    assert len(progress) == 1 + 12 + 1  # the first, one per change, the final block's
    assert "1/6 candidates · 1 running" in progress[3] and "best 0.5000 (#0)" in progress[3]
    assert sum(line.startswith("Search 1:") for line in lines) == 1  # the whole screen once, at the end


def test_ux_a_candidate_that_starts_after_the_snapshot_counts_as_running():
    search, candidates = {"counts": {"queued": 2, "running": 0}, "max_candidates": 2, "state": "running"}, {}
    search = cli.apply_message(search, candidates, {"type": "snapshot", "search": search, "candidates": []})
    search = cli.apply_message(search, candidates, {"type": "candidate", "candidate": {"id": 7, "state": "running"}})
    assert "0/2 candidates · 1 running" in cli.progress_line(search)
    search = cli.apply_message(search, candidates, {"type": "candidate", "candidate": {"id": 7, "state": "finished"}})
    assert "1/2 candidates · 0 running" in cli.progress_line(search)
    assert search["counts"] == {"queued": 1, "running": 0, "finished": 1}


@pytest.mark.django_db(transaction=True)
def test_ux_a_client_only_install_runs_nasweb_anywhere_without_torch_or_django(live_server, alice, tmp_path):
    services.search_create(owner=alice, name="seen from afar", dataset="digits", space="chain", strategy="random",
                           max_candidates=2, epochs=1, parallel=1, seed=1)
    key = services.api_token_create(owner=alice, name="client")[1]
    wheels, venv = tmp_path / "wheels", Path(f"/tmp/ux-client-venv-{os.getpid()}")
    # The wheel is built from a copy of the checkout with the project's own build tools (no network)...
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", "var", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "node_modules", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(source)], check=True, cwd=tmp_path, timeout=300)
    try:
        # ...and installed in a throwaway virtualenv that has nothing else.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        wheel = next(wheels.glob("nasweb-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--no-index", "--no-deps", str(wheel)], check=True, timeout=300)
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "NASWEB_URL": live_server.url,
               "NASWEB_TOKEN": key}
        done = subprocess.run(["nasweb", "list"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "seen from afar" in done.stdout and "0/2" in done.stdout
        for module in ("django", "torch", "celery"):
            probe = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True,
                                   cwd=tmp_path, env=env, timeout=60)
            assert probe.returncode != 0, f"{module} is importable in the client-only venv"
    finally:
        subprocess.run(["rm", "-rf", str(venv)], check=False)
