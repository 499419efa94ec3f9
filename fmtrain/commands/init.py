"""``fmtrain init [TEMPLATE] [PATH]``: a commented starter config, copied from the shipped ones.

The templates are package data (``fmtrain/templates/``, kept identical to the repository's
``configs/`` by ``tests/test_init.py``), so an installed fmtrain has them without a clone.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, flag, run_action
from fmtrain.errors import ConfigError
from fmtrain.fileio import atomic_write_text
from fmtrain.registry import did_you_mean

DEFAULT_TEMPLATE = "digits_mlp"
_NAME_LINE = re.compile(r"^name: .*$", re.M)
_EXTENDS_LINE = re.compile(r"^extends: (\S+)\s*$", re.M)
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # config.schema.NAME_PATTERN, without importing pydantic


def register(app: typer.Typer) -> None:
    app.command("init", cls=Command)(init)


def templates() -> dict[str, str]:
    """Template name → its text, from the installed package."""
    folder = resources.files("fmtrain") / "templates"
    return {entry.name.removesuffix(".yaml"): entry.read_text(encoding="utf-8")
            for entry in sorted(folder.iterdir(), key=lambda e: e.name) if entry.name.endswith(".yaml")}


def summary(text: str) -> str:
    """A template's first comment line: what it trains."""
    first = next((line for line in text.splitlines() if line.startswith("#")), "# ")
    return first.lstrip("# ").strip()


def init(
    template: Annotated[str, typer.Argument(help="A shipped config to start from (see --list).")] = DEFAULT_TEMPLATE,
    path: Annotated[Path | None, typer.Argument(help="The file to write, or a folder for TEMPLATE.yaml "
                                                "(default: TEMPLATE.yaml here).",
                                                show_default=False)] = None,
    force: Annotated[bool, flag("--force", help="Overwrite PATH if it exists.")] = False,
    list_: Annotated[bool, flag("--list", help="List the templates and exit.")] = False,
    debug: Debug = False,
) -> None:
    """Write a commented starter config from a shipped template; it validates as written."""

    def action() -> int:
        shipped = templates()
        if list_:
            width = max(map(len, shipped))
            for name, text in shipped.items():
                typer.echo(f"{name:<{width}}  {summary(text)}")
            return 0
        if template not in shipped:
            hint = (f"; the path comes second: fmtrain init {DEFAULT_TEMPLATE} {template}"
                    if template.endswith((".yaml", ".yml")) else "")
            raise ConfigError(f"init {template}: no such template{did_you_mean(template, shipped)}{hint}; "
                              f"templates: {', '.join(shipped)}")
        target = Path(f"{template}.yaml")
        if path is not None:
            target = path / target if path.is_dir() else path
        written = write_template(template, target, shipped, force)
        from fmtrain.config import load_config

        cfg = load_config(target)  # the promise: what init writes validates
        for extra in written[1:]:
            typer.echo(f"wrote {extra} (the config {target.name} extends)")
        typer.echo(f"wrote {target} from template {template}: {cfg.model.type} model on {cfg.data.source}; "
                   f"train it with: fmtrain fit {target}")
        return 0

    run_action(action, debug)


def write_template(template: str, target: Path, shipped: dict[str, str], force: bool) -> list[Path]:
    """Write ``template`` to ``target`` (its ``name:`` set to the file's stem), and the shipped file it
    ``extends:`` beside it when that is missing. Returns the files written, ``target`` first.

    Raises:
        ConfigError: a file is in the way (without ``force``), or ``target`` is a directory.
    """
    text = shipped[template]
    if _RUN_NAME.match(target.stem) and target.stem != template:
        text = _NAME_LINE.sub(f"name: {target.stem}", text, count=1)
    files = [(target, text)]
    base = _EXTENDS_LINE.search(text)
    if base and base.group(1).removesuffix(".yaml") in shipped:
        base_path = target.parent / base.group(1)
        base_text = shipped[base.group(1).removesuffix(".yaml")]
        if not (base_path.is_file() and base_path.read_text(encoding="utf-8") == base_text):
            files.append((base_path, base_text))
    for file, _ in files:
        if file.is_dir():
            raise ConfigError(f"init: {file} is a directory; name another file to write")
        if file.exists() and not force:
            raise ConfigError(f"init: {file} exists; choose another PATH or overwrite it with --force")
    for file, content in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(file, content)
    return [file for file, _ in files]
