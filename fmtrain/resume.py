"""What `fmtrain fit --resume` checks: the checkpoint to continue from and the config it continues with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from fmtrain.config.flat import flatten_config
from fmtrain.errors import ConfigError, RunDirError
from fmtrain.runs import RunDir

if TYPE_CHECKING:
    from fmtrain.engine.checkpoints import Checkpoint


def config_hash(cfg) -> str:
    """A short, stable hash of the resolved config (stored in every checkpoint)."""
    return hashlib.sha256(json.dumps(cfg.to_yaml_dict(), sort_keys=True).encode()).hexdigest()[:16]


def config_differences(old, new) -> list[str]:
    """Dotted keys whose resolved values differ between two configs."""
    a, b = flatten_config(old.to_yaml_dict()), flatten_config(new.to_yaml_dict())
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))


def resume_config(run_dir: Path, new_cfg, allow_change: bool):
    """The config a resumed run continues with: the run's own, unless a changed one is allowed.

    Raises:
        RunDirError: the run directory has no config.
        ConfigError: ``new_cfg`` differs from the run's config and ``allow_change`` is False.
    """
    from fmtrain.config import load_config

    run = RunDir(run_dir)
    if not run.config.exists():
        raise RunDirError(f"--resume {run_dir}: no config.yaml; is this an fmtrain run directory?")
    saved = load_config(run.config)
    if new_cfg is None:
        return saved
    changed = config_differences(saved, new_cfg)
    if changed and not allow_change:
        raise ConfigError(
            f"--resume {run_dir}: the config differs from the run's in {', '.join(changed)}; "
            "resume with the run's own config (leave out CONFIG and --set) or pass --allow-config-change"
        )
    return new_cfg


def latest_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest readable checkpoint of ``run_dir`` (its path, training state and variable values).

    Raises:
        RunDirError: there is none.
    """
    from fmtrain.engine.checkpoints import CheckpointManager

    found = CheckpointManager(Path(run_dir) / "checkpoints").latest()
    if found is None:
        raise RunDirError(f"--resume {run_dir}: no checkpoint to resume from in {Path(run_dir) / 'checkpoints'}")
    return found
