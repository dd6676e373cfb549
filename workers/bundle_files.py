"""The text files of a model bundle: model.py's fixed parts, predict.py and README.md."""
from __future__ import annotations


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


def _fmt_acc(value) -> str:
    return "—" if value is None else f"{value:.2%}"


def readme(meta: dict) -> str:
    search = meta.get("search", {})
    candidate = meta.get("candidate", {})
    title = f"{search.get('name', 'NASWeb search')} — candidate {candidate.get('index', '?')}"
    lines = [
        f"# {title}",
        "",
        f"Architecture `{meta['genotype']}` from the `{meta['space']}` search space, "
        f"{meta['parameters']:,} parameters, {meta['num_classes']} classes.",
        f"Test accuracy {_fmt_acc(meta['metrics'].get('test_accuracy'))}.",
        "",
    ]
    return "\n".join(lines + _readme_files(meta) + _readme_checks(meta) + _readme_use(meta))


def _input_text(meta: dict) -> str:
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
    return input_text


def _readme_files(meta: dict) -> list[str]:
    standalone, onnx, int8 = meta["standalone_model_py"], meta["onnx"], meta["int8"]
    lines = [
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
        lines.append(f"| `model.int8.torchscript.pt` | int8 quantised TorchScript: {int8.get('method') or 'dynamic'} |")
    if onnx["ok"]:
        lines.append(f"| `model.onnx` | ONNX opset {onnx['opset']}, input `input`, output `logits`, "
                     f"dynamic batch |")
    lines += ["| `metadata.json` | architecture, shapes, normalisation, classes, metrics, training "
              "settings, versions, checksums |", ""]
    return lines


def _readme_checks(meta: dict) -> list[str]:
    standalone, onnx, int8 = meta["standalone_model_py"], meta["onnx"], meta["int8"]
    lines = ["## Checks made when the bundle was built", ""]
    lines.append(f"- model.py: {'rebuilt the network with the same logits' if standalone['ok'] else 'not generated — ' + standalone['reason']}.")
    if onnx["ok"]:
        lines.append(f"- ONNX: onnxruntime matches PyTorch within {onnx['max_abs_diff']:.2g} "
                     f"(allowed {onnx['tolerance']:g}) on the first test batch.")
    else:
        lines.append(f"- ONNX: **not included** — {onnx['reason']}.")
    if int8["ok"]:
        lines.append(f"- int8: {int8['size_bytes']:,} bytes against {int8['float_size_bytes']:,} for float; "
                     f"test accuracy {_fmt_acc(int8['test_accuracy'])} against "
                     f"{_fmt_acc(int8['float_test_accuracy'])} for float. Quantisation "
                     f"({int8.get('method') or 'dynamic'}) covers {int8['quantised_fraction']:.0%} of the "
                     f"parameters" + (f"; left in float: {', '.join(int8['float_layers'])}."
                                      if int8.get("float_layers") else "."))
    else:
        lines.append(f"- int8: **not included** — {int8['reason']}.")
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    return lines


def _readme_use(meta: dict) -> list[str]:
    lines = [
        "",
        "## Use it",
        "",
        f"Input: {_input_text(meta)}.",
        "",
        "```python",
        "import torch",
        "",
        "net = torch.jit.load('model.torchscript.pt').eval()      # no source needed",
    ]
    if meta["standalone_model_py"]["ok"]:
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
    return lines


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
        return tokenize(text, info["tokenizer"], shape[0]), [text]
    if path is None:
        examples = torch.load(HERE / "example_input.pt", map_location="cpu", weights_only=True)
        return examples["model_inputs"], examples.get("texts")
    x = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(x, dict):
        x = x["inputs"]
    if x.dim() == len(shape):
        x = x.unsqueeze(0)
    if len(shape) == 1:
        return x.long(), None
    c = len(info["normalisation"]["mean"])
    mean = torch.tensor(info["normalisation"]["mean"]).reshape(1, c, 1, 1)
    std = torch.tensor(info["normalisation"]["std"]).reshape(1, c, 1, 1)
    return (x.float() - mean) / std, None


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
    x, texts = read_inputs(args.input, args.text, info)
    with torch.no_grad():
        logits = model(x)
    probs = logits.softmax(dim=1)
    top = probs.topk(min(args.top, probs.shape[1]), dim=1)
    names = info["class_names"]
    predictions = [[{"class": names[i], "probability": p} for p, i in zip(ps.tolist(), ids.tolist())]
                   for ps, ids in zip(top.values, top.indices)]
    if args.json:
        print(json.dumps({"logits": logits.tolist(), "predictions": predictions, "texts": texts}))
        return
    for n, row in enumerate(predictions):
        shown = f" {texts[n][:70]!r}" if texts else ""
        print(f"input {n}{shown}: " + ", ".join(f"{p['class']} {p['probability']:.1%}" for p in row))


if __name__ == "__main__":
    main()
'''
