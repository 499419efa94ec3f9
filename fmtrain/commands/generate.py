"""``fmtrain generate RUN_DIR --prompt TEXT``: continue a prompt with a run's causal language model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, Device, Quiet, Unsafe, Verbose, check_device, console, run_action
from fmtrain.engine.device import quiet_tensorflow_logs
from fmtrain.errors import ConfigError
from fmtrain.generate import SAMPLERS, GenerateOptions
from fmtrain.generate import generate as continue_prompt


def register(app: typer.Typer) -> None:
    app.command("generate", cls=Command)(generate)


def generate(
    run_dir: Annotated[Path, typer.Argument(help="A run of model.type: hub, task: causal_lm.", show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The text to continue.", show_default=False)],
    max_length: Annotated[int | None, typer.Option(
        "--max-length", min=2, help="Tokens in the result, the prompt included (default: the model's window).",
        show_default=False)] = None,
    sampler: Annotated[str, typer.Option(
        "--sampler", help="greedy (most probable token), top_k or top_p (KerasHub samplers).")] = "greedy",
    seed: Annotated[int, typer.Option("--seed", help="Seeds top_k and top_p: the same seed, the same text.")] = 0,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="top_k: sample among this many tokens.")] = 5,
    top_p: Annotated[float, typer.Option(
        "--top-p", min=0.0, max=1.0, help="top_p: sample among the tokens holding this much probability.")] = 0.9,
    unsafe: Unsafe = False,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Print RUN_DIR's continuation of --prompt (the prompt included)."""

    def action() -> int:
        if sampler not in SAMPLERS:
            raise ConfigError(f"--sampler: expected one of {', '.join(SAMPLERS)}, found '{sampler}'")
        quiet_tensorflow_logs(verbose)
        options = GenerateOptions(prompt=prompt, max_length=max_length, sampler=sampler, seed=seed, top_k=top_k,
                                  top_p=top_p, device=check_device(device), unsafe=unsafe, verbose=verbose)
        outcome = continue_prompt(run_dir, options)
        typer.echo(outcome.text)
        if not quiet:
            console().print(f"[dim]{outcome.prompt_tokens} prompt + {outcome.new_tokens} new tokens, "
                            f"sampler {sampler}, seed {seed}, run {outcome.run}[/dim]", highlight=False)
        return 0

    run_action(action, debug)
