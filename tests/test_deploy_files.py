"""The deployment files agree with the code they start.

docker-compose.yml, .env.example, the Makefile, scripts/ and .ci/run name
modules, queues and environment variables; these tests check each name
against nasweb/settings.py and the importable code, without a database.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from django.conf import settings
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# Services running this project's image; postgres and redis are configured by their images.
APP_SERVICES = {name: svc for name, svc in SERVICES.items() if "build" in svc}

ENV_READ = re.compile(r"""(?:environ\.get|getenv|environ\[|env_\w+)\(?\s*["']([A-Z][A-Z0-9_]*)["']""")
SETTINGS_VARS = set(ENV_READ.findall((ROOT / "nasweb" / "settings.py").read_text()))
# Entries look like `#NAME=default` (commented out) or `NAME=value`.
ENV_EXAMPLE_VARS = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))


def words(command) -> list[str]:
    """A compose command as shell words, looking inside `sh -c "..."`."""
    if isinstance(command, str):
        return shlex.split(command)
    out = []
    for part in command or []:
        out.extend(shlex.split(part) if " " in part else [part])
    return out


def program_args(command, program: str) -> list[str] | None:
    """The arguments after `program` in a command, up to the next `&&`/`;`."""
    w = words(command)
    for i, word in enumerate(w):
        if os.path.basename(word) == program:
            args = []
            for arg in w[i + 1:]:
                if arg in {"&&", "||", ";"}:
                    break
                args.append(arg)
            return args
    return None


def option(args: list[str], short: str, long: str) -> str | None:
    for i, arg in enumerate(args):
        if arg in (short, long):
            return args[i + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
        if arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            return arg[len(short):]
    return None


def celery_commands() -> dict[str, list[str]]:
    found = {}
    for name, svc in SERVICES.items():
        args = program_args(svc.get("command"), "celery")
        if args is not None:
            found[name] = args
    return found


def celery_workers() -> dict[str, list[str]]:
    return {name: args for name, args in celery_commands().items() if "worker" in args}


def celery_beats() -> list[str]:
    return [name for name, args in celery_commands().items()
            if "beat" in args or ("worker" in args and ("-B" in args or "--beat" in args))]


def routed_queues() -> set[str]:
    return {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}


def environment_names(svc) -> set[str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return {item.split("=", 1)[0] for item in env}
    return set(env)


def test_the_expected_services_exist():
    assert {"postgres", "redis", "web", "worker-control", "worker-gpu"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert {"web", "worker-control", "worker-gpu"} <= set(APP_SERVICES)


def test_every_celery_command_names_an_app_that_imports():
    assert {"worker-control", "worker-gpu"} <= set(celery_workers())
    for name, args in celery_commands().items():
        module = option(args, "-A", "--app")
        assert module, f"{name}: celery without -A"
        importlib.import_module(module.split(":")[0])
        assert isinstance(find_app(module), Celery), f"{name}: -A {module} is not a Celery app"


def test_every_worker_consumes_routed_queues_and_every_queue_has_a_worker():
    consumed = set()
    for name, args in celery_workers().items():
        queues = option(args, "-Q", "--queues")
        assert queues, f"{name}: a worker without -Q would wait on the default queue, which nothing uses"
        names = set(queues.split(","))
        assert names <= routed_queues(), f"{name}: {names - routed_queues()} is not in CELERY_TASK_ROUTES"
        consumed |= names
    assert routed_queues() <= consumed, f"no worker consumes {routed_queues() - consumed}"


def test_routed_and_scheduled_tasks_exist():
    app = find_app("nasweb")
    importlib.import_module("workers.tasks")
    scheduled = {entry["task"] for entry in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).values()}
    missing = (set(settings.CELERY_TASK_ROUTES) | scheduled) - set(app.tasks)
    assert not missing, f"settings name tasks nobody defines: {missing}"


def test_one_beat_runs_the_periodic_tasks_on_consumed_queues():
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", {})
    beats = celery_beats()
    if not schedule:
        assert not beats, "a beat without CELERY_BEAT_SCHEDULE does nothing"
        return
    assert len(beats) == 1, f"CELERY_BEAT_SCHEDULE needs exactly one beat, found {beats}"
    consumed = {q for args in celery_workers().values() for q in option(args, "-Q", "--queues").split(",")}
    for name, entry in schedule.items():
        queue = entry.get("options", {}).get("queue") or settings.CELERY_TASK_ROUTES.get(entry["task"], {}).get("queue")
        assert queue in consumed, f"beat entry {name} goes to queue {queue!r}, which no worker consumes"


def test_the_gpu_worker_trains_one_candidate_at_a_time_on_a_reserved_gpu():
    args = celery_workers()["worker-gpu"]
    assert option(args, "-Q", "--queues") == "gpu"
    assert "--pool=solo" in args and "--concurrency=1" in args
    devices = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) for d in devices)


def test_command_wrappers_exist():
    for name, svc in APP_SERVICES.items():
        w = words(svc.get("command"))
        for word in w:
            if word.startswith("scripts/"):
                assert (ROOT / word).is_file(), f"{name} runs {word}, which does not exist"


def test_the_web_command_migrates_then_serves_the_asgi_application():
    command = SERVICES["web"]["command"]
    args = program_args(command, "gunicorn")
    assert args is not None, "web does not run gunicorn (several ASGI processes)"
    conf = option(args, "-c", "--config")
    assert conf and (ROOT / conf).is_file(), f"gunicorn's config {conf} does not exist"
    targets = [a for a in args if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", a)]
    assert len(targets) == 1, f"no module:attr in {args}"
    module, attr = targets[0].split(":")
    app = getattr(importlib.import_module(module), attr)
    assert app is import_string(settings.ASGI_APPLICATION)
    w = words(command)
    assert "migrate" in w and w.index("migrate") < w.index("gunicorn"), "web should migrate before serving"


def test_compose_variables_are_read_by_settings_and_listed_in_env_example():
    named = set()
    for svc in APP_SERVICES.values():
        named |= environment_names(svc)
    # ${NAME} / ${NAME:-default} substitutions anywhere in the file.
    named |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    assert named, "no environment in docker-compose.yml"
    assert named <= SETTINGS_VARS, f"nasweb/settings.py does not read {named - SETTINGS_VARS}"
    assert named <= ENV_EXAMPLE_VARS, f".env.example does not list {named - ENV_EXAMPLE_VARS}"


def test_env_example_lists_exactly_what_settings_reads():
    assert SETTINGS_VARS, "found no environment reads in nasweb/settings.py"
    assert ENV_EXAMPLE_VARS <= SETTINGS_VARS, f"settings does not read {ENV_EXAMPLE_VARS - SETTINGS_VARS}"
    assert SETTINGS_VARS <= ENV_EXAMPLE_VARS, f".env.example does not list {SETTINGS_VARS - ENV_EXAMPLE_VARS}"


def test_web_and_workers_share_the_checkpoint_volume():
    volumes = set()
    for name, svc in APP_SERVICES.items():
        target = svc["environment"]["CHECKPOINT_DIR"]
        sources = [v.split(":")[0] for v in svc.get("volumes", []) if v.split(":")[1] == target]
        assert sources, f"{name}: nothing mounted at CHECKPOINT_DIR={target}"
        volumes |= set(sources)
    assert len(volumes) == 1 and volumes <= set(COMPOSE["volumes"])


def test_ci_runs_make_test_whose_set_up_installs_chromium():
    path = ROOT / ".ci" / "run"
    text = path.read_text()
    assert path.stat().st_mode & stat.S_IXUSR, ".ci/run is not executable"
    assert "set -euo pipefail" in text
    assert re.search(r"^\s*make test\s*$", text, re.M)
    # make test goes through the one set-up script, which installs the browser.
    assert re.search(r"^test:.*\n\tbash scripts/services.sh --browser -- \$\(PY\) -m pytest", (ROOT / "Makefile").read_text(), re.M)
    services = (ROOT / "scripts" / "services.sh").read_text()
    assert re.search(r"apt-get install -y\b.*\bchromium chromium-driver\b", services)
    for script in (text, services):
        assert not re.search(r"playwright\s+install", script, re.I)


def test_readme_documents_every_variable_and_dependency():
    readme = (ROOT / "README.md").read_text()
    for name in sorted(ENV_EXAMPLE_VARS):
        assert f"`{name}`" in readme, f"README.md's configuration table lacks {name}"
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert f"`{line}`" in readme, f"README.md's dependency list lacks {line}"


def test_makefile_targets():
    text = (ROOT / "Makefile").read_text()
    for target in ("venv", "demo", "test", "bench"):
        assert re.search(rf"^{target}:", text, re.M), f"Makefile has no {target} target"
    assert "$(PY) -m pytest" in text


@pytest.mark.parametrize("script", sorted(
    [str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.sh")] + [".ci/run"]))
def test_shell_scripts_parse(script):
    result = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_gpu_slot_gives_each_worker_its_own_gpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_slot", ROOT / "scripts" / "gpu_slot.py")
    gpu_slot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_slot)
    first = gpu_slot.claim(["0", "1"], str(tmp_path))
    second = gpu_slot.claim(["0", "1"], str(tmp_path))
    try:
        assert first[0] == "0" and second[0] == "1"
        assert gpu_slot.claim(["0", "1"], str(tmp_path)) is None
    finally:
        os.close(first[1])
    again = gpu_slot.claim(["0", "1"], str(tmp_path))  # a stopped worker frees its GPU
    assert again[0] == "0"
    os.close(again[1])
    os.close(second[1])
