"""How ``bundle_source`` writes plain values, tensors and ``torch.nn`` modules as source, and
checks that what it wrote builds the same module."""
from __future__ import annotations

import inspect
import math
import sys

import torch
from torch import nn

# Keys every nn.Module has in its __dict__; the rest is the module's own state.
_MODULE_INTERNALS = frozenset(nn.Module().__dict__) | {"training"}
_HOOK_DICTS = tuple(k for k in _MODULE_INTERNALS if "hook" in k)
_MAX_INLINE_TENSOR = 4096  # plain (non-parameter, non-buffer) tensors written out element by element


class SourceError(Exception):
    """The network holds something this generator cannot write as torch-only code."""


def _is_stdlib(module_name: str) -> bool:
    return module_name.split(".")[0] in sys.stdlib_module_names


def _is_torch(module_name: str) -> bool:
    top = module_name.split(".")[0]
    return top == "torch"


def _allowed_module(module_name: str) -> bool:
    return _is_torch(module_name) or _is_stdlib(module_name)


def literal(value) -> str:
    """Python source for a plain value, or SourceError."""
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        return repr(value)
    if isinstance(value, torch.dtype):
        return str(value)  # "torch.float32"
    if isinstance(value, torch.device):
        return f"torch.device({str(value)!r})"
    if isinstance(value, torch.Size):
        return f"torch.Size({literal(list(value))})"
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        inner = ", ".join(sorted(literal(v) for v in value))
        return f"{type(value).__name__}([{inner}])"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise SourceError(f"cannot write a {type(value).__name__} value as source")


def _qualified(value, path, gen) -> str:
    mod, attr = path
    if mod == "torch":
        return f"torch.{attr}"
    if mod == "torch.nn":
        return f"nn.{attr}"
    gen.imports[f"import {mod}"] = None
    return f"{mod}.{attr}"


def _empty_tensor(t: torch.Tensor) -> str:
    return f"torch.empty({literal(tuple(t.shape))}, dtype={t.dtype})"


def _tensor_literal(t: torch.Tensor, where: str) -> str:
    if t.numel() > _MAX_INLINE_TENSOR:
        raise SourceError(f"{where} is a tensor of {t.numel()} values that is not in the state dict")
    values = t.detach().cpu().tolist()
    return f"torch.tensor({literal(values)}, dtype={t.dtype}).reshape({literal(tuple(t.shape))})"


# --- torch.nn constructors ---------------------------------------------------

def _module_ref(cls, gen) -> str:
    path = gen._import_path(cls)
    if path is None:
        raise SourceError(f"{cls.__qualname__} cannot be imported from torch")
    return _qualified(cls, path, gen)


def _call(ref: str, args: list[tuple[str | None, str]], indent: int) -> str:
    parts = [(f"{k}={v}" if k else v) for k, v in args]
    one_line = f"{ref}({', '.join(parts)})"
    if "\n" not in one_line and len(one_line) + 4 * indent < 100:
        return one_line
    pad = "    " * (indent + 1)
    return f"{ref}(\n" + "".join(f"{pad}{p},\n" for p in parts) + "    " * indent + ")"


def _torch_constructor(module: nn.Module, gen, indent: int, short: bool = True) -> str:
    ref = _module_ref(type(module), gen)
    if isinstance(module, nn.TransformerEncoder):
        layer = gen.module_expr(module.layers[0], indent + 1)
        norm = gen.module_expr(module.norm, indent + 1) if module.norm is not None else "None"
        return _call(ref, [(None, layer), ("num_layers", str(len(module.layers))), ("norm", norm),
                           ("enable_nested_tensor", literal(module.enable_nested_tensor)),
                           ("mask_check", literal(module.mask_check))], indent)
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        attn = module.self_attn
        activation = module.activation
        act = gen.value_expr(type(module).__name__ + ".activation", activation)
        args = [(None, str(attn.embed_dim)), (None, str(attn.num_heads)),
                ("dim_feedforward", str(module.linear1.out_features)),
                ("dropout", literal(module.dropout.p)), ("activation", act),
                ("layer_norm_eps", literal(module.norm1.eps)), ("batch_first", literal(attn.batch_first)),
                ("norm_first", literal(module.norm_first)), ("bias", literal(module.linear1.bias is not None))]
        return _call(ref, args, indent)
    if isinstance(module, nn.MultiheadAttention):
        args = [(None, str(module.embed_dim)), (None, str(module.num_heads)),
                ("dropout", literal(module.dropout)), ("bias", literal(module.in_proj_bias is not None)),
                ("add_bias_kv", literal(module.bias_k is not None)),
                ("add_zero_attn", literal(module.add_zero_attn)),
                ("kdim", literal(module.kdim)), ("vdim", literal(module.vdim)),
                ("batch_first", literal(module.batch_first))]
        return _call(ref, args, indent)
    if isinstance(module, nn.RNNBase):
        names = ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional"]
        if isinstance(module, nn.LSTM):
            names.append("proj_size")
        if type(module) is nn.RNN:
            names.append("nonlinearity")
        return _call(ref, [(n, literal(getattr(module, n))) for n in names], indent)
    return _call(ref, _constructor_args(module, gen, indent, short), indent)


