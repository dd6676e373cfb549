"""Model bundles: generated model.py for every search space, a bundle built by a real
Celery worker and used where only torch and the standard library can be imported,
the cache, and failures that leave nothing half-written."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from searches import services
from searches.models import Bundle
from searches.nas import SPACES, get_space
from workers import bundle_source, bundles, checkpoints, datasets

ROOT = Path(__file__).resolve().parents[2]
METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)

# Runs scripts with the project (and Django & co.) impossible to import; prints one JSON
# line per script. sys.path holds the scripts' folder, the standard library and the
# virtualenv's site-packages (for torch) and nothing of the repository.
ISOLATED = r'''
import importlib.abc, importlib.util, io, json, runpy, sys, contextlib
assert importlib.util.find_spec("searches") is None and importlib.util.find_spec("workers") is None, sys.path
BLOCKED = {"searches", "workers", "nasweb", "django", "celery", "channels", "rest_framework", "tests"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} must not be needed")
sys.meta_path.insert(0, Block())
for argv in json.loads(sys.argv[1]):
    sys.argv = argv
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(argv[0], run_name="__main__")
    print(json.dumps({"script": argv[0], "stdout": out.getvalue()}))
'''


def run_isolated(folder: Path, runs: list[list[str]]) -> list[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-E", "-s", "-c", ISOLATED, json.dumps(runs)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(ROOT) not in proc.stdout
    return [json.loads(line)["stdout"] for line in proc.stdout.splitlines() if line.startswith("{")]


def sample_archs(space, n=2, seed=0):
    rng = random.Random(seed)
    if space.name == "text":  # one architecture per encoder: they are built very differently
        archs = {}
        while len(archs) < 3:
            arch = space.sample(rng)
            archs.setdefault(arch["encoder"], arch)
        return list(archs.values())
    return [space.sample(rng) for _ in range(n)]


def test_model_py_rebuilds_every_space_with_torch_alone(tmp_path):
    """Every space of the registry: the generated source, run where the project cannot be
    imported, gives the project's logits with the same weights."""
    cases = []
    for name in SPACES:
        space = get_space(name)
        shape = (12,) if space.modality == "text" else (1, 8, 8)
        for i, arch in enumerate(sample_archs(space)):
            torch.manual_seed(i)
            model = space.build(arch, shape, 5).eval()
            x = torch.randint(0, 300, (3, *shape)) if space.modality == "text" else torch.randn(3, *shape)
            if space.modality == "text":
                x[0, 4:] = 0  # padding
            with torch.no_grad():
                want = model(x)
            stem = f"{name}_{i}"
            source = bundle_source.model_source(model, docstring=f"{name} {space.genotype(arch)}")
            (tmp_path / f"model_{stem}.py").write_text(source)
            torch.save({"state_dict": model.state_dict(), "x": x, "logits": want}, tmp_path / f"{stem}.pt")
            cases.append(stem)
    assert {c.rsplit("_", 1)[0] for c in cases} == set(SPACES)
    (tmp_path / "check.py").write_text(
        "import importlib, json, sys, torch\n"
        "out = {}\n"
        "for stem in sys.argv[1:]:\n"
        "    data = torch.load(stem + '.pt', weights_only=True)\n"
        "    model = importlib.import_module('model_' + stem).build_model()\n"
        "    model.load_state_dict(data['state_dict'])\n"
        "    with torch.no_grad():\n"
        "        out[stem] = (model.eval()(data['x']) - data['logits']).abs().max().item()\n"
        "print(json.dumps(out))\n")
    (output,) = run_isolated(tmp_path, [["check.py", *cases]])
    diffs = json.loads(output)
    assert set(diffs) == set(cases) and max(diffs.values()) <= 1e-5, diffs


