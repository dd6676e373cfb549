"""Standalone ``model.py`` for a network built by a search space.

The bundle ships the search-space modules themselves (``searches/nas``: space, chain,
cell, mobile, text, tokenizer; they import only torch and the standard library),
embedded as text in ``model.py``, and a small generated entry point that names the
space, its settings and the architecture:

    build_model() == SPACES[SPACE](**SPACE_SETTINGS).build(ARCH, INPUT_SHAPE, NUM_CLASSES)

So the bundle runs the very code that trained the network, not a re-creation of it.
The bundle builder then runs the file, loads the trained weights and compares the
logits with the project's model, so a network this cannot reproduce is reported,
never shipped silently.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

from torch import nn

from searches.nas.space import BUILT_FROM

NAS_DIR = Path(__file__).resolve().parent.parent / "searches" / "nas"
# The space modules in the order they import one another; each class a space is named by.
SPACE_MODULES = ("space", "tokenizer", "cell", "chain", "mobile", "text")
SPACE_CLASSES = {"chain": ("chain", "ChainSpace"), "cell": ("cell", "CellSpace"),
                 "mobile": ("mobile", "MobileSpace"), "text": ("text", "TextSpace")}
PACKAGE = "nasweb_space"


class SourceError(Exception):
    """The network cannot be written as torch-only code; the message says why."""


_LOADER = '''def _space_modules() -> dict:
    """The search-space modules above, as the package ``{package}`` (only while they load)."""
    import sys
    import types

    added, modules = [], {{}}
    try:
        package = types.ModuleType("{package}")
        package.__path__ = []
        for name in ["{package}"] + ["{package}." + m for m in _SOURCES]:
            if name not in sys.modules:
                added.append(name)
        sys.modules.setdefault("{package}", package)
        for name, text in _SOURCES.items():
            module = types.ModuleType("{package}." + name)
            module.__package__ = "{package}"
            sys.modules[module.__name__] = module
            exec(compile(text, "{package}/" + name + ".py", "exec"), module.__dict__)
            modules[name] = module
    finally:
        for name in added:
            sys.modules.pop(name, None)
    return modules


def build_model() -> nn.Module:
    """The trained network's architecture with fresh weights; load model.pt into it."""
    module, cls = SPACE_CLASS
    space = getattr(_space_modules()[module], cls)(**SPACE_SETTINGS)
    return space.build(ARCH, INPUT_SHAPE, NUM_CLASSES)'''


def _literal(value, what: str) -> str:
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise SourceError(f"the {what} {value!r} cannot be written as a Python literal")
    return text


def check_imports(name: str, source: str) -> None:
    """Refuse a shipped module that imports anything but torch, the standard library and
    its sibling space modules."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1 and (node.module or "") in SPACE_MODULES:
                continue
            mods = ["." * node.level + (node.module or "")]
        else:
            continue
        for mod in mods:
            top = mod.split(".")[0]
            if top != "torch" and top not in sys.stdlib_module_names:
                raise SourceError(f"the space module {name}.py imports {mod!r}")


def space_sources() -> dict[str, str]:
    """The text of each shipped space module, checked."""
    sources = {name: (NAS_DIR / f"{name}.py").read_text() for name in SPACE_MODULES}
    for name, text in sources.items():
        check_imports(name, text)
    return sources


def model_source(model: nn.Module, *, docstring: str, main: str = "") -> str:
    """The text of a ``model.py`` that defines ``build_model()`` with torch alone.

    Raises SourceError, with a reason a person can read, when ``model`` was not built by
    a search space (the one thing the file knows how to rebuild).
    """
    built = BUILT_FROM.get(model)
    if built is None:
        raise SourceError(f"the {type(model).__name__} was not built by a search space, so its "
                          f"architecture is not known")
    space, settings, arch, input_shape, num_classes = built
    if space not in SPACE_CLASSES:
        raise SourceError(f"the {space} space is not shipped in bundles")
    sources = space_sources()
    parts = ['"""' + docstring.strip() + '\n"""',
             "from __future__ import annotations",
             "import torch\nfrom torch import nn",
             f"SPACE_CLASS = {SPACE_CLASSES[space]!r}\n"
             f"SPACE_SETTINGS = {_literal(settings, 'space settings')}\n"
             f"ARCH = {_literal(arch, 'architecture')}\n"
             f"INPUT_SHAPE = {_literal(input_shape, 'input shape')}\n"
             f"NUM_CLASSES = {_literal(num_classes, 'number of classes')}",
             "# The search-space modules of NASWeb, as they are (they import only torch).\n"
             "_SOURCES = {\n" + "".join(f"    {name!r}: {text!r},\n" for name, text in sources.items()) + "}",
             _LOADER.format(package=PACKAGE)]
    source = "\n\n\n".join(parts) + "\n" + ("\n\n" + main.strip() + "\n" if main else "")
    compile(source, "model.py", "exec")
    return source