def _constructor_args(module: nn.Module, gen, indent: int,
                      short: bool) -> list[tuple[str | None, str]]:
    """Arguments read back from the attributes of the same names.

    ``short``: required arguments by position, ``(3, 3)`` as ``3``; the caller
    checks that the short spelling builds the same module, else asks again.
    """
    signature = inspect.signature(type(module).__init__)
    args = []
    positional = short
    for param in list(signature.parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name in ("device", "dtype"):
            continue
        name = param.name
        if hasattr(module, name):
            value = getattr(module, name)
        elif hasattr(module, "_" + name):
            value = getattr(module, "_" + name)
        elif param.default is not param.empty:
            continue
        else:
            raise SourceError(f"{type(module).__name__} needs {name!r}, which it does not keep")
        if name == "bias" and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None
        if (short and isinstance(value, tuple) and value and len(set(value)) == 1
                and isinstance(value[0], int) and not isinstance(value[0], bool)):
            value = value[0]
        if isinstance(value, nn.Module):
            expr = gen.module_expr(value, indent + 1)
        elif isinstance(value, torch.Tensor):
            if param.default is not param.empty:
                continue  # e.g. Embedding(_weight=...): the state dict brings it
            raise SourceError(f"{type(module).__name__}.{name} is a tensor argument")
        else:
            expr = gen.value_expr(f"{type(module).__name__}.{name}", value)
        if param.default is not param.empty:
            try:
                if value == param.default and type(value) is type(param.default):
                    continue  # leave defaults out: shorter and easier to read
            except (TypeError, RuntimeError):
                pass
        positional = positional and param.default is param.empty
        args.append((None if positional else name, expr))
    return args


def _plain_state(module: nn.Module) -> dict:
    out = {}
    for k, v in module.__dict__.items():
        if k in _MODULE_INTERNALS or isinstance(v, (torch.Tensor, nn.Module)):
            continue
        try:
            literal(v)
        except SourceError:
            continue  # e.g. RNN's _flat_weights and their weak references: derived from the parameters
        out[k] = v
    return out


def _structure_difference(a: nn.Module, b: nn.Module) -> str:
    """'' when ``b`` is built like ``a`` (types, tensors, plain attributes), else what differs."""
    if type(a) is not type(b):
        return f"{type(b).__name__} instead of {type(a).__name__}"
    if repr(a) != repr(b):
        return f"{repr(b)!r} instead of {repr(a)!r}"
    sa, sb = a.state_dict(), b.state_dict()
    if list(sa) != list(sb):
        return f"state dict keys {list(sb)} instead of {list(sa)}"
    for key in sa:
        if sa[key].shape != sb[key].shape or sa[key].dtype != sb[key].dtype:
            return f"tensor {key} is {tuple(sb[key].shape)} {sb[key].dtype}"
    for (name, ma), (_, mb) in zip(a.named_modules(), b.named_modules()):
        pa, pb = _plain_state(ma), _plain_state(mb)
        for key in set(pa) | set(pb):
            try:
                same = pa.get(key, pa) == pb.get(key, pb)
            except (TypeError, RuntimeError):
                same = False
            if not same:
                return f"attribute {name or type(a).__name__}.{key} differs"
    return ""
