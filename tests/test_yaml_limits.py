"""YAML that would exhaust the machine is refused, by name, before anything big is built.

A 300-byte file of nested aliases (nine ``*a`` in ``b``, nine ``*b`` in ``c``, …) stands for 9**7
values; the old loader walked every copy and ran for minutes past 3.7 GB. Aliases may now copy at
most MAX_ALIAS_VALUES values in all (Kubernetes fixed the same attack, CVE-2019-11253).

The refusal tests run under a guard, so a regression fails the test instead of the machine: the
address space may grow by GUARD_MB at most and the call may take GUARD_S seconds.
"""

from __future__ import annotations

import contextlib
import re
import resource
import signal
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.config import load_config
from fmtrain.config.yaml_marks import MAX_ALIAS_VALUES, MAX_DEPTH, parse_yaml
from fmtrain.errors import ConfigError

GUARD_MB = 768
GUARD_S = 20
NAMES = "abcdefghijklmnop"


def _bomb(levels: int) -> str:
    """``a: &a [x × 9]``, ``b: &b [*a × 9]``, … and ``name: *<last>``: 9**levels values."""
    lines = [f"a: &a [{', '.join(['x'] * 9)}]"]
    for previous, name in zip(NAMES[: levels - 1], NAMES[1:levels], strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    lines.append(f"name: *{NAMES[levels - 1]}")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int) -> str:
    """The same with merge keys: ``b: &b {<<: [*a × 9]}``; PyYAML's own merging copies 9**levels pairs."""
    lines = ["a: &a {" + ", ".join(f"k{i}: x" for i in range(9)) + "}"]
    for previous, name in zip(NAMES[: levels - 1], NAMES[1:levels], strict=True):
        lines.append(f"{name}: &{name} {{<<: [{', '.join(['*' + previous] * 9)}], {name}: x}}")
    lines.append(f"name: *{NAMES[levels - 1]}")
    return "\n".join(lines) + "\n"


class _TooSlow(Exception):
    pass


class _Usage:
    seconds = 0.0
    peak_mb = 0.0


@contextlib.contextmanager
def _guard() -> Iterator[_Usage]:
    """Measure time and peak Python memory; stop a runaway after GUARD_S seconds or GUARD_MB more memory."""
    usage = _Usage()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + GUARD_MB * 2**20
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    def too_slow(signum, frame):
        raise _TooSlow(f"still running after {GUARD_S} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(GUARD_S)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - start
        usage.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# --------------------------------------------------------------------------- alias bombs


@pytest.mark.parametrize("levels", [7, 8])
def test_alias_bomb_is_refused_fast_naming_the_alias(runner, tmp_path, levels):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels))

    with _guard() as usage:
        result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line
    assert re.fullmatch(rf"error: {re.escape(str(path))}:\d+:\d+: alias \*[a-h] .*", line), line
    assert f"{MAX_ALIAS_VALUES:,}" in line
    assert usage.seconds < 3, usage.seconds
    assert usage.peak_mb < 50, usage.peak_mb


def test_merge_key_bomb_is_refused_naming_the_alias(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_merge_bomb(8))

    with _guard() as usage, pytest.raises(ConfigError) as info:
        load_config(path)

    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: alias \*[a-h] ", str(info.value)), str(info.value)
    assert usage.seconds < 3 and usage.peak_mb < 50, (usage.seconds, usage.peak_mb)


def test_alias_bomb_in_a_set_value_is_refused_naming_the_override(runner):
    anchors = ["&a [" + ", ".join(["x"] * 9) + "]"]
    for previous, name in zip(NAMES[:7], NAMES[1:8], strict=True):
        anchors.append(f"&{name} [{', '.join(['*' + previous] * 9)}]")
    override = f"name=[{', '.join(anchors)}]"
    config = Path(__file__).resolve().parents[1] / "configs" / "digits_mlp.yaml"

    with _guard() as usage:
        result = runner.invoke(app, ["validate", str(config), "--set", override])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: --set {override}: alias *"), result.stderr
    assert usage.seconds < 3 and usage.peak_mb < 50, (usage.seconds, usage.peak_mb)


