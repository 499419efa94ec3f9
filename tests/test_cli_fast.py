"""The commands that never touch TensorFlow: validate, list, schema, --help, --version.

In-process through Typer's CliRunner; stderr is kept apart from stdout (``result.stderr``) and also
mixed into ``result.output``, as a terminal shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fmtrain import __version__
from fmtrain.cli import app
from fmtrain.config import load_config, validate_config
from fmtrain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def bad_config(tmp_path, monkeypatch) -> Path:
    """A config with a misspelt section, in an otherwise empty working directory."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndata: {source: digits}\nmodel: {type: mlp}\ntrian: {epochs: 3}\n")
    return path


# --------------------------------------------------------------------------- --version, --help


def test_version(runner):
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.output.strip() == f"fmtrain {__version__}"


def test_help_lists_the_commands(runner):
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    for command in ("fit", "eval", "validate", "report", "list", "schema"):
        assert command in result.output


def test_shell_completion_completes_command_names():
    """`fmtrain --install-completion` installs what `--show-completion` prints; the script asks the
    program itself, which must answer with the commands that start with what was typed."""
    from typer.completion import get_completion_script

    # What `--show-completion` prints for bash; called directly because the flag itself detects the
    # shell from the parent processes, and a CI runner's may be none.
    script = get_completion_script(prog_name="fmtrain", complete_var="_FMTRAIN_COMPLETE", shell="bash")
    assert "_fmtrain_completion" in script and "complete " in script
    env = {**os.environ, "COMP_WORDS": "fmtrain va", "COMP_CWORD": "1", "_FMTRAIN_COMPLETE": "complete_bash"}
    answer = subprocess.run([sys.executable, "-m", "fmtrain"], env=env, capture_output=True, text=True).stdout
    assert answer.split() == ["validate"]


def test_the_readme_commands_table_names_every_command():
    """Each command the app registers has a row in the README's table of commands, and vice versa."""
    import typer.main

    group = typer.main.get_command(app)
    commands = {name for name, command in group.commands.items() if not command.hidden}
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("`fmtrain ", 1)[1].split()[0].rstrip("`") for line in table.splitlines()
            if line.startswith("| `fmtrain ") and not line.startswith("| `fmtrain --")}
    assert rows == commands


def test_help_shows_flags_without_a_value(runner):
    result = runner.invoke(app, ["--help"])

    assert "<bool>" not in result.output


# --------------------------------------------------------------------------- validate


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_validate_shipped_config(runner, path):
    cfg = load_config(path)

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 0, result.output
    assert f"{path}: ok" in result.stdout
    assert cfg.model.type in result.stdout and cfg.data.source in result.stdout


def test_validate_bad_config_exits_2_with_one_line_on_stderr(runner, bad_config):
    before = sorted(p.name for p in bad_config.parent.iterdir())

    result = runner.invoke(app, ["validate", str(bad_config)])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {bad_config}:4:1: trian: unknown key 'trian'")
    assert "did you mean 'train'" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in bad_config.parent.iterdir()) == before  # nothing written


def test_validate_bad_config_with_debug_raises_the_error(runner, bad_config):
    result = runner.invoke(app, ["validate", str(bad_config), "--debug"])

    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)


