"""Folders with one sub-folder per class, as Keras's ``*_dataset_from_directory`` reads them.

Class names are the sub-folder names in sorted order; each class's files are the files with one
of the accepted suffixes anywhere below its sub-folder, in sorted order, so a folder always
loads in the same order. Hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from fmtrain.data.encoding import EncoderState
from fmtrain.data.labels import Labels, encode_labels
from fmtrain.errors import DataError


@dataclass(frozen=True)
class ClassFiles:
    """The files of a class folder tree: ``files[i]`` belongs to class ``labels[i]``."""

    root: Path
    files: list[Path]
    labels: np.ndarray
    """The class (sub-folder) name of each file, as strings."""


def class_files(root: Path, suffixes: tuple[str, ...], what: str) -> ClassFiles:
    """List the files of each class sub-folder of ``root``.

    Args:
        root: the folder (from :func:`fmtrain.data.tabular.resolve_path` with ``folder=True``).
        suffixes: accepted lower-case file suffixes, e.g. ``(".png", ".jpg")``.
        what: the kind of file, for messages ("image", "text").

    Raises:
        DataError: no class sub-folders, or a class sub-folder without a single accepted file.
    """
    import numpy as np

    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = any(p.suffix.lower() in suffixes for p in root.iterdir())
        raise DataError(
            f"{root}: no class sub-folders{' (the ' + what + ' files are directly in it)' if loose else ''}; "
            f"put each class's {what} files in {root}/<class name>/"
        )
    files: list[Path] = []
    labels: list[str] = []
    for folder in classes:
        found = sorted(
            p for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in suffixes
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
        if not found:
            raise DataError(
                f"{folder}: class '{folder.name}' has no {what} files ({', '.join(suffixes)}); "
                "add some or remove the folder"
            )
        files.extend(found)
        labels.extend([folder.name] * len(found))
    return ClassFiles(root, files, np.array(labels, dtype=str))


def encode_folder_labels(found: ClassFiles, saved: EncoderState) -> Labels:
    """Class ids from the sub-folder names; at eval time, the trained model's classes.

    Raises:
        DataError: a sub-folder that is not one of the trained classes.
    """
    return encode_labels(found.labels, task="classification", saved=saved,
                         where=lambda i: str(found.files[i].parent), name="the sub-folder names")
