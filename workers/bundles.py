"""Model bundles: the trained network of one candidate as a zip a person can use at once.

``make_bundle`` is plain torch: from a checkpoint it writes

    model.pt                    state dict + metadata, opens with torch.load(weights_only=True)
    model.safetensors           the same tensors
    model.py                    the architecture in torch-only source (see bundle_source)
    predict.py                  classify an input with nothing but torch
    example_input.pt            a few test inputs and the logits they must give
    model.torchscript.pt        torch.jit.load, no project code
    model.int8.torchscript.pt   dynamically quantised (int8 Linear/RNN weights)
    model.onnx                  only when onnxruntime reproduces PyTorch within 1e-4
    metadata.json, README.md

into a temporary directory, zips it under a temporary name and renames it:
a failure leaves nothing half-written where a download could find it.
``run_bundle`` is the Celery task's body: it claims the bundle, loads the
checkpoint and the test split, and reports progress through the services.
"""
from __future__ import annotations

import copy
import json
import logging
import platform
import shutil
import socket
import tempfile
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import bundle_source, checkpoints

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
EXAMPLES = 8  # inputs kept in example_input.pt
STANDALONE_TOLERANCE = 1e-5
ONNX_TOLERANCE = 1e-4
ONNX_OPSET = 17
EVAL_BATCH = 512


class BundleError(Exception):
    """The bundle cannot be built; the message says why."""


@dataclass
class TestSplit:
    """Normalised inputs and labels of the test split, on the CPU."""

    x: torch.Tensor
    y: torch.Tensor
    first_batch: int = 64  # the training recipe's batch size: the ONNX check uses that many


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


def _short(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


@torch.no_grad()
def _logits(model, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


@torch.no_grad()
def _accuracy(model, test: TestSplit) -> float:
    correct = 0
    for i in range(0, len(test.x), EVAL_BATCH):
        correct += (model(test.x[i:i + EVAL_BATCH]).argmax(dim=1) == test.y[i:i + EVAL_BATCH]).sum().item()
    return correct / max(1, len(test.x))


def _script(model: nn.Module, example: torch.Tensor):
    """TorchScript of ``model``: scripted when it can be, else traced on ``example``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.script(model), "script", ""
        except Exception as exc:  # noqa: BLE001 - any compiler error means "trace instead"
            reason = _short(exc, 300)
            return torch.jit.trace(model, example, check_trace=False), "trace", reason


def _jit_load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.jit.load is deprecated": still what the bundle promises
        return torch.jit.load(str(path), map_location="cpu")


def _save_script(module, path: Path) -> int:
    module.save(str(path))
    return path.stat().st_size


# --- model.py ---------------------------------------------------------------

_MODEL_MAIN = '''
STANDALONE = True


def load(weights: str = "model.pt") -> nn.Module:
    """build_model() with the trained weights (model.pt, or model.safetensors), in eval mode."""
    from pathlib import Path

    path = Path(__file__).resolve().parent / weights
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # pip install safetensors

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    model = build_model()
    model.load_state_dict(state)
    return model.eval()


if __name__ == "__main__":
    # python model.py [--json]: rebuild the network, load model.pt and check it
    # against the logits stored with the example inputs.
    import json
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    info = torch.load(here / "model.pt", map_location="cpu", weights_only=True)
    example = torch.load(here / "example_input.pt", map_location="cpu", weights_only=True)
    model = load()
    with torch.no_grad():
        logits = model(example["model_inputs"])
    diff = (logits - example["logits"]).abs().max().item()
    if "--json" in sys.argv:
        print(json.dumps({"logits": logits.tolist(), "max_abs_diff": diff}))
    else:
        params = sum(p.numel() for p in model.parameters())
        print(f"{info['genotype']}: {params:,} parameters; example logits differ by {diff:.2e}")
'''

_FALLBACK_MODEL = '''"""This network could not be written as standalone source:

    {reason}

build_model() and load() therefore return the TorchScript export, which
carries the architecture and the trained weights and needs no project code.
"""
import torch

STANDALONE = False
REASON = {reason!r}


def build_model():
    return load()


def load(weights: str = "model.torchscript.pt"):
    from pathlib import Path

    return torch.jit.load(str(Path(__file__).resolve().parent / "model.torchscript.pt"), map_location="cpu").eval()


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    example = torch.load(here / "example_input.pt", map_location="cpu", weights_only=True)
    with torch.no_grad():
        logits = load()(example["model_inputs"])
    diff = (logits - example["logits"]).abs().max().item()
    if "--json" in sys.argv:
        print(json.dumps({{"logits": logits.tolist(), "max_abs_diff": diff}}))
    else:
        print(f"TorchScript model (not standalone source: {{REASON}}); example logits differ by {{diff:.2e}}")
'''


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


# --- ONNX ---------------------------------------------------------------------

def export_onnx(model: nn.Module, ckpt: dict, path: Path, batch: torch.Tensor,
                tolerance: float = ONNX_TOLERANCE) -> tuple[bool, str, float | None]:
    """Export to ``path`` and compare onnxruntime with PyTorch on ``batch``.

    Returns (ok, reason when not, max abs difference). A failed file is removed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return False, "onnxruntime is not installed on the worker, so the export could not be checked", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (batch[:2],), str(path), dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(["logits"], {"input": batch.numpy()})
        with torch.no_grad():
            want = model(batch)
        diff = (torch.from_numpy(got) - want).abs().max().item()
    except Exception as exc:  # noqa: BLE001 - an exporter or runtime error is the reason to report
        path.unlink(missing_ok=True)
        return False, f"export failed: {_short(exc)}", None
    if not diff <= tolerance:
        path.unlink(missing_ok=True)
        return False, (f"onnxruntime's logits differ from PyTorch's by {diff:.3g} on the first test batch "
                       f"(allowed {tolerance:g})"), diff
    return True, "", diff


QUANTISABLE = (nn.Linear, nn.GRU, nn.LSTM, nn.RNN)
# Layers whose forward reads their Linear children's weights directly (the
# fused fast path), so quantised children break them: left in float.
_KEEP_FLOAT_INSIDE = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.MultiheadAttention)


def quantisable_layers(model: nn.Module, *, skip_fused: bool) -> list[str]:
    skipped: list[str] = []
    names = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in skipped):
            continue
        if skip_fused and isinstance(module, _KEEP_FLOAT_INSIDE):
            skipped.append(name)
        elif isinstance(module, QUANTISABLE):
            names.append(name)
    return names