def test_validate_missing_file_exits_2(runner, tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.yaml")])

    assert result.exit_code == 2
    assert "absent.yaml: config file not found" in result.stderr


def test_validate_applies_overrides(runner):
    path = ROOT / "configs" / "digits_mlp.yaml"

    # Replacing the whole model section drops the file's mlp keys, which sequential would refuse.
    result = runner.invoke(app, ["validate", str(path), "--set", "train.epochs=3",
                                 "-s", "model={type: sequential, layers: [{Dense: {units: 10}}]}"])

    assert result.exit_code == 0, result.output
    assert "sequential model on digits, 3 epochs" in result.stdout


def test_validate_bad_override_exits_2_naming_it(runner):
    result = runner.invoke(app, ["validate", str(ROOT / "configs" / "digits_mlp.yaml"), "--set", "train.epoch=3"])

    assert result.exit_code == 2
    assert "--set train.epoch=3" in result.stderr and "did you mean 'epochs'" in result.stderr


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_validate_show_prints_yaml_that_loads_back(runner, path):
    result = runner.invoke(app, ["validate", str(path), "--show"])

    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert validate_config(shown) == load_config(path)
    assert "steps_per_execution" in shown["train"]  # defaults are written out


def test_validate_show_reflects_overrides(runner):
    result = runner.invoke(app, ["validate", str(ROOT / "configs" / "mnist_mlp.yaml"), "--show",
                                 "--set", "data.batch_size=128"])

    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["data"]["batch_size"] == 128


# --------------------------------------------------------------------------- list, schema


@pytest.mark.parametrize(
    "what, names",
    [
        ("models", ["sequential", "mlp", "custom"]),
        ("sources", ["digits", "iris", "mnist", "csv", "npz"]),
        ("preprocess", ["rescale", "standardize", "one_hot"]),
        ("metrics", ["accuracy", "f1", "top_k"]),
    ],
)
def test_list_shows_the_registered_names(runner, what, names):
    result = runner.invoke(app, ["list", what])

    assert result.exit_code == 0, result.output
    for name in names:
        assert name in result.stdout


@pytest.mark.parametrize("what, hint", [("nonsense", ""), ("model", "did you mean 'models'")])
def test_list_of_something_unknown_exits_2(runner, what, hint):
    result = runner.invoke(app, ["list", what])

    assert result.exit_code == 2
    assert f"list {what}: expected one of models, sources, preprocess, metrics" in result.stderr
    assert hint in result.stderr


def _schema(runner) -> dict:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_schema_is_json_with_the_config_sections(runner):
    schema = _schema(runner)

    assert {"name", "data", "model", "train"} <= set(schema["properties"])
    data = schema["$defs"]["DataConfig"]["properties"]
    assert "source" in data and data["source"]["description"]  # field docs reach editors


def _accepts_a_string(schema: dict, node: dict) -> bool:
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    kinds = node.get("type")
    if kinds == "string" or (isinstance(kinds, list) and "string" in kinds):
        return True
    return any(_accepts_a_string(schema, n) for n in node.get("anyOf", []) + node.get("oneOf", []))



def test_schema_accepts_loss_and_metrics_as_written_in_the_shipped_configs(runner):
    schema = _schema(runner)

    assert _accepts_a_string(schema, schema["properties"]["loss"])  # loss: mse
    assert _accepts_a_string(schema, schema["properties"]["metrics"]["items"])  # metrics: [accuracy]


# --------------------------------------------------------------------------- no TensorFlow


def test_fast_commands_never_import_tensorflow():
    code = """
import json, sys
from fmtrain.cli import app
codes = {}
for args in (["--help"], ["--version"], ["validate", "configs/digits_mlp.yaml"], ["list", "models"], ["schema"]):
    try:
        codes[" ".join(args)] = app(args, prog_name="fmtrain", standalone_mode=False)
    except SystemExit as exc:
        codes[" ".join(args)] = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stderr
    assert "configs/digits_mlp.yaml: ok" in result.stdout
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(code in (0, None) for code in report["codes"].values()), report["codes"]
    assert report["heavy"] == []


@pytest.mark.parametrize("args, fragments", [
    (["fit", "--epochs", "3", "c.yaml"], ["fmtrain fit: no option --epochs", "--set train.epochs=3"]),
    (["fit", "--batch-size=64", "c.yaml"], ["--set data.batch_size=64"]),
    (["fit", "--lerning-rate", "1e-3", "c.yaml"], ["--set optimizer.learning_rate=1e-3"]),
    (["fit", "--expct", "x"], ["no option --expct", "did you mean '--expect'"]),
    (["evl"], ["no such command 'evl'", "eval"]),
    (["eval"], ["missing argument", "fmtrain eval --help"]),
    (["fit", "a.yaml", "b.yaml"], ["unexpected extra argument", "fmtrain fit --help"]),
], ids=["config-key", "config-key-with-equals", "misspelt-config-key", "misspelt-option", "misspelt-command",
        "missing-argument", "extra-argument"])
def test_usage_errors_are_one_line_with_the_fix(args, fragments):
    """Like every other error: one `error:` line, exit 2 — not a boxed panel; config keys point to --set."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_flags_are_shown_without_a_value():
    """`--overwrite <bool>` read as if it took a value, then refused one."""
    for command in ("fit", "eval", "validate"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "<bool>" not in result.output
        assert "--quiet" in result.output or command == "validate"


def test_cache_dir_and_clear(tmp_path, monkeypatch):
    """`fmtrain cache clear` deletes the decided compile plans and the cached JSON Schema, nothing else."""
    monkeypatch.setenv("FMTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    for relative in ("plans/a.json", "plans/b.json", "schema/c.json"):
        (tmp_path / "cache" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cache" / relative).write_text("{}")
    (tmp_path / "cache" / "keep.txt").write_text("not ours")
    assert CliRunner().invoke(app, ["cache", "dir"]).output.strip() == str(tmp_path / "cache")
    cleared = CliRunner().invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "removed 2 plans files, 1 schema file" in cleared.output
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*")) == ["keep.txt"]
    wrong = CliRunner().invoke(app, ["cache", "clr"])
    assert wrong.exit_code == 2 and "did you mean 'clear'" in wrong.output


@pytest.mark.parametrize("args", [["init", "--list"], ["--help"]], ids=["command-output", "help-page"])
def test_a_reader_that_went_away_ends_the_command_quietly_with_141(args):
    """`fmtrain init --list | head -5` printed "error: unexpected BrokenPipeError". The pipe's read end
    is closed before fmtrain writes, so the first write fails every time (with `head` it is a race).
    A command's own output goes through run_action; a help page through rich, which exits by itself."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "fmtrain", *args], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no traceback, no "Exception ignored … BrokenPipeError" at exit
    assert done.returncode == 141  # 128 + SIGPIPE, as the shell reports `git log | head`


def test_no_stdout_at_all_is_not_an_error(monkeypatch):
    """Started with stdout closed (`fmtrain schema >&-`), Python's sys.stdout is None: nothing to flush."""
    import typer

    from fmtrain.cli_kit import run_action

    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(typer.Exit) as ended:
        run_action(lambda: 0, debug=False)
    assert ended.value.exit_code == 0