class Opaque(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fn = lambda x: x * 2  # a lambda held as an attribute: no source to copy

    def forward(self, x):
        return self.fn(x)


def test_what_cannot_be_written_as_source_is_refused_with_the_reason():
    # model.py rebuilds what a search space built; any other network is refused, saying why.
    with pytest.raises(bundle_source.SourceError, match="Sequential was not built by a search space"):
        bundle_source.model_source(torch.nn.Sequential(Opaque()), docstring="x")


def test_the_shipped_space_modules_import_only_torch_and_the_standard_library():
    assert set(bundle_source.space_sources()) == set(bundle_source.SPACE_MODULES)
    with pytest.raises(bundle_source.SourceError, match="imports 'django.conf'"):
        bundle_source.check_imports("cell", "from .space import SearchSpace\nfrom django.conf import settings\n")
    with pytest.raises(bundle_source.SourceError, match="imports '..registry'"):
        bundle_source.check_imports("cell", "from ..registry import SPACES\n")


# --- whole bundles ---------------------------------------------------------------------

def finished_candidate(owner, root, *, seed=3):
    search = services.search_create(owner=owner, name="bundled", dataset="digits", space="chain",
                                    strategy="random", max_candidates=2, epochs=1, parallel=1, seed=seed)
    (cid,) = services.search_advance(search.id)
    candidate = services.candidate_claim(cid, worker="w", device="cpu")
    services.epoch_record(candidate, epoch=1, **METRICS)
    write_checkpoint(candidate, root, torch_seed=0)
    candidate.refresh_from_db()
    return candidate


def write_checkpoint(candidate, root, *, torch_seed: int, finish=True):
    search = candidate.search
    data = datasets.load(search.dataset, search.seed, "/nonexistent")
    torch.manual_seed(torch_seed)
    model = get_space(search.space).build(candidate.arch, data.input_shape, data.num_classes)
    payload = checkpoints.build_payload(
        model=model, space=search.space, space_settings=search.space_settings, arch=candidate.arch,
        input_shape=data.input_shape, num_classes=data.num_classes, class_names=data.class_names,
        mean=data.mean, std=data.std, metrics={"test_accuracy": 0.1})
    path = checkpoints.checkpoint_path(root, search.id, candidate.index)
    size, digest = checkpoints.write_atomically(path, payload)
    if finish:
        services.candidate_finish(candidate, test_accuracy=0.1, test_macro_recall=0.1, test_macro_f1=0.1,
                                  confusion_matrix=[[1]], checkpoint_path=str(path), checkpoint_size=size,
                                  checkpoint_sha256=digest)
    return path, digest


def project_logits(checkpoint_path: Path, raw: torch.Tensor):
    ckpt = checkpoints.load(checkpoint_path)
    with torch.no_grad():
        return bundles.project_model(ckpt)(bundles.normalise(ckpt, raw)), ckpt


def wait_for(bundle_id, states=("ready", "failed"), timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bundle = Bundle.objects.get(pk=bundle_id)
        if bundle.state in states:
            return bundle
        time.sleep(0.3)
    raise TimeoutError(f"bundle {bundle_id} still {bundle.state}: {bundle.message}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_builds_a_bundle_that_runs_with_torch_alone(alice, start_celery_worker, checkpoint_dir, tmp_path):
    worker = start_celery_worker("control", "control", pool="threads", concurrency=2)
    candidate = finished_candidate(alice, checkpoint_dir)
    bundle = services.bundle_request(candidate)
    assert bundle.state == "queued"

    bundle = wait_for(bundle.id)
    assert bundle.state == "ready", bundle.error
    assert "build_bundle" in worker.output() and bundle.worker.startswith("control@")
    zip_path = Path(bundle.path)
    assert (bundle.progress, bundle.size, bundle.sha256) == (100, zip_path.stat().st_size,
                                                             checkpoints.sha256_of(zip_path))
    assert bundle.checkpoint_sha256 == candidate.checkpoint_sha256 and bundle.is_current
    assert bundle.standalone_ok and bundle.onnx_ok and bundle.onnx_max_diff <= 1e-4
    assert bundle.int8_size > 0 and bundle.float_size > 0

    # The float accuracy is the project model's on the test split.
    data = datasets.load("digits", candidate.search.seed, "/nonexistent")
    ckpt = checkpoints.load(candidate.checkpoint_path)
    with torch.no_grad():
        project_acc = (bundles.project_model(ckpt)(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert bundle.float_accuracy == pytest.approx(project_acc, abs=1e-6)
    assert 0 <= bundle.int8_accuracy <= 1

    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(fresh)
    (folder,) = fresh.iterdir()
    names = {p.name for p in folder.iterdir()}
    assert names == {"model.pt", "model.safetensors", "model.py", "predict.py", "example_input.pt", "README.md",
                     "model.torchscript.pt", "model.int8.torchscript.pt", "model.onnx", "metadata.json"}

    raw = data.x_test[:5] * torch.tensor(data.std).reshape(1, -1, 1, 1) + torch.tensor(data.mean).reshape(1, -1, 1, 1)
    torch.save(raw, folder / "mine.pt")
    (folder / "scripted.py").write_text(
        "import json, torch\n"
        "x = torch.load('example_input.pt', weights_only=True)['model_inputs']\n"
        "f = torch.jit.load('model.torchscript.pt')(x)\n"
        "q = torch.jit.load('model.int8.torchscript.pt')(x)\n"
        "info = torch.load('model.pt', weights_only=True)\n"
        "print(json.dumps({'float': f.tolist(), 'int8': q.tolist(), 'genotype': info['genotype']}))\n")
    predicted, checked, scripted = run_isolated(folder, [["predict.py", "mine.pt", "--json"],
                                                         ["model.py", "--json"], ["scripted.py"]])
    want, ckpt = project_logits(Path(candidate.checkpoint_path), raw)
    assert (torch.tensor(json.loads(predicted)["logits"]) - want).abs().max().item() <= 1e-5
    assert json.loads(predicted)["predictions"][0][0]["class"] in ckpt["class_names"]
    example = torch.load(folder / "example_input.pt", weights_only=True)
    want_example, _ = project_logits(Path(candidate.checkpoint_path), example["inputs"])
    assert (torch.tensor(json.loads(checked)["logits"]) - want_example).abs().max().item() <= 1e-5
    scripted = json.loads(scripted)
    assert (torch.tensor(scripted["float"]) - want_example).abs().max().item() <= 1e-5
    assert torch.tensor(scripted["int8"]).shape == want_example.shape and scripted["genotype"] == candidate.genotype

    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {"input": example["model_inputs"].numpy()})
    assert (torch.from_numpy(onnx_logits) - want_example).abs().max().item() <= 1e-4

    from safetensors.torch import load_file

    weights = torch.load(folder / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights[k], v) for k, v in ckpt["state_dict"].items())
    assert all(torch.equal(load_file(str(folder / "model.safetensors"))[k], v) for k, v in weights.items())
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["architecture"] == candidate.arch and meta["genotype"] == candidate.genotype
    assert meta["class_names"] == ckpt["class_names"] and meta["normalisation"] == ckpt["normalisation"]
    assert meta["search"]["id"] == candidate.search_id and meta["software"]["torch"] == torch.__version__
    assert meta["training"]["epochs"] == 1 and meta["onnx"]["ok"] is True
    assert meta["files"]["model.onnx"]["sha256"] == checkpoints.sha256_of(folder / "model.onnx")
    assert "python predict.py" in (folder / "README.md").read_text()


@pytest.mark.django_db
def test_the_bundle_is_cached_until_the_candidate_changes(alice, checkpoint_dir, django_capture_on_commit_callbacks):
    candidate = finished_candidate(alice, checkpoint_dir)
    first = services.bundle_request(candidate)
    assert services.bundle_request(candidate).attempt == first.attempt == 1  # no second build while queued
    assert bundles.run_bundle(first.id, 1, worker="here") == "ready"
    ready = Bundle.objects.get()
    assert services.bundle_request(candidate).attempt == 1  # cached: no new build
    old_zip = Path(ready.path)

    # The candidate changes (trained again after its worker was lost): its checkpoint differs.
    _, digest = write_checkpoint(candidate, checkpoint_dir, torch_seed=1, finish=False)
    type(candidate).objects.filter(pk=candidate.pk).update(checkpoint_sha256=digest)
    candidate.refresh_from_db()
    assert not Bundle.objects.get().is_current
    again = services.bundle_request(candidate)
    assert (again.attempt, again.state, again.checkpoint_sha256, again.sha256) == (2, "queued", digest, "")
    with django_capture_on_commit_callbacks(execute=True):
        assert bundles.run_bundle(again.id, 2, worker="here") == "ready"
    rebuilt = Bundle.objects.get()
    assert rebuilt.is_current and Path(rebuilt.path).is_file() and not old_zip.exists()
    assert bundles.run_bundle(again.id, 1, worker="late") == "skipped"  # a superseded attempt does nothing


@pytest.mark.django_db
def test_a_failed_build_says_why_and_leaves_nothing_behind(alice, checkpoint_dir):
    candidate = finished_candidate(alice, checkpoint_dir)
    bundle = services.bundle_request(candidate)
    # Weights that do not fit the architecture: the build fails half-way, after files were written.
    ckpt = checkpoints.load(candidate.checkpoint_path)
    ckpt["state_dict"] = {k: torch.zeros(1) for k in ckpt["state_dict"]}
    checkpoints.write_atomically(Path(candidate.checkpoint_path), ckpt)
    type(candidate).objects.filter(pk=candidate.pk).update(
        checkpoint_sha256=checkpoints.sha256_of(Path(candidate.checkpoint_path)))
    bundle = services.bundle_request(candidate)
    assert bundles.run_bundle(bundle.id, bundle.attempt, worker="here") == "failed"
    failed = Bundle.objects.get()
    assert failed.state == "failed" and "size mismatch" in failed.error
    folder = Path(candidate.checkpoint_path).parent
    assert sorted(p.name for p in folder.iterdir()) == [Path(candidate.checkpoint_path).name]

    Path(candidate.checkpoint_path).unlink()
    bundle = services.bundle_request(candidate)
    assert bundle.attempt == failed.attempt + 1
    assert bundles.run_bundle(bundle.id, bundle.attempt, worker="here") == "failed"
    assert "checkpoint file candidate-0.pt is missing" in Bundle.objects.get().error
    assert list(folder.iterdir()) == []


def test_an_onnx_file_that_does_not_match_pytorch_is_left_out_with_the_reason(tmp_path):
    data = datasets.load("digits", 1, "/nonexistent")
    space = get_space("chain")
    arch = space.sample(random.Random(4))
    torch.manual_seed(0)
    model = space.build(arch, data.input_shape, data.num_classes)
    ckpt = {"format_version": 1, "state_dict": model.state_dict(), "space": "chain", "space_settings": {},
            "arch": arch, "input_shape": list(data.input_shape), "num_classes": 10, "class_names": data.class_names,
            "normalisation": {"mean": data.mean, "std": data.std}, "metrics": {}}
    steps = []
    result = bundles.make_bundle(ckpt, tmp_path / "b.zip", test=None, info={"genotype": space.genotype(arch)},
                                 progress=lambda pct, msg: steps.append(pct), onnx_tolerance=-1.0)
    assert not result.onnx_ok and "differ from PyTorch's by" in result.onnx_error
    assert result.float_accuracy is None and result.int8_size > 0
    assert steps == sorted(steps) and steps[-1] == 90
    names = bundles.zip_member_names(tmp_path / "b.zip")
    assert "b/model.onnx" not in names and "b/model.py" in names
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        readme = zf.read("b/README.md").decode()
        meta = json.loads(zf.read("b/metadata.json"))
    assert "ONNX: **not included**" in readme and meta["onnx"]["ok"] is False
    assert "random input" in meta["notes"][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip"]  # no temporary leftovers
