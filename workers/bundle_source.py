"""Standalone ``model.py`` source for any ``nn.Module`` built by a search space.

The generator walks the built network rather than knowing any space:

* a module from ``torch.nn`` becomes its constructor call (``nn.Conv2d(1, 8,
  kernel_size=(3, 3), ...)``), checked against the original: same type,
  same ``repr``, same tensors and the same plain attributes;
* a module of a project class becomes that class, re-emitted with the
  source of its methods (``forward`` and friends) and an ``__init__`` that
  takes its submodules, parameters, buffers and plain attributes by name.
  Globals the methods read are resolved one by one: torch and the standard
  library are imported, constants are written out, project helpers are
  re-emitted the same way; anything else is refused with the reason.

The result imports nothing but torch and the standard library. The bundle
builder then runs it, loads the trained weights and compares the logits with
the project's model, so a network this module cannot reproduce exactly is
reported, never shipped silently.
"""
from __future__ import annotations

import builtins
import dis
import importlib
import inspect
import textwrap
import types
from collections import OrderedDict

import torch
from torch import nn

from .bundle_nn import (_HOOK_DICTS, _MODULE_INTERNALS, SourceError, _allowed_module, _empty_tensor,
                        _qualified, _structure_difference, _tensor_literal, _torch_constructor, literal)


