"""Model bundles: the trained network of one candidate as a zip a person can use at once.

``make_bundle`` is plain torch: from a checkpoint it writes

    model.pt                    state dict + metadata, opens with torch.load(weights_only=True)
    model.safetensors           the same tensors
    model.py                    the architecture in torch-only source (see bundle_source)
    predict.py                  classify an input with nothing but torch
    example_input.pt            a few test inputs and the logits they must give
    model.torchscript.pt        torch.jit.load, no project code
    model.int8.torchscript.pt   int8: static (calibrated) for conv nets, else dynamic Linear/RNN
    model.onnx                  only when onnxruntime reproduces PyTorch within 1e-4
    metadata.json, README.md

into a temporary directory, zips it under a temporary name and renames it:
a failure leaves nothing half-written where a download could find it.
``run_bundle`` is the Celery task's body: it claims the bundle, loads the
checkpoint and the test split, and reports progress through the services.
"""
from __future__ import annotations

import json
import logging
import platform
import shutil
import socket
import tempfile
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import bundle_source, checkpoints
from .bundle_exports import (CALIBRATION_SAMPLES, ONNX_OPSET, ONNX_TOLERANCE, BundleError, _float_ops,  # noqa: F401
                             _jit_load, _save_script, _script, _short, export_onnx, quantise_for_bundle,
                             quantise_int8, quantise_static_int8)
from .bundle_files import _FALLBACK_MODEL, _MODEL_MAIN, PREDICT_PY, readme

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
EXAMPLES = 8  # inputs kept in example_input.pt
STANDALONE_TOLERANCE = 1e-5
EVAL_BATCH = 512


@dataclass
class TestSplit:
    """Normalised inputs and labels of the test split, on the CPU."""

    x: torch.Tensor
    y: torch.Tensor
    first_batch: int = 64  # the training recipe's batch size: the ONNX check uses that many
    calibration: torch.Tensor | None = None  # training inputs (normalised) for static int8 quantisation


@dataclass
class BundleResult:
    path: Path
    size: int
    sha256: str
    standalone_ok: bool
    standalone_error: str
    onnx_ok: bool
    onnx_error: str
    onnx_max_diff: float | None
    float_size: int
    float_accuracy: float | None
    int8_size: int | None
    int8_accuracy: float | None
    int8_error: str
    details: dict = field(default_factory=dict)


def _modality(ckpt: dict) -> str:
    return "text" if len(ckpt["input_shape"]) == 1 else "image"


def _norm_tensors(ckpt: dict):
    shape = [-1] + [1] * (len(ckpt["input_shape"]) - 1)
    mean = torch.tensor(ckpt["normalisation"]["mean"], dtype=torch.float32).reshape(shape)
    std = torch.tensor(ckpt["normalisation"]["std"], dtype=torch.float32).reshape(shape)
    return mean, std


def normalise(ckpt: dict, raw: torch.Tensor) -> torch.Tensor:
    """What predict.py does to raw pixels; the identity for token ids."""
    if _modality(ckpt) == "text":
        return raw.long()
    mean, std = _norm_tensors(ckpt)
    return (raw.float() - mean) / std