def quantise_int8(model: nn.Module, example: torch.Tensor):
    """Dynamic int8 quantisation (int8 weights, float activations) of the Linear and recurrent
    layers, as TorchScript. Returns (scripted module, how, fraction of parameters quantised)."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    total = sum(p.numel() for p in model.parameters())
    failure = None
    for skip_fused in (False, True):
        layers = quantisable_layers(model, skip_fused=skip_fused)
        if not layers:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantised = quantize_dynamic(copy.deepcopy(model).cpu().eval(),
                                             {name: default_dynamic_qconfig for name in layers},
                                             dtype=torch.qint8)
                scripted, method, _ = _script(quantised, example)
                scripted(example)  # a quantised fast path can fail only when it runs
        except Exception as exc:  # noqa: BLE001 - try again without the fused layers
            failure = exc
            continue
        covered = sum(p.numel() for name in layers for p in model.get_submodule(name).parameters())
        how = method + (" (attention layers kept in float)" if skip_fused else "")
        return scripted, how, covered / max(1, total)
    raise failure or BundleError("the network has no Linear or recurrent layer to quantise")


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

    raw = example_inputs(ckpt, test, model)
    model_inputs = normalise(ckpt, raw)
    expected = _logits(model, model_inputs)
    torch.save({"inputs": raw, "model_inputs": model_inputs, "logits": expected}, files / "example_input.pt")

    payload = {k: v for k, v in ckpt.items() if k != "state_dict"}
    payload.update({"state_dict": {k: v.detach().cpu().contiguous() for k, v in ckpt["state_dict"].items()},
                    "genotype": genotype, "modality": _modality(ckpt), "bundle_format": BUNDLE_FORMAT})
    torch.save(payload, files / "model.pt")
    from safetensors.torch import save_file

    save_file(payload["state_dict"], str(files / "model.safetensors"),
              metadata={"genotype": genotype, "arch": json.dumps(ckpt["arch"], sort_keys=True),
                        "space": ckpt["space"], "input_shape": json.dumps(ckpt["input_shape"]),
                        "class_names": json.dumps(ckpt["class_names"])})
    progress(20, "Wrote model.pt and model.safetensors")

    source, standalone_ok, standalone_error = standalone_source(model, ckpt, genotype, model_inputs, expected)
    (files / "model.py").write_text(source)
    (files / "predict.py").write_text(PREDICT_PY)
    progress(35, "Generated model.py" if standalone_ok else "model.py falls back to TorchScript")

    scripted, method, why_trace = _script(model, model_inputs)
    float_size = _save_script(scripted, files / "model.torchscript.pt")
    reloaded = _jit_load(files / "model.torchscript.pt")
    ts_diff = (_logits(reloaded, model_inputs) - expected).abs().max().item()
    details["torchscript"] = {"method": method, "max_abs_diff": ts_diff}
    if why_trace:
        details["torchscript"]["why_traced"] = why_trace
    progress(50, f"Exported TorchScript ({method})")

    batch = test.x[: max(1, test.first_batch)] if test is not None else model_inputs
    onnx_ok, onnx_error, onnx_diff = export_onnx(model, ckpt, files / "model.onnx", batch, onnx_tolerance)
    progress(65, "Exported ONNX and checked it with onnxruntime" if onnx_ok else "ONNX export failed")

    int8_size = int8_accuracy = float_accuracy = None
    int8_error = ""
    if test is not None:
        float_accuracy = _accuracy(model, test)
    try:
        q_script, q_method, fraction = quantise_int8(model, model_inputs)
        int8_size = _save_script(q_script, files / "model.int8.torchscript.pt")
        details["int8"] = {"method": q_method, "quantised_fraction": fraction,
                           "layers": "Linear and recurrent layers: int8 weights, float activations"}
        if test is not None:
            int8_accuracy = _accuracy(_jit_load(files / "model.int8.torchscript.pt"), test)
    except Exception as exc:  # noqa: BLE001 - no quantised variant is a result to report, not a crash
        int8_error = f"int8 quantisation failed: {_short(exc)}"
        (files / "model.int8.torchscript.pt").unlink(missing_ok=True)
    progress(80, "Quantised to int8 and measured both variants")

    metadata = {
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
        "standalone_model_py": {"ok": standalone_ok, "reason": standalone_error},
        "onnx": {"ok": onnx_ok, "reason": onnx_error, "max_abs_diff": onnx_diff, "tolerance": onnx_tolerance,
                 "opset": ONNX_OPSET},
        "torchscript": details["torchscript"],
        "int8": {"ok": int8_size is not None, "reason": int8_error, "size_bytes": int8_size,
                 "quantised_fraction": details.get("int8", {}).get("quantised_fraction"),
                 "test_accuracy": int8_accuracy, "float_size_bytes": float_size,
                 "float_test_accuracy": float_accuracy},
        "notes": details["notes"],
        "software": _versions(),
    }
    (files / "README.md").write_text(readme(metadata))
    names = sorted(p.name for p in files.iterdir())
    metadata["files"] = {name: {"size": (files / name).stat().st_size, "sha256": _sha256(files / name)}
                         for name in names}
    (files / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    progress(90, "Wrote metadata.json and README.md")

    folder = info.get("folder") or out_path.stem  # the directory the zip unpacks into
    def write_zip(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(files.iterdir()):
                zf.write(path, f"{folder}/{path.name}")

    size, digest = checkpoints.atomic_write(out_path, write_zip)
    details["files"] = names
    return BundleResult(path=out_path, size=size, sha256=digest, standalone_ok=standalone_ok,
                        standalone_error=standalone_error, onnx_ok=onnx_ok, onnx_error=onnx_error,
                        onnx_max_diff=onnx_diff, float_size=float_size, float_accuracy=float_accuracy,
                        int8_size=int8_size, int8_accuracy=int8_accuracy, int8_error=int8_error,
                        details=details)


def _fmt_acc(value) -> str:
    return "—" if value is None else f"{value:.2%}"


def readme(meta: dict) -> str:
    search = meta.get("search", {})
    candidate = meta.get("candidate", {})
    title = f"{search.get('name', 'NASWeb search')} — candidate {candidate.get('index', '?')}"
    standalone = meta["standalone_model_py"]
    onnx = meta["onnx"]
    int8 = meta["int8"]
    shape = " × ".join(str(v) for v in meta["input_shape"])
    if meta["modality"] == "text":
        input_text = (f"a LongTensor of token ids, shape (N, {meta['input_shape'][0]}); "
                      "id 0 pads, id 1 is an unknown word")
        if meta.get("tokenizer"):
            input_text += ("; or plain text: `python predict.py --text \"some words\"` "
                           "(the tokenizer's vocabulary is in model.pt)")
    else:
        input_text = (f"a float tensor of raw pixels in [0, 1], shape (N, {shape}); predict.py "
                      "normalises it with the training mean and std from model.pt")
    lines = [
        f"# {title}",
        "",
        f"Architecture `{meta['genotype']}` from the `{meta['space']}` search space, "
        f"{meta['parameters']:,} parameters, {meta['num_classes']} classes.",
        f"Test accuracy {_fmt_acc(meta['metrics'].get('test_accuracy'))}.",
        "",
        "## Files",
        "",
        "| file | what it is |",
        "|---|---|",
        "| `model.pt` | state dict and metadata: `torch.load('model.pt', weights_only=True)` |",
        "| `model.safetensors` | the same tensors in safetensors format |",
        ("| `model.py` | the architecture in plain torch: `from model import load; net = load()` |"
         if standalone["ok"] else
         f"| `model.py` | **not standalone source** ({standalone['reason']}); it loads the TorchScript export |"),
        "| `predict.py` | classify inputs: `python predict.py [input.pt] [--top 3] [--json]` |",
        "| `example_input.pt` | a few test inputs (`inputs`), as the model sees them (`model_inputs`), "
        "and their `logits` |",
        "| `model.torchscript.pt` | `torch.jit.load('model.torchscript.pt')`, no source needed |",
    ]
    if int8["ok"]:
        lines.append("| `model.int8.torchscript.pt` | int8 dynamically quantised TorchScript (Linear and "
                     "recurrent layers) |")
    if onnx["ok"]:
        lines.append(f"| `model.onnx` | ONNX opset {onnx['opset']}, input `input`, output `logits`, "
                     f"dynamic batch |")
    lines += ["| `metadata.json` | architecture, shapes, normalisation, classes, metrics, training "
              "settings, versions, checksums |", ""]
    lines += ["## Checks made when the bundle was built", ""]
    lines.append(f"- model.py: {'rebuilt the network with the same logits' if standalone['ok'] else 'not generated — ' + standalone['reason']}.")
    if onnx["ok"]:
        lines.append(f"- ONNX: onnxruntime matches PyTorch within {onnx['max_abs_diff']:.2g} "
                     f"(allowed {onnx['tolerance']:g}) on the first test batch.")
    else:
        lines.append(f"- ONNX: **not included** — {onnx['reason']}.")
    if int8["ok"]:
        lines.append(f"- int8: {int8['size_bytes']:,} bytes against {int8['float_size_bytes']:,} for float; "
                     f"test accuracy {_fmt_acc(int8['test_accuracy'])} against "
                     f"{_fmt_acc(int8['float_test_accuracy'])} for float. Dynamic quantisation covers "
                     f"the Linear and recurrent layers: {int8['quantised_fraction']:.0%} of the parameters "
                     f"(convolutions stay in float).")
    else:
        lines.append(f"- int8: **not included** — {int8['reason']}.")
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    lines += [
        "",
        "## Use it",
        "",
        f"Input: {input_text}.",
        "",
        "```python",
        "import torch",
        "",
        "net = torch.jit.load('model.torchscript.pt').eval()      # no source needed",
    ]
    if standalone["ok"]:
        lines += ["from model import load                                  # or: plain torch source",
                  "net = load()                                            # model.pt weights, eval mode"]
    lines += [
        "info = torch.load('model.pt', weights_only=True)          # class_names, normalisation, ...",
        "logits = net(torch.load('example_input.pt')['model_inputs'])",
        "```",
        "",
        "```sh",
        "python predict.py                 # the bundled example inputs",
        "python predict.py my_input.pt     # a tensor saved with torch.save",
        "python model.py                   # rebuild and check against the stored logits",
        "```",
        "",
        f"Built with torch {meta['software']['torch']} on Python {meta['software']['python']}.",
        "",
    ]
    return "\n".join(lines)


PREDICT_PY = '''"""Classify inputs with this bundle's model, using nothing but torch.

    python predict.py                  # the example inputs bundled in example_input.pt
    python predict.py INPUT.pt         # a tensor saved with torch.save
    python predict.py --text "..."     # text models whose model.pt holds a tokenizer
    options: --top K, --json, --torchscript (use model.torchscript.pt instead of model.py)