class _Generator:
    def __init__(self):
        self.imports: dict[str, None] = {"import torch": None, "from torch import nn": None}
        self.definitions: OrderedDict[str, str] = OrderedDict()  # global name -> source
        self.objects: dict[str, object] = {}  # global name -> the object it stands for
        self.in_progress: set[int] = set()

    # --- globals ---------------------------------------------------------
    def _claim(self, name: str, obj) -> bool:
        """Reserve a global name for ``obj``; False when it is already defined for it."""
        if name in ("torch", "nn"):
            raise SourceError(f"a project global shadows {name!r}")
        if name in self.objects:
            if self.objects[name] is obj:
                return False
            raise SourceError(f"two different objects are both called {name!r}")
        self.objects[name] = obj
        return True

    def _import_path(self, value) -> tuple[str, str] | None:
        """(module, attribute) from which ``value`` can be imported, if torch or stdlib."""
        candidates = []
        name = getattr(value, "__name__", None)
        if name:  # the public names first: torch.relu rather than torch._C._VariableFunctions.relu
            candidates += [("torch", name), ("torch.nn", name), ("torch.nn.functional", name)]
        module_name = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None) or name
        if module_name and qualname:
            candidates.append((module_name, qualname))
        for mod, attr in candidates:
            if not _allowed_module(mod) or "<" in attr or "." in attr:
                continue
            try:
                found = getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError):
                continue
            if found is value:
                return mod, attr
        return None

    def reference(self, name: str, value) -> None:
        """Make global ``name`` mean ``value`` in the generated file."""
        if name in self.objects and self.objects[name] is value:
            return
        if isinstance(value, types.ModuleType):
            if not _allowed_module(value.__name__):
                raise SourceError(f"the code uses module {value.__name__!r}, which is not torch or the standard library")
            if name == value.__name__:
                self.imports[f"import {name}"] = None
            elif value.__name__ == "torch.nn" and name == "nn":
                pass
            else:
                self.imports[f"import {value.__name__} as {name}"] = None
            self.objects[name] = value
            return
        path = self._import_path(value) if callable(value) else None
        if path is not None:
            mod, attr = path
            self.imports[f"from {mod} import {attr}" + (f" as {name}" if attr != name else "")] = None
            self.objects[name] = value
            return
        if isinstance(value, type):
            self.emit_class(value)
            if value.__name__ != name and self._claim(name, value):
                self.definitions[name] = f"{name} = {value.__name__}"
            return
        if isinstance(value, types.FunctionType):
            self.emit_function(name, value)
            return
        try:
            text = literal(value)
        except SourceError:
            raise SourceError(f"global {name!r} ({type(value).__name__}) is neither torch, the standard "
                              f"library nor a constant") from None
        if self._claim(name, value):
            self.definitions[name] = f"{name} = {text}"

    def resolve_globals(self, func) -> None:
        """Define every global that ``func`` reads."""
        if func.__code__.co_freevars:
            raise SourceError(f"{func.__qualname__} is a closure; its captured values cannot be written out")
        for name in sorted(_global_names(func.__code__)):
            if name in func.__globals__:
                self.reference(name, func.__globals__[name])
            elif not hasattr(builtins, name):
                raise SourceError(f"{func.__qualname__} reads {name!r}, which is not defined")

    # --- functions and classes ---------------------------------------------
    def emit_function(self, name: str, func) -> None:
        if not self._claim(name, func):
            return
        if func.__name__ != name or func.__name__ == "<lambda>":
            raise SourceError(f"{name!r} is a lambda or an alias; only plain functions can be copied")
        self.resolve_globals(func)
        self.definitions[name] = _source_of(func)

    def emit_class(self, cls: type) -> None:
        if _allowed_module(cls.__module__):
            raise SourceError(f"internal: {cls.__qualname__} is importable, not emitted")
        name = cls.__name__
        if "<locals>" in cls.__qualname__:
            raise SourceError(f"{cls.__qualname__} is defined inside a function")
        if not self._claim(name, cls):
            return
        if id(cls) in self.in_progress:
            return
        self.in_progress.add(id(cls))
        bases = []
        for base in cls.__bases__:
            if base is object:
                continue
            path = self._import_path(base)
            if path is not None:
                bases.append(_qualified(base, path, self))
            else:
                self.emit_class(base)
                bases.append(base.__name__)
        body = []
        if cls.__doc__:
            doc = inspect.cleandoc(cls.__doc__)
            body.append(f'"""{doc}"""' if '"""' not in doc and not doc.endswith('"') and "\\" not in doc
                        else repr(doc))
        is_module = issubclass(cls, nn.Module)
        if is_module:
            body.append(_FIELDS_INIT)
        for attr, value in cls.__dict__.items():
            if attr.startswith("__") and attr.endswith("__"):
                continue
            func = value
            if isinstance(value, (staticmethod, classmethod)):
                func = value.__func__
            elif isinstance(value, property):
                if value.fset is not None or value.fdel is not None:
                    raise SourceError(f"{name}.{attr} is a property with a setter")
                func = value.fget
            if isinstance(func, types.FunctionType):
                self.resolve_globals(func)
                body.append(_source_of(func))
                continue
            try:
                body.append(f"{attr} = {literal(value)}")
            except SourceError:
                raise SourceError(f"class attribute {name}.{attr} ({type(value).__name__}) "
                                  f"cannot be written out") from None
        if not body:
            body.append("pass")
        header = f"class {name}({', '.join(bases)}):" if bases else f"class {name}:"
        self.definitions[name] = header + "\n" + "\n\n".join(textwrap.indent(part, "    ") for part in body)

    # --- module instances -----------------------------------------------------
    def module_expr(self, module: nn.Module, indent: int = 1) -> str:
        cls = type(module)
        if _allowed_module(cls.__module__) or self._import_path(cls) is not None:
            if cls in (nn.Sequential, nn.ModuleList, nn.ModuleDict):
                return self._container_expr(module, indent)
            return self._torch_module_expr(module, indent)
        return self._custom_module_expr(module, indent)

    def _children(self, module, indent):
        pad = "    " * (indent + 1)
        out = []
        for name, child in module._modules.items():
            if child is None:
                raise SourceError(f"{type(module).__name__} has an empty child slot {name!r}")
            out.append((name, self.module_expr(child, indent + 1), pad))
        return out

    def _container_expr(self, module, indent):
        _check_plain_container(module)
        children = self._children(module, indent)
        close = "    " * indent
        if isinstance(module, nn.ModuleDict):
            items = "".join(f"{pad}({name!r}, {expr}),\n" for name, expr, pad in children)
            return f"nn.ModuleDict([\n{items}{close}])"
        numbered = [name for name, _, _ in children] == [str(i) for i in range(len(children))]
        if isinstance(module, nn.ModuleList):
            if not numbered:
                raise SourceError("a ModuleList with non-numeric keys")
            items = "".join(f"{pad}{expr},\n" for _, expr, pad in children)
            return f"nn.ModuleList([\n{items}{close}])"
        if numbered:
            if not children:
                return "nn.Sequential()"
            items = "".join(f"{pad}{expr},\n" for _, expr, pad in children)
            return f"nn.Sequential(\n{items}{close})"
        self.imports["from collections import OrderedDict"] = None
        items = "".join(f"{pad}({name!r}, {expr}),\n" for name, expr, pad in children)
        return f"nn.Sequential(OrderedDict([\n{items}{close}]))"

    def _torch_module_expr(self, module, indent):
        _check_no_hooks(module)
        problem = ""
        for short in (True, False):  # the short spelling when it builds the same module
            expr = _torch_constructor(module, self, indent, short)
            problem = _structure_difference(module, _evaluate(expr, self))
            if not problem:
                return expr
        raise SourceError(f"{type(module).__name__} cannot be rebuilt from its constructor: {problem}")

    def _custom_module_expr(self, module, indent):
        _check_no_hooks(module)
        cls = type(module)
        self.emit_class(cls)
        pad = "    " * (indent + 1)
        fields = []
        for name, child in module._modules.items():
            if child is None:
                raise SourceError(f"{cls.__name__}.{name} is an empty child slot")
            fields.append(f"{pad}{name}={self.module_expr(child, indent + 1)},\n")
        for name, param in module._parameters.items():
            if param is None:
                fields.append(f"{pad}{name}=None,\n")
                continue
            grad = "" if param.requires_grad else ", requires_grad=False"
            fields.append(f"{pad}{name}=nn.Parameter({_empty_tensor(param)}{grad}),\n")
        for name, buf in module._buffers.items():
            persistent = name not in module._non_persistent_buffers_set
            if buf is None:
                fields.append(f"{pad}{name}=None,\n")
            elif persistent:
                fields.append(f"{pad}{name}=nn.Buffer({_empty_tensor(buf)}),\n")
            else:  # not in the state dict: its values must travel in the source
                fields.append(f"{pad}{name}=nn.Buffer({_tensor_literal(buf, name)}, persistent=False),\n")
        for name, value in module.__dict__.items():
            if name in _MODULE_INTERNALS:
                continue
            fields.append(f"{pad}{name}={self.value_expr(cls.__name__ + '.' + name, value)},\n")
        if not fields:
            return f"{cls.__name__}()"
        return f"{cls.__name__}(\n{''.join(fields)}{'    ' * indent})"

    def value_expr(self, where: str, value) -> str:
        """Source of a plain attribute value of a module."""
        if isinstance(value, torch.Tensor):
            return _tensor_literal(value, where)
        if isinstance(value, nn.Module):
            raise SourceError(f"{where} holds a module outside the module tree")
        if callable(value) and not isinstance(value, type):
            path = self._import_path(value)
            if path is None:
                raise SourceError(f"{where} holds a callable that is not from torch or the standard library")
            return _qualified(value, path, self)
        if isinstance(value, type):
            path = self._import_path(value)
            if path is None:
                raise SourceError(f"{where} holds the project class {value.__name__}")
            return _qualified(value, path, self)
        try:
            return literal(value)
        except SourceError as exc:
            raise SourceError(f"{where}: {exc}") from None