def project_model(ckpt: dict) -> nn.Module:
    """The candidate's network as the project builds it, with the checkpoint's weights, on the CPU."""
    from searches.nas import build_model

    model = build_model(ckpt["space"], ckpt["space_settings"], ckpt["arch"], ckpt["input_shape"],
                        ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def example_inputs(ckpt: dict, test: TestSplit | None, model: nn.Module) -> torch.Tensor:
    """A few raw inputs (pixels before normalisation, or token ids) for the bundle's examples."""
    if test is not None and len(test.x):
        x = test.x[:EXAMPLES].cpu()
        if _modality(ckpt) == "text":
            return x.long()
        mean, std = _norm_tensors(ckpt)
        return x.float() * std + mean
    gen = torch.Generator().manual_seed(0)
    if _modality(ckpt) == "text":
        vocab = int(getattr(model, "vocab_size", 1000))
        return torch.randint(2, max(3, vocab), (EXAMPLES, *ckpt["input_shape"]), generator=gen)
    return torch.rand((EXAMPLES, *ckpt["input_shape"]), generator=gen)


def example_texts(ids: torch.Tensor, tokenizer: dict) -> list[str]:
    """The example sentences as the model reads them: token ids back to text (lower-cased
    when the tokenizer lower-cases; words it does not know read ``<unk>``; padding dropped)."""
    vocab = tokenizer["vocab"]
    glue = "" if tokenizer.get("level") == "char" else " "
    return [glue.join(vocab[i] if 0 <= i < len(vocab) else "<unk>" for i in row.tolist() if i != 0)
            for row in ids.long()]


@torch.no_grad()
def _logits(model, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


@torch.no_grad()
def _accuracy(model, test: TestSplit) -> float:
    correct = 0
    for i in range(0, len(test.x), EVAL_BATCH):
        correct += (model(test.x[i:i + EVAL_BATCH]).argmax(dim=1) == test.y[i:i + EVAL_BATCH]).sum().item()
    return correct / max(1, len(test.x))


# --- model.py ---------------------------------------------------------------

def standalone_source(model: nn.Module, ckpt: dict, genotype: str, inputs: torch.Tensor,
                      expected: torch.Tensor) -> tuple[str, bool, str]:
    """(model.py text, standalone?, reason when not). Checked by running it here."""
    docstring = (f"The architecture of search candidate {genotype!s}, in plain torch.\n\n"
                 f"Generated by NASWeb from the {ckpt['space']} search space; nothing here imports\n"
                 f"the project. ``load()`` returns the network with the trained weights of model.pt.")
    try:
        source = bundle_source.model_source(model, docstring=docstring, main=_MODEL_MAIN)
        namespace: dict = {"__name__": "nasweb_bundle_model"}
        exec(compile(source, "model.py", "exec"), namespace)  # noqa: S102 - source generated just above
        rebuilt = namespace["build_model"]()
        rebuilt.load_state_dict(ckpt["state_dict"])
        rebuilt.eval()
        diff = (_logits(rebuilt, inputs) - expected).abs().max().item()
        if not diff <= STANDALONE_TOLERANCE:
            raise bundle_source.SourceError(f"the generated network's logits differ by {diff:.3g}")
        return source, True, ""
    except bundle_source.SourceError as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the bundle ships the TorchScript fallback
        reason = _short(exc)
    return _FALLBACK_MODEL.format(reason=reason), False, reason


# --- the whole bundle -----------------------------------------------------------

def _sha256(path: Path) -> str:
    return checkpoints.sha256_of(path)


def _versions() -> dict:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("onnx", "onnxruntime", "safetensors"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return versions


def make_bundle(ckpt: dict, out_path: Path, *, test: TestSplit | None, info: dict,
                progress: Callable[[int, str], None] = lambda pct, msg: None,
                onnx_tolerance: float = ONNX_TOLERANCE) -> BundleResult:
    """Write the bundle of checkpoint ``ckpt`` to ``out_path`` (a zip), atomically.

    ``info``: what the checkpoint does not hold (search, candidate, genotype,
    training settings) for metadata.json. ``test``: the test split, for the
    ONNX check and the float / int8 accuracies (None: a random input instead).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out_path.parent))
    try:
        return _make_bundle(ckpt, out_path, work, test, info, progress, onnx_tolerance)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _make_bundle(ckpt, out_path, work, test, info, progress, onnx_tolerance) -> BundleResult:
    files = work / "bundle"
    files.mkdir()
    genotype = info.get("genotype") or json.dumps(ckpt["arch"], sort_keys=True)
    model = project_model(ckpt)
    progress(10, "Rebuilt the network from the checkpoint")
    details: dict = {"notes": list(info.get("notes", []))}
    if test is None:
        details["notes"].append("The test split was not available to the worker: the ONNX check used a "
                                "random input and no accuracy was measured.")
    model_inputs, expected = _write_weights(files, ckpt, model, test, genotype)
    progress(20, "Wrote model.pt and model.safetensors")

    source, standalone_ok, standalone_error = standalone_source(model, ckpt, genotype, model_inputs, expected)
    (files / "model.py").write_text(source)
    (files / "predict.py").write_text(PREDICT_PY)
    progress(35, "Generated model.py" if standalone_ok else "model.py falls back to TorchScript")

    float_size = _write_torchscript(files, model, model_inputs, expected, details)
    progress(50, f"Exported TorchScript ({details['torchscript']['method']})")

    batch = test.x[: max(1, test.first_batch)] if test is not None else model_inputs
    onnx_ok, onnx_error, onnx_diff = export_onnx(model, ckpt, files / "model.onnx", batch, onnx_tolerance)
    progress(65, "Exported ONNX and checked it with onnxruntime" if onnx_ok else "ONNX export failed")

    float_accuracy = _accuracy(model, test) if test is not None else None
    int8_size, int8_accuracy, int8_error = _write_int8(files, model, _modality(ckpt), model_inputs, test, details)
    progress(80, "Quantised to int8 and measured both variants")

    metadata = _metadata(ckpt, info, model, genotype, details, {
        "standalone_model_py": {"ok": standalone_ok, "reason": standalone_error},
        "onnx": {"ok": onnx_ok, "reason": onnx_error, "max_abs_diff": onnx_diff, "tolerance": onnx_tolerance,
                 "opset": ONNX_OPSET},
        "torchscript": details["torchscript"],
        "int8": {"ok": int8_size is not None, "reason": int8_error, "size_bytes": int8_size,
                 "quantised_fraction": details.get("int8", {}).get("quantised_fraction"),
                 "method": details.get("int8", {}).get("method"),
                 "float_layers": details.get("int8", {}).get("float_layers", []),
                 "test_accuracy": int8_accuracy, "float_size_bytes": float_size,
                 "float_test_accuracy": float_accuracy}})
    names = _write_metadata(files, metadata)
    progress(90, "Wrote metadata.json and README.md")

    size, digest = _zip(files, out_path, info.get("folder") or out_path.stem)  # the folder it unpacks into
    details["files"] = names
    return BundleResult(path=out_path, size=size, sha256=digest, standalone_ok=standalone_ok,
                        standalone_error=standalone_error, onnx_ok=onnx_ok, onnx_error=onnx_error,
                        onnx_max_diff=onnx_diff, float_size=float_size, float_accuracy=float_accuracy,
                        int8_size=int8_size, int8_accuracy=int8_accuracy, int8_error=int8_error,
                        details=details)


def _write_weights(files: Path, ckpt: dict, model, test, genotype: str):
    """example_input.pt, model.pt and model.safetensors; returns (model inputs, their logits)."""
    raw = example_inputs(ckpt, test, model)
    model_inputs = normalise(ckpt, raw)
    expected = _logits(model, model_inputs)
    examples = {"inputs": raw, "model_inputs": model_inputs, "logits": expected}
    if isinstance(ckpt.get("tokenizer"), dict):
        examples["texts"] = example_texts(raw, ckpt["tokenizer"])  # shown next to predict.py's predictions
    torch.save(examples, files / "example_input.pt")

    payload = {k: v for k, v in ckpt.items() if k != "state_dict"}
    payload.update({"state_dict": {k: v.detach().cpu().contiguous() for k, v in ckpt["state_dict"].items()},
                    "genotype": genotype, "modality": _modality(ckpt), "bundle_format": BUNDLE_FORMAT})
    torch.save(payload, files / "model.pt")
    from safetensors.torch import save_file

    save_file(payload["state_dict"], str(files / "model.safetensors"),
              metadata={"genotype": genotype, "arch": json.dumps(ckpt["arch"], sort_keys=True),
                        "space": ckpt["space"], "input_shape": json.dumps(ckpt["input_shape"]),
                        "class_names": json.dumps(ckpt["class_names"])})
    return model_inputs, expected


def _write_torchscript(files: Path, model, model_inputs, expected, details: dict) -> int:
    """model.torchscript.pt, checked by loading it back; returns its size."""
    scripted, method, why_trace = _script(model, model_inputs)
    float_size = _save_script(scripted, files / "model.torchscript.pt")
    reloaded = _jit_load(files / "model.torchscript.pt")
    ts_diff = (_logits(reloaded, model_inputs) - expected).abs().max().item()
    details["torchscript"] = {"method": method, "max_abs_diff": ts_diff}
    if why_trace:
        details["torchscript"]["why_traced"] = why_trace
    return float_size


def _write_int8(files: Path, model, modality: str, model_inputs, test, details: dict):
    """model.int8.torchscript.pt; returns (size, test accuracy, why not) with None where none."""
    calibration = test.calibration if test is not None else None
    try:
        q_script, details["int8"] = quantise_for_bundle(model, modality, calibration, model_inputs)
        int8_size = _save_script(q_script, files / "model.int8.torchscript.pt")
        accuracy = _accuracy(_jit_load(files / "model.int8.torchscript.pt"), test) if test is not None else None
        return int8_size, accuracy, ""
    except Exception as exc:  # noqa: BLE001 - no quantised variant is a result to report, not a crash
        (files / "model.int8.torchscript.pt").unlink(missing_ok=True)
        return None, None, f"int8 quantisation failed: {_short(exc)}"


def _metadata(ckpt: dict, info: dict, model, genotype: str, details: dict, checks: dict) -> dict:
    return {
        "bundle_format": BUNDLE_FORMAT,
        **{k: info[k] for k in ("search", "candidate", "training") if k in info},
        "genotype": genotype, "space": ckpt["space"], "space_settings": ckpt["space_settings"],
        "architecture": ckpt["arch"], "input_shape": ckpt["input_shape"], "modality": _modality(ckpt),
        "num_classes": ckpt["num_classes"], "class_names": ckpt["class_names"],
        "tokenizer": ({k: v for k, v in ckpt["tokenizer"].items() if k != "vocab"}
                      | {"vocab_size": len(ckpt["tokenizer"].get("vocab", [])), "in": "model.pt"}
                      if isinstance(ckpt.get("tokenizer"), dict) else None),
        "normalisation": ckpt["normalisation"], "metrics": ckpt.get("metrics", {}),
        "parameters": sum(p.numel() for p in model.parameters()),
        **checks,
        "notes": details["notes"],
        "software": _versions(),
    }


def _write_metadata(files: Path, metadata: dict) -> list[str]:
    """README.md, then metadata.json with every other file's size and checksum; the file names."""
    (files / "README.md").write_text(readme(metadata))
    names = sorted(p.name for p in files.iterdir())
    metadata["files"] = {name: {"size": (files / name).stat().st_size, "sha256": _sha256(files / name)}
                         for name in names}
    (files / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    return names


def _zip(files: Path, out_path: Path, folder: str):
    def write_zip(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(files.iterdir()):
                zf.write(path, f"{folder}/{path.name}")

    return checkpoints.atomic_write(out_path, write_zip)


# --- the worker side -------------------------------------------------------------

def bundle_path(root: Path, search_id: int, candidate_index: int, attempt: int) -> Path:
    """One file per build attempt, so a superseded build never overwrites a newer one."""
    return Path(root) / f"search-{search_id}" / f"candidate-{candidate_index}-bundle-{attempt}.zip"


def _test_split(search) -> tuple[TestSplit | None, str]:
    from django.conf import settings

    from . import datasets
    from .training import recipe_for

    recipe = recipe_for(search.train_settings)
    try:
        data = datasets.load(search.dataset, search.seed, str(settings.DATA_DIR), resolution=recipe["resolution"])
    except Exception as exc:  # noqa: BLE001 - the bundle is still useful without the test split
        return None, _short(exc)
    return TestSplit(x=data.x_test.cpu(), y=data.y_test.cpu(), first_batch=int(recipe["batch_size"]),
                     calibration=data.x_train[:CALIBRATION_SAMPLES].cpu()), ""


def run_bundle(bundle_id: int, attempt: int, worker: str | None = None) -> str:
    """Build a claimed bundle end to end. Returns its final state, or 'skipped'."""
    from django.conf import settings

    from searches import services, storage
    from .training import recipe_for

    bundle = services.bundle_start(bundle_id, attempt, worker=worker or socket.gethostname())
    if bundle is None:
        return "skipped"  # delivered twice, superseded by a newer request, or deleted
    candidate = bundle.candidate
    search = candidate.search
    try:
        try:
            path = storage.fetch(candidate.checkpoint_path)
        except FileNotFoundError:
            name = candidate.checkpoint_path.rsplit("/", 1)[-1]
            raise BundleError(f"The checkpoint file {name} is missing from the checkpoint storage.") from None
        if _sha256(path) != bundle.checkpoint_sha256:
            raise BundleError("The checkpoint file changed since the bundle was requested; request it again.")
        ckpt = checkpoints.load(path)
        if storage.is_stored(candidate.checkpoint_path):
            path.unlink(missing_ok=True)  # a copy fetched from the bucket: the cache stays small
        services.bundle_progress(bundle, 5, "Loading the test split")
        test, why_no_test = _test_split(search)
        info = {
            "folder": f"search{search.id}-candidate{candidate.index}-bundle",
            "genotype": candidate.genotype,
            "search": {"id": search.id, "name": search.name, "dataset": search.dataset,
                       "strategy": search.strategy, "seed": search.seed},
            "candidate": {"id": candidate.id, "index": candidate.index, "param_count": candidate.param_count,
                          "best_val_accuracy": candidate.best_val_accuracy,
                          "test_accuracy": candidate.test_accuracy,
                          "test_macro_f1": candidate.test_macro_f1,
                          "checkpoint_sha256": bundle.checkpoint_sha256},
            "training": {"epochs": search.epochs, "epochs_done": candidate.epochs_done,
                         "recipe": recipe_for(search.train_settings), "train_settings": search.train_settings},
            "notes": [f"Test split unavailable: {why_no_test}"] if why_no_test else [],
        }
        result = make_bundle(
            ckpt, bundle_path(settings.CHECKPOINT_DIR, search.id, candidate.index, bundle.attempt), test=test, info=info,
            progress=lambda pct, msg: services.bundle_progress(bundle, pct, msg))
        result.path = storage.put(result.path, f"bundles/search-{search.id}/{Path(result.path).name}")
    except BundleError as exc:
        services.bundle_fail(bundle, error=str(exc))
        return "failed"
    except Exception:
        log.exception("bundle %s failed", bundle_id)
        services.bundle_fail(bundle, error=traceback.format_exc())
        return "failed"
    if not services.bundle_ready(bundle, result=result):
        return "skipped"
    return "ready"


def zip_member_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()

