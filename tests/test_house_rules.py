"""House rules that a reviewer would otherwise have to remember: checked on every `make test`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fmtrain"
# Libraries that cost ~50 ms or more to import (measured with `python -X importtime`): a module
# that needs one only in some functions imports it there, so `fmtrain --help` and
# `fmtrain validate` stay fast. Everything else is imported at the top of the module.
HEAVY = {"tensorflow", "keras", "sklearn", "matplotlib", "jinja2", "PIL", "numpy", "pydantic", "rich",
         "keras_hub", "tensorflow_text", "optuna", "mlflow", "tf2onnx", "onnxruntime", "onnx", "pyarrow", "tensorboard"}


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return modules


MODULES = _modules()


def _top_level_imports(tree: ast.Module) -> set[str]:
    """What a module imports when it is imported (``if TYPE_CHECKING:`` blocks do not count)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _heavy(name: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether importing ``name`` imports a heavy library (itself, or through fmtrain modules)."""
    if name.split(".")[0] in HEAVY:
        return True
    if name not in MODULES or name in seen:
        return False
    seen = seen | {name}
    parts = name.split(".")
    parents = [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c imports a and a.b
    return any(_heavy(m, seen) for m in [*parents, *_top_level_imports(MODULES[name])])


def _lazy_package(name: str) -> bool:
    """A package whose names load their modules on first use (a module-level ``__getattr__``)."""
    tree = MODULES.get(name)
    return tree is not None and any(
        isinstance(node, ast.FunctionDef) and node.name == "__getattr__" for node in tree.body
    )


def _imports_heavy(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.Import):
        return any(_heavy(alias.name) for alias in node.names)
    # `from pkg import sub` imports the module pkg.sub; from a lazy package, the module behind the name.
    return (_heavy(node.module) or _lazy_package(node.module)
            or any(_heavy(f"{node.module}.{alias.name}") for alias in node.names))


def _function_imports(tree: ast.Module):
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                yield node


COMMAND_MODULES = {"fmtrain.cli"} | {name for name in MODULES if name.startswith("fmtrain.commands.")}


def _loaded_with(name: str, loaded: set[str]) -> set[str]:
    """The fmtrain modules importing ``name`` loads (top-level imports, parents, and the command
    modules that ``fmtrain.commands.register_all`` finds by listing its folder)."""
    if name not in MODULES or name in loaded:
        return loaded
    loaded.add(name)
    parts = name.split(".")
    following = {".".join(parts[:i]) for i in range(1, len(parts))} | _top_level_imports(MODULES[name])
    if name == "fmtrain.commands":
        following |= COMMAND_MODULES - {"fmtrain.cli"}
    for other in following:
        _loaded_with(other, loaded)
    return loaded


FOR_HELP = _loaded_with("fmtrain.cli", set())
"""What `fmtrain --help` loads of fmtrain."""


def _imported(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    return {node.module} | {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()


def _deferred_for_good_reason(module: str, node: ast.Import | ast.ImportFrom) -> bool:
    """A heavy library; in a command module, the machinery that runs the command (its import at the
    top would cost every `fmtrain --help`), when --help does not load it anyway; or a module that
    imports this one as it loads (the import at the top would be circular)."""
    if _imports_heavy(node):
        return True
    imported = _imported(node)
    if module in COMMAND_MODULES and not imported & FOR_HELP:
        return True
    return any(module in _loaded_with(name, set()) for name in imported)


def test_imports_inside_functions_are_only_for_heavy_modules():
    light = sorted(
        f"{name.replace('.', '/')}.py:{node.lineno}: {ast.unparse(node)}"
        for name, tree in MODULES.items()
        for node in _function_imports(tree)
        if not _deferred_for_good_reason(name, node)
    )
    assert not light, "move these imports to the top of their modules:\n" + "\n".join(light)


def test_the_cli_imports_no_heavy_library_for_help():
    """`fmtrain --help` and `--version` answer without TensorFlow, Keras, numpy or pydantic, and without
    the modules that run a command (what the command modules import inside their functions)."""
    deferred = {imported for name in COMMAND_MODULES for node in _function_imports(MODULES[name])
                for imported in _imported(node) if imported in MODULES and not _lazy_package(imported)}
    bodies = sorted(deferred - FOR_HELP | {"fmtrain.export", "fmtrain.tune"})
    code = ("import sys, fmtrain.cli; print(' '.join(sorted(m for m in sys.modules "
            f"if m.split('.')[0] in {sorted(HEAVY - {'jinja2', 'PIL', 'rich'})!r} or m in {bodies!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not loaded, f"importing fmtrain.cli loads {loaded}"
