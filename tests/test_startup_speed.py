"""`fmtrain validate`, `list`, `schema` and `--help` answer without numpy or TensorFlow (issue 10).

The speed target itself (< 0.3 s warm) is measured in benchmarks, not asserted here: a timed test
fails on a busy machine. These tests print the time and only bound it generously.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmtrain.config.base import StrictModel

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "tensorflow", "keras", "sklearn", "matplotlib", "PIL", "jinja2")

# Runs the console script's code in this interpreter and reports what it imported.
PROBE = """
import json, runpy, sys, time
args, heavy_names = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
sys.argv = ["fmtrain", *args]
start = time.perf_counter()
code = 0
try:
    runpy.run_module("fmtrain.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & heavy_names)
print(json.dumps({"code": code, "heavy": heavy, "seconds": time.perf_counter() - start}), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [
    ["validate", "configs/digits_mlp.yaml"],
    ["validate", "configs/digits_mlp.yaml", "--show"],
    ["list", "models"],
    ["list", "sources"],
    ["schema"],
    ["--help"],
])
def test_fast_commands_import_no_numpy_or_tensorflow(args, tmp_path):
    for attempt in ("first", "second"):  # the second `schema` reads its cache
        report, _ = _probe(args, tmp_path)
        print(f"fmtrain {' '.join(args)} ({attempt} run): {report['seconds']:.3f} s")
        assert report["code"] == 0
        assert report["heavy"] == [], f"fmtrain {' '.join(args)} imports {report['heavy']}"
        assert report["seconds"] < 10, "a sanity bound only; the target (< 0.3 s) is in benchmarks"


def _probe(args: list[str], cache: Path) -> tuple[dict, subprocess.CompletedProcess]:
    env = {**os.environ, "FMTRAIN_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.stderr.strip(), done.stdout
    return json.loads(done.stderr.strip().splitlines()[-1]), done


def test_schema_is_built_once_then_read_from_the_cache(tmp_path):
    from fmtrain.config.schema import Config

    built = json.dumps(Config.model_json_schema(mode="validation"), indent=2) + "\n"
    first, printed = _probe(["schema"], tmp_path)
    assert printed.stdout == built
    cached = list((tmp_path / "schema").glob("*.json"))
    assert len(cached) == 1 and cached[0].read_text(encoding="utf-8") + "\n" == built

    cached[0].write_text('{"from": "the cache"}', encoding="utf-8")
    _, again = _probe(["schema"], tmp_path)
    assert again.stdout == '{"from": "the cache"}\n'


def test_list_is_built_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """`fmtrain list` needs every component imported to know their names; the cache spares that."""
    from typer.testing import CliRunner

    from fmtrain import components
    from fmtrain.cli import app

    monkeypatch.setenv("FMTRAIN_CACHE_DIR", str(tmp_path))
    assert CliRunner().invoke(app, ["list", "sources"]).exit_code == 0
    cached = list((tmp_path / "schema").glob("*.lists.json"))
    assert len(cached) == 1
    stored = json.loads(cached[0].read_text(encoding="utf-8"))
    assert stored == {kind: [[entry.name, entry.summary] for entry in registry.entries()]
                      for kind, registry in components.listed().items()}

    cached[0].write_text(json.dumps({**stored, "sources": [["from_the_cache", "only the cache has it"]]}))
    again = CliRunner().invoke(app, ["list", "sources"], env={"COLUMNS": "200"})
    assert "from_the_cache" in again.output and "digits" not in again.output

    cached[0].write_text("{not json")  # a broken cache is rebuilt, not shown
    rebuilt = CliRunner().invoke(app, ["list", "sources"], env={"COLUMNS": "200"})
    assert rebuilt.exit_code == 0 and "digits" in rebuilt.output and "from_the_cache" not in rebuilt.output
    assert json.loads(cached[0].read_text(encoding="utf-8")) == stored


def test_schema_without_a_writable_cache_still_prints(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    report, printed = _probe(["schema"], blocked / "cache")
    assert report["code"] == 0
    assert json.loads(printed.stdout)["title"] == "Config"


def test_a_bad_config_is_still_reported_without_numpy(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("data: {source: digits, batch_sise: 32}\nmodel: {type: mlp}\n")
    report, done = _probe(["validate", str(config)], tmp_path)
    assert report["code"] == 2
    assert "batch_sise" in done.stderr and "batch_size" in done.stderr
    assert report["heavy"] == []


def _written_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of ``cls`` as Python's parser sees it (the reference)."""
    node = ast.parse(inspect.getsource(inspect.getmodule(cls)))
    for part in cls.__qualname__.split("."):
        node = next(n for n in ast.walk(node) if isinstance(n, ast.ClassDef) and n.name == part)
    docs = {}
    for statement, following in zip(node.body, node.body[1:], strict=False):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _config_classes() -> list[type]:
    import fmtrain.components  # noqa: F401  (registers every params model)
    import fmtrain.config.schema  # noqa: F401

    seen, todo = [], [StrictModel]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("fmtrain.") and "<" not in cls.__qualname__:
            try:
                inspect.getsource(cls)
            except (OSError, TypeError):  # made by create_model: its fields come from its bases
                continue
            seen.append(cls)
    return seen


def test_every_field_docstring_becomes_its_description():
    """StrictModel reads field docstrings itself (cheaper than pydantic's reader); none may be missed."""
    classes = _config_classes()
    assert len(classes) > 40
    wrong = []
    for cls in classes:
        for name, doc in _written_docstrings(cls).items():
            field = cls.model_fields.get(name)
            if field is not None and field.description != doc:
                wrong.append(f"{cls.__module__}.{cls.__qualname__}.{name}: {field.description!r} != {doc!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("user_value, expected", [(None, "__all__"), ("logfire", "logfire")])
def test_the_command_turns_off_pydantic_plugins_unless_the_user_chose(user_value, expected):
    """The README says so: pydantic's plugin scan cost a fifth of `validate`; a user's own setting stays."""
    import subprocess
    import sys

    code = ("import os, fmtrain.cli as cli, sys\n"
            "sys.argv = ['fmtrain', '--version']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('PYDANTIC_DISABLE_PLUGINS'))")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if user_value is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = user_value
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
