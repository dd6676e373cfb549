"""Exports of a bundle's network: TorchScript, ONNX checked with onnxruntime, int8."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

ONNX_TOLERANCE = 1e-4
ONNX_OPSET = 17


class BundleError(Exception):
    """The bundle cannot be built; the message says why."""


def _short(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# --- static int8 (conv nets), falling back to dynamic ------------------------------

CALIBRATION_SAMPLES = 512
CALIBRATION_BATCH = 512
_SHAPE_ONLY = (nn.Flatten, nn.Identity, nn.Dropout)


def _float_ops(quantised) -> list[str]:
    """The operations of a converted FX graph that run in float (their input is dequantised)."""
    modules = dict(quantised.named_modules())
    names = []
    for node in quantised.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method") or node.target == "dequantize":
            continue
        if not any(getattr(a, "op", None) == "call_method" and a.target == "dequantize" for a in node.args):
            continue
        if node.op == "call_module":
            module = modules[node.target]
            if not isinstance(module, _SHAPE_ONLY):
                names.append(f"{node.target} ({type(module).__name__})")
        else:
            names.append(getattr(node.target, "__name__", str(node.target)))
    return sorted(set(names))


def quantise_static_int8(model: nn.Module, calibration: torch.Tensor, example: torch.Tensor):
    """Static int8 quantisation of a conv net with torch's FX graph mode: conv/BN/ReLU fused,
    int8 weights and activations, observers calibrated on ``calibration`` (training inputs).
    Returns (TorchScript module, how, fraction of parameters quantised, layers left in float)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model).cpu().eval(), get_default_qconfig_mapping(engine), (example[:1],))
        with torch.no_grad():
            for i in range(0, len(calibration), CALIBRATION_BATCH):
                prepared(calibration[i:i + CALIBRATION_BATCH])
        quantised = convert_fx(prepared)
        float_layers = _float_ops(quantised)
        scripted = torch.jit.trace(quantised, example, check_trace=False)
        scripted(example)
    total = sum(p.numel() for p in model.parameters())
    kept = sum(p.numel() for p in quantised.parameters())  # what convert_fx left as float tensors
    return scripted, f"static ({engine}, FX graph mode, calibrated on {len(calibration)} training inputs)", \
        1 - kept / max(1, total), float_layers


def quantise_for_bundle(model: nn.Module, modality: str, calibration: torch.Tensor | None, example: torch.Tensor):
    """Static int8 for conv nets when training inputs are at hand, else (text models, or the
    static path failing) dynamic int8 of the Linear and recurrent layers. Returns
    (scripted, details dict for metadata and the page)."""
    why_not_static = ""
    if modality == "image" and calibration is not None:
        try:
            scripted, how, fraction, float_layers = quantise_static_int8(model, calibration, example)
            return scripted, {"method": how, "kind": "static", "quantised_fraction": fraction,
                              "float_layers": float_layers,
                              "layers": "convolutions, Linear layers and their activations: int8 weights and "
                                        "int8 activations"}
        except Exception as exc:  # noqa: BLE001 - dynamic quantisation is still worth shipping
            why_not_static = f"static quantisation failed ({_short(exc, 200)}); dynamic used instead"
    elif modality == "image":
        why_not_static = "no training inputs to calibrate on: dynamic quantisation instead of static"
    scripted, how, fraction = quantise_int8(model, example)
    details = {"method": how, "kind": "dynamic", "quantised_fraction": fraction, "float_layers": [],
               "layers": "Linear and recurrent layers: int8 weights, float activations; everything else float"}
    if why_not_static:
        details["why_not_static"] = why_not_static
    return scripted, details
