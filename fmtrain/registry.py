"""Name → component registries with helpful misses.

A registry maps a name used in YAML (``mlp``, ``rescale``) to a builder function and,
optionally, the pydantic class that validates its options. Registries never import
TensorFlow: builders import it inside their bodies.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or ``""`` when none is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


def describe_choices(choices: Iterable[str], limit: int = 12) -> str:
    """``'a', 'b', 'c'`` — or the first ``limit`` and a count."""
    items = sorted(choices)
    shown = ", ".join(f"'{c}'" for c in items[:limit])
    more = len(items) - limit
    return shown + (f" and {more} more" if more > 0 else "")


class UnknownNameError(KeyError):
    """Raised by :meth:`Registry.get` for a name that is not registered."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return (
            f"unknown {self.kind} '{self.name}'{did_you_mean(self.name, self.choices)}; "
            f"choose from {describe_choices(self.choices)}"
        )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    build: T
    params: type | None
    summary: str


class Registry(Generic[T]):
    """Components of one kind, registered by name with a decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, params: type | None = None) -> Callable[[T], T]:
        """Register the decorated builder under ``name``; ``params`` validates its options."""

        def decorate(fn: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            self._entries[name] = Entry(name, fn, params, summary)
            return fn

        return decorate

    def get(self, name: str) -> Entry[T]:
        """Return the entry for ``name``; raise :class:`UnknownNameError` listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries
