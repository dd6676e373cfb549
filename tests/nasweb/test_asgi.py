"""The ASGI application as Daphne loads it."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_loading_the_asgi_app_imports_every_view_and_freezes_start_up_objects():
    # A fresh interpreter, as Daphne starts: full garbage collections over the start-up objects
    # (Django, torch) stalled every open websocket for ~65 ms before they were frozen.
    probe = ("import gc, sys; import nasweb.asgi; "
             "print(gc.get_freeze_count(), 'searches.views' in sys.modules, 'searches.api.views' in sys.modules)")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="nasweb.settings")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    frozen, views_loaded, api_loaded = int(out[0]), out[1] == "True", out[2] == "True"
    assert frozen > 100_000
    assert views_loaded and api_loaded