Images: raw pixels in [0, 1], shape (C, H, W) or (N, C, H, W); this script
normalises them with the training mean and std kept in model.pt.
Text: token ids, shape (L,) or (N, L).
"""
import argparse
import json
import re
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def load_model(torchscript: bool = False):
    if torchscript:
        return torch.jit.load(str(HERE / "model.torchscript.pt"), map_location="cpu").eval()
    from model import load  # model.py, next to this file

    return load()


def tokenize(text: str, tokenizer: dict, length: int) -> torch.Tensor:
    vocab = {token: i for i, token in enumerate(tokenizer["vocab"])}
    if tokenizer.get("lowercase", True):
        text = text.lower()
    tokens = list(text) if tokenizer.get("level") == "char" else re.findall(r"\\w+|[^\\w\\s]", text)
    ids = [vocab.get(t, 1) for t in tokens][:length]
    return torch.tensor([ids + [0] * (length - len(ids))])


def read_inputs(path, text, info) -> torch.Tensor:
    shape = info["input_shape"]
    if text is not None:
        if "tokenizer" not in info:
            raise SystemExit("this model has no tokenizer in model.pt; pass token ids in a .pt file")
        return tokenize(text, info["tokenizer"], shape[0])
    if path is None:
        return torch.load(HERE / "example_input.pt", map_location="cpu", weights_only=True)["model_inputs"]
    x = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(x, dict):
        x = x["inputs"]
    if x.dim() == len(shape):
        x = x.unsqueeze(0)
    if len(shape) == 1:
        return x.long()
    c = len(info["normalisation"]["mean"])
    mean = torch.tensor(info["normalisation"]["mean"]).reshape(1, c, 1, 1)
    std = torch.tensor(info["normalisation"]["std"]).reshape(1, c, 1, 1)
    return (x.float() - mean) / std


def main(argv=None):
    parser = argparse.ArgumentParser(description="Classify inputs with this bundle's model.")
    parser.add_argument("input", nargs="?", help="a .pt tensor (default: the bundled examples)")
    parser.add_argument("--text", help="a text to classify (text models with a tokenizer)")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print logits and predictions as JSON")
    parser.add_argument("--torchscript", action="store_true", help="use model.torchscript.pt")
    args = parser.parse_args(argv)

    info = torch.load(HERE / "model.pt", map_location="cpu", weights_only=True)
    model = load_model(args.torchscript)
    x = read_inputs(args.input, args.text, info)
    with torch.no_grad():
        logits = model(x)
    probs = logits.softmax(dim=1)
    top = probs.topk(min(args.top, probs.shape[1]), dim=1)
    names = info["class_names"]
    predictions = [[{"class": names[i], "probability": p} for p, i in zip(ps.tolist(), ids.tolist())]
                   for ps, ids in zip(top.values, top.indices)]
    if args.json:
        print(json.dumps({"logits": logits.tolist(), "predictions": predictions}))
        return
    for n, row in enumerate(predictions):
        print(f"input {n}: " + ", ".join(f"{p['class']} {p['probability']:.1%}" for p in row))


if __name__ == "__main__":
    main()
'''


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
    return TestSplit(x=data.x_test.cpu(), y=data.y_test.cpu(), first_batch=int(recipe["batch_size"])), ""


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

