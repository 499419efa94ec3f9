"""Tiny image folders for the tests that train or read an image model: dark circles and bright squares."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def shape_images(root: Path, size: tuple[int, int], names: list[str] | None = None, per_class: int = 6) -> Path:
    """``per_class`` dark "circle" and bright "square" images of ``size`` in one folder per class under
    ``root`` (or, with ``names``, loose in ``root``, alternating circle and square); returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, kind in enumerate(("circle", "square")):
        folder = root if names else root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (*size, 3), dtype=np.uint8) + np.uint8(120 * index)
            Image.fromarray(pixels).save(folder / (names[2 * i + index] if names else f"{i}.png"))
    return root