def test_the_limit_counts_what_aliases_copy_not_what_is_written(tmp_path):
    values = "[" + ", ".join(map(str, range(99))) + "]"  # a list node and 99 numbers: 100 values a copy
    uses = MAX_ALIAS_VALUES // 100

    data, _ = parse_yaml(f"v: &v {values}\nuses: [{', '.join(['*v'] * uses)}]\n", "ok.yaml")
    assert len(data["uses"]) == uses and data["uses"][-1][-1] == 98

    with pytest.raises(ConfigError, match=r"^over\.yaml:2:\d+: alias \*v "):
        parse_yaml(f"v: &v {values}\nuses: [{', '.join(['*v'] * (uses + 1))}]\n", "over.yaml")

    written, _ = parse_yaml("x: [" + ", ".join(["1"] * (MAX_ALIAS_VALUES + 1)) + "]\n", "long.yaml")
    assert len(written["x"]) == MAX_ALIAS_VALUES + 1


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ndata: {source: digits}\nmodel: {type: mlp}\nmetrics: &m [accuracy, *m]\n")

    with _guard():
        message = _error(path)

    assert message.startswith(f"{path}:4:") and "alias *m is used inside its own anchor" in message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000])  # 1,000: past Python's recursion limit in PyYAML
def test_deep_nesting_is_refused_naming_the_place(tmp_path, depth):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ndata: {source: digits}\nmodel: {type: mlp}\nx: " + "[" * depth + "]" * depth + "\n")

    message = _error(path)

    assert message == f"{path}:4:{MAX_DEPTH + 3}: nested deeper than {MAX_DEPTH} levels"


def test_deep_nesting_through_aliases_is_refused():
    nested = "[" * 60 + "]" * 60

    with pytest.raises(ConfigError, match=rf"^c\.yaml:2:64: alias \*a nests the config deeper than {MAX_DEPTH} levels"):
        parse_yaml(f"a: &a {nested}\nb: {'[' * 60}*a{']' * 60}\n", "c.yaml")


# --------------------------------------------------------------------------- aliases people use


def test_a_config_with_a_few_aliases_and_merge_keys_still_loads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("""\
name: t
data: {source: digits, validation_split: 0.2}
model:
  type: sequential
  layers:
    - Dense: &hidden {units: 64, activation: relu}
    - Dense: &narrow {<<: *hidden, units: 32}
    - Dense: *narrow
    - Dense: {<<: [*narrow, *hidden], name: last}
train:
  early_stopping: &stop {monitor: val_loss, patience: 3}
  checkpoint: {every_epochs: 2, keep_last: 3}
""")

    cfg = load_config(path)

    assert cfg.model.layers == [
        {"Dense": {"units": 64, "activation": "relu"}},
        {"Dense": {"units": 32, "activation": "relu"}},
        {"Dense": {"units": 32, "activation": "relu"}},  # an aliased mapping with a merge key, used again
        {"Dense": {"units": 32, "activation": "relu", "name": "last"}},  # the first merged mapping wins
    ]
    assert cfg.train.early_stopping.patience == 3


def test_merged_keys_point_at_the_mapping_they_came_from():
    data, marks = parse_yaml(
        "base: &b {units: 8, nested: {a: 1}}\n"
        "other: &o {units: 9, extra: 3, nested: {z: 1}}\n"
        "x:\n  <<: [*b, *o]\n  units: 4\n",
        "c.yaml",
    )

    assert data["x"] == {"units": 4, "nested": {"a": 1}, "extra": 3}  # the first merged mapping wins
    assert str(marks[("x", "units")]) == "c.yaml:5:3"  # written here
    assert str(marks[("x", "nested", "a")]) == "c.yaml:1:30"  # from base
    assert str(marks[("x", "extra")]) == "c.yaml:2:22"  # from other
    assert ("x", "nested", "z") not in marks  # other's nested lost to base's


def test_a_key_written_twice_beside_a_merge_is_still_a_duplicate(tmp_path):
    with pytest.raises(ConfigError, match=r"^c\.yaml:2:23: duplicate key 'units' \(first at line 2\)"):
        parse_yaml("a: &a {units: 1}\nb: {<<: *a, units: 2, units: 3}\n", "c.yaml")


def test_merging_something_that_is_not_a_mapping_names_it():
    with pytest.raises(ConfigError, match=r"^c\.yaml:2:9: '<<' merges a mapping or a list of mappings"):
        parse_yaml("a: &a [1, 2]\nb: {<<: *a}\n", "c.yaml")


def _error(path: Path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)
