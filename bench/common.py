"""What every benchmark shares: a throwaway Postgres database, Django set up
against it (Redis database 13, channel prefix ``nasweb-bench``), the machine's
description, tables printed as text and results written as small JSON.

A benchmark never touches the ``root`` or test databases: it creates its own
database, migrates it with ``manage.py migrate`` and drops it at the end.
``bench/run_all.py`` creates one for the whole run and hands it to each
benchmark in ``NASWEB_BENCH_DATABASE_URL``.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "root")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CHANNEL_PREFIX = os.environ.get("BENCH_CHANNEL_PREFIX", "nasweb-bench")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- databases --------------------------------------------------------------

def _admin_connection():
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    conn.autocommit = True
    return conn


def database_url(name: str) -> str:
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def create_database(prefix: str = "nasweb_bench") -> str:
    """Create an empty database with a unique name; returns its name."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name


def drop_database(name: str) -> None:
    if not name.startswith("nasweb_bench"):
        raise ValueError(f"refusing to drop {name!r}: not a bench database")
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", [name])
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def bench_env(db_url: str, checkpoint_dir: str | None = None, settings_module: str | None = None) -> dict:
    """The environment a bench process (and the servers it starts) runs Django with.

    ``settings_module`` (or BENCH_SETTINGS_MODULE) swaps the settings, to measure a change
    (another channel layer, say) before making it: e.g. a module on PYTHONPATH that does
    ``from nasweb.settings import *`` and overrides one thing."""
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": settings_module or os.environ.get("BENCH_SETTINGS_MODULE", "nasweb.settings"),
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "CHANNEL_PREFIX": channel_prefix(db_url),
        "LOG_LEVEL": env.get("LOG_LEVEL", "WARNING"),
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    })
    if checkpoint_dir:
        env["CHECKPOINT_DIR"] = checkpoint_dir
    return env


def channel_prefix(db_url: str) -> str:
    """The channel layer's key prefix for one bench run: its database's (unique) name in it.

    Every run's first search has id 1, so two runs at once (a long soak and a quick
    bench, or two people's) would otherwise share the group "search-1" and see each
    other's events as holes in the sequence."""
    prefix = f"{CHANNEL_PREFIX}-{db_url.rsplit('/', 1)[-1]}"
    _RUN_PREFIXES.add(prefix)
    return prefix


_RUN_PREFIXES: set[str] = set()


def migrate(db_url: str) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env=bench_env(db_url), check=True)


@contextlib.contextmanager
def bench_database():
    """A migrated database for this run: the one run_all made, or a new one dropped afterwards."""
    given = os.environ.get("NASWEB_BENCH_DATABASE_URL")
    if given:
        yield given
        return
    name = create_database()
    try:
        url = database_url(name)
        migrate(url)
        yield url
    finally:
        drop_database(name)


@contextlib.contextmanager
def throwaway_database(prefix: str = "nasweb_bench_optuna"):
    """An empty database (for Optuna's own tables), dropped afterwards."""
    name = create_database(prefix)
    try:
        yield database_url(name)
    finally:
        drop_database(name)


def setup_django(db_url: str, checkpoint_dir: str | None = None) -> None:
    """Point Django at the bench database and Redis 13, then set it up (once per process)."""
    os.environ.update({k: v for k, v in bench_env(db_url, checkpoint_dir).items()
                       if k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CHANNEL_PREFIX",
                                "LOG_LEVEL", "DEBUG", "CHECKPOINT_DIR")})
    import django

    django.setup()
    import logging

    logging.getLogger().setLevel(logging.WARNING)


def flush_bench_redis() -> None:
    """Drop what this run left in the bench's Redis database: its channel layer's keys (its
    own prefix) and the Celery messages nobody consumed. Never the whole database: another
    run may be using it at the same moment, and dropping its groups would lose its events."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = [k for prefix in _RUN_PREFIXES for k in r.scan_iter(match=f"{prefix}*", count=1000)]
    keys += [k for k in ("control", "gpu") if r.type(k) == b"list"]  # the Celery queues' lists
    for start in range(0, len(keys), 1000):
        r.delete(*keys[start:start + 1000])


def bench_user(username: str = "bench"):
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username=username)
    return user


def temp_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


# --- the machine ------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True), "load_avg_start": _load()}
    with contextlib.suppress(Exception):
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def busy_warning(cores: int | None = None) -> str | None:
    """A line to print when other processes were loading the machine during a measurement."""
    cores = cores or os.cpu_count() or 1
    load1 = os.getloadavg()[0]
    if load1 > cores * 1.5:
        return (f"warning: the 1-minute load average is {load1:.1f} on {cores} cores; "
                f"other processes competed for the CPU, so absolute numbers are low (ratios hold better)")
    return None


# --- numbers, tables and results --------------------------------------------

def percentile(values, q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{max(1, digits - 1)}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(title: str, columns: list[str], rows: list[list], notes: list[str] = ()) -> str:
    cells = [[fmt(v) for v in row] for row in rows]
    # Text lines up on the left, numbers on the right.
    text = [all(isinstance(r[i], str) or r[i] is None for r in rows) for i in range(len(columns))]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = "  ".join("-" * w for w in widths)
    out = [title, line, "  ".join(c.ljust(w) for c, w in zip(columns, widths)), line]
    for r in cells:
        out.append("  ".join(v.ljust(w) if text[i] else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    out.append(line)
    out += [f"  {n}" for n in notes]
    return "\n".join(out)


def write_results(name: str, payload: dict, path: str | None = None) -> Path:
    """Write ``bench/results/<name>.json`` (small: tables and summaries, no raw samples)."""
    target = Path(path) if path else RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload}
    payload.setdefault("machine", {})["load_avg_end"] = _load()
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    tmp.replace(target)
    return target


def shown(path: Path) -> str:
    """A results path as a person reads it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _json_default(value):
    if isinstance(value, float):
        return round(value, 6)
    return str(value)


def rounded(obj, digits: int = 6):
    """``obj`` with floats rounded, so results files stay small and readable."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def base_parser(description: str):
    """The arguments every benchmark takes; also makes SIGTERM run the cleanup (finally blocks:
    servers stopped, bench databases dropped), as run_all sends it to a benchmark over time."""
    import argparse
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="the short version (run_all --quick)")
    parser.add_argument("--json", default=None, help="where to write the results (default bench/results/<name>.json)")
    return parser