_FIELDS_INIT = '''def __init__(self, **fields):
    # Generated: submodules, parameters, buffers and settings arrive by name.
    nn.Module.__init__(self)
    for name, value in fields.items():
        setattr(self, name, value)'''


def _global_names(code) -> set[str]:
    names = set()
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
            names.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _source_of(func) -> str:
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError) as exc:
        raise SourceError(f"the source of {func.__qualname__} is not available: {exc}") from None
    return textwrap.dedent(source).rstrip()


def _check_no_hooks(module):
    for key in _HOOK_DICTS:
        if getattr(module, key, None):
            raise SourceError(f"{type(module).__name__} has {key.strip('_').replace('_', ' ')} registered")
    if hasattr(module, "parametrizations"):
        raise SourceError(f"{type(module).__name__} has parametrizations (e.g. weight norm)")


def _check_plain_container(module):
    _check_no_hooks(module)
    extra = [k for k in module.__dict__ if k not in _MODULE_INTERNALS]
    if module._parameters or module._buffers or extra:
        raise SourceError(f"a {type(module).__name__} with its own state")


def _evaluate(expr: str, gen: _Generator):
    namespace = {"torch": torch, "nn": nn}
    exec("\n".join(gen.imports), namespace)  # noqa: S102 - our own generated imports
    return eval(expr, namespace)  # noqa: S307 - our own generated expression


# --- the file ---------------------------------------------------------------

def _check_imports(source: str) -> None:
    import ast

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""]
        else:
            continue
        for mod in mods:
            if not _allowed_module(mod):
                raise SourceError(f"the generated code would import {mod!r}")


def model_source(model: nn.Module, *, docstring: str, main: str = "") -> str:
    """The text of a ``model.py`` that defines ``build_model()`` with torch alone.

    Raises SourceError, with a reason a person can read, when ``model``
    holds something that cannot be written out.
    """
    gen = _Generator()
    expr = gen.module_expr(model, indent=1)
    build = ('def build_model() -> nn.Module:\n'
             '    """The trained network\'s architecture with fresh weights; load model.pt into it."""\n'
             f'    return {expr}')
    parts = ['"""' + docstring.strip() + '\n"""',
             "from __future__ import annotations",
             "\n".join(sorted(gen.imports, key=lambda line: (not line.startswith("import"), line)))]
    parts += list(gen.definitions.values())
    parts.append(build)
    generated = "\n\n\n".join(parts) + "\n"
    _check_imports(generated)  # ``main`` is fixed text; it may import optional packages lazily
    source = generated + ("\n\n" + main.strip() + "\n" if main else "")
    compile(source, "model.py", "exec")
    return source
