"""Text sources: ``text_csv``, ``text_jsonl`` and ``text_folder``.

Each gives ``x`` as a 1-D object array of Python strings (one document per example) and class
ids or numbers as ``y``; turning text into token ids is preprocessing's job (``text_vectorize``),
so the vocabulary is fitted on the training split and saved inside the model. ``text_folder`` with
``stream: true`` reads its files inside tf.data instead (:mod:`fmtrain.data.folder_stream`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

from pydantic import Field, field_validator

from fmtrain.data import folder_stream, folders, tabular
from fmtrain.data.encoding import EncoderState
from fmtrain.data.labels import encode_labels
from fmtrain.data.sources import SOURCES, Loaded, SourceConfig, fixed_task_reason
from fmtrain.errors import DataError
from fmtrain.registry import describe_choices, did_you_mean

TEXT_SUFFIXES = (".txt",)


class TextCsvSource(SourceConfig):
    """A csv file with a text column and a label column."""

    source: Literal["text_csv"] = "text_csv"
    """text_csv: a csv file with a header row, one document per row."""
    path: str
    """The .csv file (relative to the config file)."""
    text: str = "text"
    """Column holding each example's text."""
    label: str | None = None
    """Label column (default: the last column other than data.text)."""


class TextJsonlSource(SourceConfig):
    """JSON lines, one object per example with a text key and a label key."""

    source: Literal["text_jsonl"] = "text_jsonl"
    """text_jsonl: one JSON object per line."""
    path: str
    """The .jsonl file (relative to the config file)."""
    text: str = "text"
    """Key holding each example's text."""
    label: str = "label"
    """Key holding each example's label."""


class TextFolderSource(SourceConfig):
    """Text files in one sub-folder per class; the classes are the sub-folder names."""

    source: Literal["text_folder"] = "text_folder"
    """text_folder: a folder with one sub-folder of .txt files per class."""
    path: str
    """The folder (relative to the config file)."""
    stream: bool = False
    """Decode the files inside tf.data instead of into memory (data larger than memory)."""
    shuffle_buffer: int | None = Field(None, ge=1)
    """With stream: files permuted together (default 10000)."""
    adapt_samples: int | Literal["all"] | None = None
    """With stream: texts adapting steps are fitted on (default 10000)."""

    @field_validator("shuffle_buffer", "adapt_samples")
    @classmethod
    def _stream_only(cls, value, info):
        return folder_stream.stream_only(value, info)

    @property
    def streams(self) -> bool:
        """``stream: true``: :func:`fmtrain.data.build` returns streams (:meth:`build_streams`)."""
        return self.stream

    def build_streams(self, *, seed: int, encoders: EncoderState):
        """The files read inside tf.data: :func:`fmtrain.data.folder_stream.build`."""
        return folder_stream.build(self, seed=seed, encoders=encoders, suffixes=TEXT_SUFFIXES,
                                   decoder=folder_stream.TextDecoder(),
                                   hint="a folder with one sub-folder of .txt files per class")

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        return "classification"


def _strings(texts: list[str]) -> np.ndarray:
    import numpy as np

    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out


@SOURCES.register("text_csv", params=TextCsvSource)
def load_text_csv(cfg: TextCsvSource, saved: EncoderState) -> Loaded:
    """A csv file (data.path) with a text column (data.text, default 'text') and a label column."""
    path = tabular.resolve_path(cfg.path, "text_csv", "a .csv file with a text column and a label column")
    table = tabular.read_csv(path)
    text = cfg.text
    texts = table.column(text, "data.text")
    if cfg.label is not None:
        label = cfg.label
    else:
        others = [c for c in table.header if c != text]
        if not others:
            raise DataError(f"{path}: only the text column '{text}'; add a label column or set data.label")
        label = others[-1]
    if label == text:
        raise DataError(f"{path}: column '{label}' is both the text (data.text) and the label (data.label)")
    values = tabular.typed_cells(table.column(label, "data.label"))
    labels = encode_labels(values, task=cfg.task, saved=saved, where=lambda i: f"{path}:{table.lines[i]}",
                           name=f"label column '{label}'")
    return Loaded(_strings(texts), labels.y, f"text_csv {path}", labels.task, labels.task_reason,
                  class_names=labels.class_names, label_state=labels.state)


@SOURCES.register("text_jsonl", params=TextJsonlSource)
def load_text_jsonl(cfg: TextJsonlSource, saved: EncoderState) -> Loaded:
    """JSON lines (data.path), one object per line with a text key (data.text) and a label key (data.label)."""
    path = tabular.resolve_path(cfg.path, "text_jsonl", "a .jsonl file with one JSON object per line")
    text, label = cfg.text, cfg.label
    texts, cells, lines = [], [], []
    for line_number, record in _json_lines(path):
        for key, config_key in ((text, "data.text"), (label, "data.label")):
            if key not in record:
                raise DataError(
                    f"{path}:{line_number}: no key '{key}' ({config_key}){did_you_mean(key, record)}; "
                    f"the object has {describe_choices(record) or 'no keys'}"
                )
        if not isinstance(record[text], str):
            raise DataError(f"{path}:{line_number}: '{text}' is {type(record[text]).__name__}, expected a string")
        value = record[label]
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (str, int, float)) or value == "":
            raise DataError(f"{path}:{line_number}: label '{label}' is {json.dumps(value)}; "
                            "expected a class name, a class id or a number")
        texts.append(record[text])
        cells.append(str(value))
        lines.append(line_number)
    if not texts:
        raise DataError(f"{path}: no JSON objects; expected one object per line like "
                        f'{{"{text}": "...", "{label}": "..."}}')
    labels = encode_labels(tabular.typed_cells(cells), task=cfg.task, saved=saved,
                           where=lambda i: f"{path}:{lines[i]}", name=f"label key '{label}'")
    return Loaded(_strings(texts), labels.y, f"text_jsonl {path}", labels.task, labels.task_reason,
                  class_names=labels.class_names, label_state=labels.state)


def _json_lines(path: Path):
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{line_number}: not valid JSON ({err.msg}, column {err.colno}); "
                                    "each line needs one JSON object") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{line_number}: a JSON {type(record).__name__}, expected an object "
                                    "with the text and label keys")
                yield line_number, record
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); save the file as UTF-8") from err


@SOURCES.register("text_folder", params=TextFolderSource)
def load_text_folder(cfg: TextFolderSource, saved: EncoderState) -> Loaded:
    """Text files (.txt) in one sub-folder per class (data.path), one document per file."""
    root = tabular.resolve_path(cfg.path, "text_folder", "a folder with one sub-folder of .txt files per class",
                                folder=True)
    found = folders.class_files(root, TEXT_SUFFIXES, "text")
    labels = folders.encode_folder_labels(found, saved)
    texts = []
    for path in found.files:
        try:
            texts.append(path.read_text(encoding="utf-8-sig").strip())
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason}); save the file as UTF-8") from err
    return Loaded(_strings(texts), labels.y, f"text_folder {root}", "classification", fixed_task_reason(cfg),
                  class_names=labels.class_names, label_state=labels.state)
