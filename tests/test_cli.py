"""``python -m nasweb.cli`` against a real server: create from YAML, follow live through
the websocket (Daphne) or by polling, download the best bundle, export."""
from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from pathlib import Path

import pytest

from nasweb import cli
from searches import services
from searches.models import Bundle, Search
from workers import bundles, checkpoints, datasets

pytestmark = pytest.mark.django_db(transaction=True)
METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)


@pytest.fixture
def key(alice):
    return services.api_token_create(owner=alice, name="cli")[1]


def run(url, key, *args):
    out = io.StringIO()
    code = cli.main(["--url", url, "--token", key, *args], out=out)
    return code, out.getvalue()


def one_candidate_search(owner, root=None, *, finish=False):
    search = services.search_create(owner=owner, name="followed", dataset="digits", space="chain",
                                    strategy="random", max_candidates=1, epochs=2, parallel=1, seed=8)
    (cid,) = services.search_advance(search.id)
    candidate = services.candidate_claim(cid, worker="w", device="cpu")
    if finish:
        finish_candidate(candidate, root)
    return search, candidate


def finish_candidate(candidate, root):
    import torch

    from searches.nas import get_space

    services.epoch_record(candidate, epoch=1, **dict(METRICS, val_accuracy=0.61))
    services.epoch_record(candidate, epoch=2, **dict(METRICS, val_accuracy=0.75))
    search = candidate.search
    data = datasets.load("digits", search.seed, "/nonexistent")
    torch.manual_seed(0)
    model = get_space("chain").build(candidate.arch, data.input_shape, data.num_classes)
    payload = checkpoints.build_payload(
        model=model, space="chain", space_settings={}, arch=candidate.arch, input_shape=data.input_shape,
        num_classes=10, class_names=data.class_names, mean=data.mean, std=data.std, metrics={})
    path = checkpoints.checkpoint_path(root, search.id, candidate.index)
    size, digest = checkpoints.write_atomically(path, payload)
    services.candidate_finish(candidate, test_accuracy=0.7, test_macro_recall=0.7, test_macro_f1=0.7,
                              confusion_matrix=[[1]], checkpoint_path=str(path), checkpoint_size=size,
                              checkpoint_sha256=digest)
    services.search_advance(search.id)  # nothing left to train: the search finishes


def test_create_from_yaml_then_list(live_server, alice, key, tmp_path):
    spec = tmp_path / "search.yaml"
    spec.write_text("name: from yaml\ndataset: digits\nspace: chain\nstrategy: random\n"
                    "max_candidates: 4\nepochs: 2\nparallel: 2\nseed: 9\n")
    code, out = run(live_server.url, key, "create", str(spec))
    search = Search.objects.get()
    assert code == 0 and f"Created search {search.id}: from yaml" in out
    assert (search.owner, search.max_candidates, search.epochs, search.seed) == (alice, 4, 2, 9)
    code, out = run(live_server.url, key, "list")
    assert code == 0 and "from yaml" in out and "0/4" in out


def test_create_refusals_show_the_forms_messages(live_server, key, tmp_path, capsys):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"name": "bad", "epochs": 0, "dataset": "nope"}))
    code, _ = run(live_server.url, key, "create", str(spec))
    err = capsys.readouterr().err
    assert code == 2 and "epochs: Ensure this value is greater than or equal to 1." in err
    assert "dataset: Select a valid choice." in err and not Search.objects.exists()
    assert run(live_server.url, "nas_wrong", "list")[0] == 1
    assert "Invalid or revoked token" in capsys.readouterr().err


def test_follow_by_polling_prints_the_leaderboard_until_the_end(live_server, alice, key, checkpoint_dir):
    search, candidate = one_candidate_search(alice, checkpoint_dir, finish=True)
    code, out = run(live_server.url, key, "follow", str(search.id), "--poll")
    assert code == 0 and f"Search {search.id} finished." in out
    assert "1/1 candidates" in out and "0.7500" in out and candidate.genotype[:30] in out


def test_follow_through_the_websocket_sees_the_search_live(alice, key, checkpoint_dir, tmp_path, capsys):
    from processes import ServiceProcess, free_port, process_env

    port = free_port()
    server = ServiceProcess([__import__("sys").executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "nasweb.asgi:application"], process_env(checkpoint_dir), tmp_path / "daphne.log")
    try:
        server.wait_for_port(port)
        search, candidate = one_candidate_search(alice)
        out, result = io.StringIO(), []
        follower = threading.Thread(target=lambda: result.append(cli.main(
            ["--url", f"http://127.0.0.1:{port}", "--token", key, "follow", str(search.id), "--timeout", "60"],
            out=out)))
        follower.start()
        deadline = time.monotonic() + 30
        while "0/1 candidates" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "0/1 candidates · 1 running" in out.getvalue()
        finish_candidate(candidate, checkpoint_dir)  # epochs, the checkpoint, the end: all pushed live
        follower.join(60)
        assert result == [0], out.getvalue()
    finally:
        server.stop()
    text = out.getvalue()
    assert "1/1 candidates · 0 running · finished" in text and "0.7500" in text
    assert "asking the API" not in capsys.readouterr().err  # the websocket did it, not polling


def test_download_waits_for_the_build_then_saves_the_bundle(live_server, alice, key, checkpoint_dir, tmp_path):
    search, candidate = one_candidate_search(alice, checkpoint_dir, finish=True)

    def build_elsewhere():  # what a worker does, once the CLI has asked for the bundle
        from django.db import connection

        try:
            deadline = time.monotonic() + 30
            while not Bundle.objects.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            bundle = Bundle.objects.get()
            bundles.run_bundle(bundle.id, bundle.attempt, worker="elsewhere")
        finally:
            connection.close()

    builder = threading.Thread(target=build_elsewhere)
    builder.start()
    target = tmp_path / "best.zip"
    code, out = run(live_server.url, key, "download", str(search.id), "-o", str(target), "--timeout", "120")
    builder.join(60)
    bundle = Bundle.objects.get()
    assert code == 0, out
    assert "building [" in out and f"Saved {target}" in out and "ONNX: checked with onnxruntime" in out
    assert checkpoints.sha256_of(target) == bundle.sha256
    assert any(n.endswith("/model.py") for n in zipfile.ZipFile(target).namelist())

    code, out = run(live_server.url, key, "download", str(search.id), "-o", str(tmp_path))  # cached now
    assert code == 0 and "building" not in out
    assert (tmp_path / f"search{search.id}-candidate{candidate.index}-bundle.zip").read_bytes() == target.read_bytes()


def test_export_and_controls(live_server, alice, key, checkpoint_dir, tmp_path):
    search, _ = one_candidate_search(alice)
    code, out = run(live_server.url, key, "pause", str(search.id))
    assert code == 0 and "is paused" in out
    code, out = run(live_server.url, key, "export", str(search.id), "candidates", "csv", "-o", str(tmp_path))
    saved = Path(tmp_path / f"search-{search.id}-candidates.csv")
    assert code == 0 and saved.read_text().startswith("id,index,state")
    assert run(live_server.url, key, "resume", str(search.id))[0] == 0
    assert run(live_server.url, key, "cancel", str(search.id))[0] == 0
    assert run(live_server.url, key, "cancel", str(search.id))[0] == 1  # already ended: 409
