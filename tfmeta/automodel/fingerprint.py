"""What an AutoModel project was searched on, so that a re-fit never mixes two data sets.

`AutoModel.fit` with `overwrite=False` resumes the search stored in
`directory/project_name` (KerasTuner's layout). Without a record of the data, a second `fit`
on other data would silently reuse the first search (0 new trials, a model of the old data).
So the project directory holds `tfmeta_fingerprint.json`, written before the first trial:

- `task` (`"classification"`, ...), `data_kind` (`"arrays"`, `"table"`, `"text"`,
  `"image_folder"`), and for arrays `input_kind` (`"image"`/`"table"`), `example_shape` and
  `dtype`; for tables the `columns` with their inferred types;
- `rows`, and `classes` (class labels, in order) or the regression target;
- `sample`: a SHA-256 of at most `SAMPLE_ROWS` evenly spaced rows (array bytes and labels; the
  encoded targets of raw tables and texts; the relative file names of an image folder).

It costs what a glance at the data costs: no pass over a large CSV (rows, columns and classes
are what `fit` reads anyway). A `fit` with `overwrite=False` whose fingerprint differs raises
a `ValueError` that says what differs and how to start afresh (`overwrite=True`, or another
`project_name`); the same data resumes as before. Raising rather than starting a new project
silently keeps one project directory per search, as the user named it.

Example:

>>> am = tfmeta.AutoModel(max_trials=2, directory="runs", project_name="digits").fit(x, y)
>>> tfmeta.AutoModel(max_trials=2, directory="runs", project_name="digits").fit(x_other, y_other)
Traceback (most recent call last):
...
ValueError: The project `runs/digits` was searched on other data: ...
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from typing import Any, Iterator

import numpy as np

from tfmeta.nas.distribution import search_role

FINGERPRINT_FILE = "tfmeta_fingerprint.json"
#: Rows hashed into the `sample` field at most.
SAMPLE_ROWS = 256

_LABELS = {"task": "task", "data_kind": "kind of data", "input_kind": "input kind",
           "example_shape": "example shape", "dtype": "dtype", "columns": "columns and their types",
           "rows": "number of rows", "classes": "classes", "target": "target",
           "sample": "content (a hash of sampled rows)"}


def _sample_rows(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, max(n - 1, 0), num=min(n, SAMPLE_ROWS)).astype(np.int64))


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part)
            h.update(str((part.dtype.str, part.shape)).encode())
            h.update(part.tobytes() if part.dtype != object else json.dumps(part.tolist(), default=str).encode())
        else:
            h.update(json.dumps(part, default=str, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _target(task: str, classes) -> dict:
    if classes is None:
        return {"target": task}
    return {"classes": np.asarray(classes).tolist()}


def of_arrays(task: str, input_kind: str, x: np.ndarray, y: np.ndarray, classes=None) -> dict:
    """The fingerprint of numeric arrays (`classes` for classification-like tasks)."""
    rows = _sample_rows(len(x))
    return {"task": task, "data_kind": "arrays", "input_kind": input_kind,
            "example_shape": list(x.shape[1:]), "dtype": str(x.dtype), "rows": int(len(x)),
            **_target(task, classes), "sample": _digest(x[rows], np.asarray(y)[rows])}


def of_raw_task(task: str, raw_task) -> dict:
    """The fingerprint of a prepared table, text or image-folder task (`raw_data.RawDataTask`)."""
    fingerprint = {"task": task, "data_kind": raw_task.kind, "rows": int(raw_task.rows)}
    specs = getattr(raw_task, "specs", None)
    if specs is not None:
        fingerprint["columns"] = {name: spec.kind for name, spec in specs.items()}
        fingerprint["target_column"] = getattr(raw_task, "target_column", None)
    fingerprint.update(_target(task, getattr(raw_task, "classes", None) if raw_task.classification else None))
    folder = getattr(raw_task, "folder", None)
    if folder is not None:
        rows = _sample_rows(len(folder.files))
        names = np.array([os.path.relpath(f, folder.path) for f in folder.files[rows]], dtype=object)
        fingerprint["sample"] = _digest(names, folder.labels[rows], folder.channels)
    else:
        labels = np.asarray(raw_task.y)
        fingerprint["sample"] = _digest(labels[_sample_rows(len(labels))])
    return fingerprint


def project_dir(am) -> str:
    return os.path.join(str(am.directory), str(am.project_name))


def start_project(am, fingerprint: dict) -> None:
    """Clears the project (`overwrite=True`), or checks it was searched on this data.

    Writes `FINGERPRINT_FILE` (atomically) before any trial, so that a search killed midway
    is resumed only on the same data. With `overwrite=True` the project is removed here (as
    KerasTuner's `overwrite` does), so the searches that follow open it with `overwrite=False`
    and keep the file.

    Raises:
        ValueError: `overwrite=False` and the project was searched on other data.
    """
    directory = project_dir(am)
    path = os.path.join(directory, FINGERPRINT_FILE)
    if am.overwrite:
        if search_role() == "worker":  # the chief owns the shared project; a worker only adds trials
            return
        shutil.rmtree(directory, ignore_errors=True)
    elif os.path.exists(path):
        try:
            with open(path) as f:
                recorded = json.load(f)
        except (OSError, ValueError):
            recorded = None
            warnings.warn(f"`{path}` is unreadable; it is written again for this data.", stacklevel=3)
        if recorded is not None:
            _check_same(recorded, fingerprint, directory)
            return
    elif os.path.isdir(directory) and os.listdir(directory):
        warnings.warn(f"The project `{directory}` has no record of its data (an older tfmeta wrote it); "
                      "it is resumed and its data recorded now.", stacklevel=3)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(fingerprint, f, indent=1, default=str)
    os.replace(tmp, path)


@contextlib.contextmanager
def discarded_on_failure(am) -> Iterator[None]:
    """Removes the record again when `fit` fails before its search wrote anything.

    A `fit` refused by a later check (a parameter that does not suit the data) must not leave
    a project that refuses the next, corrected `fit`. A project holding search state keeps
    its record.
    """
    try:
        yield
    except BaseException:
        directory = project_dir(am)
        if os.path.isdir(directory) and os.listdir(directory) == [FINGERPRINT_FILE]:
            shutil.rmtree(directory, ignore_errors=True)
        raise


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_same(recorded: dict, fingerprint: dict, directory: str) -> None:
    current = json.loads(json.dumps(fingerprint, default=str))  # as it would be stored
    keys = [k for k in dict.fromkeys([*recorded, *current]) if recorded.get(k) != current.get(k)]
    if not keys:
        return
    differences = "; ".join(
        f"{_LABELS.get(k, k)}: {_short(recorded.get(k))} there, {_short(current.get(k))} now" for k in keys
    )
    raise ValueError(
        f"The project `{directory}` was searched on other data, so resuming it would mix the two "
        f"({differences}). Pass `overwrite=True` to start this project afresh, or another "
        "`project_name` (or `directory`) to keep both."
    )
