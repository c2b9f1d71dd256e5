"""Atomic SavedModel export in TF Serving layout (`<base_dir>/<version>/`) and its signatures.

A version directory appears only when fully written: the SavedModel and `tfmeta.json` are
written to a hidden temporary folder beside it (TF Serving ignores non-numeric names) and
renamed into place in one `os.rename`. An interrupted export leaves at most a `.tmp-*` folder,
which the next export removes (its writing process is gone). Versions are positive integers;
entries of the base folder that are not version directories (a file named `3`) are ignored
and never reused.

The signature builders live here too, so that every exporter writes the same contracts:
`few_shot_endpoint` (DESIGN.md's `few_shot(support_x, support_y, query_x)`),
`classifier_endpoint` (`serving_default: x -> {"probabilities", "classes"}`), and
`load_few_shot_signature` reads a `few_shot` signature back with TensorFlow alone.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import time
import uuid
from typing import Any, Callable, Mapping, Sequence

import keras
import tensorflow as tf

from tfmeta.serving.warmup import write_warmup_requests
from tfmeta.episode_checks import checked_episode
from tfmeta.version import __version__

METADATA_FILE = "tfmeta.json"


def existing_versions(base_dir: str) -> list[int]:
    """Returns the sorted integer version directories under `base_dir` (files are ignored)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if _is_version_name(name) and os.path.isdir(os.path.join(base_dir, name))
    )


def _is_version_name(name: str) -> bool:
    # TF Serving's versions are int64: longer digit strings are no versions (and no int() of 5,000 digits).
    return name.isascii() and name.isdigit() and len(name) <= 18 and int(name) > 0


def next_version(base_dir: str) -> int:
    """Returns the next free version number under `base_dir` (1 for a new folder).

    A regular file named like a version is not a version, but its name is not free either.
    """
    if not os.path.isdir(base_dir):
        return 1
    taken = [int(name) for name in os.listdir(base_dir) if _is_version_name(name)]
    return max(taken) + 1 if taken else 1


def check_version(version: Any) -> int | None:
    """Returns `version` as an `int` (`None` passes through) or raises a `ValueError`.

    A version is the name of a folder TF Serving loads, so only a positive integer is one:
    Python and numpy integers below 10**18 (TF Serving's int64) are accepted; bools, floats,
    strings (`"../x"`), zero and negative numbers are refused before anything is written.
    """
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, numbers.Integral) or not 0 < int(version) < 10**18:
        raise ValueError(
            "`version` must be a positive integer (the name of a TF Serving version folder) or "
            f"None for the next free one; received {_short_repr(version)}."
        )
    return int(version)


def _short_repr(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit str() limit
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= limit else text[:limit] + "..."


def latest_version_dir(path: str) -> str:
    """Resolves a model path: a version dir is returned as is, a base dir gives its newest."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = existing_versions(path)
    if not versions:
        raise FileNotFoundError(
            f"`{path}` is neither a SavedModel directory nor a folder of numbered versions."
        )
    return os.path.join(path, str(versions[-1]))


_TMP_PREFIX = ".tmp-"
_writing: set[str] = set()  # temporary folders this process is writing right now


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: alive
    return True


def _clean_stale_tmp(base_dir: str, max_age_s: float = 3600.0) -> None:
    """Removes temporary folders of exports that were killed.

    A folder is `.tmp-<pid>-<random>`: it is stale when its process is gone, or (pid reused,
    another machine on a shared disk) when it is older than `max_age_s`. Folders this
    process is still writing are kept.
    """
    now = time.time()
    for name in os.listdir(base_dir):
        full = os.path.join(base_dir, name)
        if not name.startswith(_TMP_PREFIX) or full in _writing:
            continue
        pid = name[len(_TMP_PREFIX):].split("-", 1)[0]
        gone = pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid))
        try:
            old = now - os.path.getmtime(full) > max_age_s
        except OSError:  # removed meanwhile
            continue
        if gone or old or (pid.isdigit() and int(pid) == os.getpid()):
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)


def write_version(
    base_dir: str,
    write_fn: Callable[[str], None],
    metadata: Mapping[str, Any],
    version: int | None = None,
) -> str:
    """Writes a new version atomically and returns its path.

    Args:
        base_dir: Model base directory (`saved_models/<name>`).
        write_fn: Called with a temporary directory; writes the SavedModel there.
        metadata: Extra metadata merged into `tfmeta.json`.
        version: Explicit version number; defaults to the next free one.

    Returns:
        The final version directory path.
    """
    version = check_version(version)
    os.makedirs(base_dir, exist_ok=True)
    _clean_stale_tmp(base_dir)
    if version is not None and os.path.lexists(os.path.join(base_dir, str(version))):
        raise FileExistsError(
            f"`version`={version} already exists in `{base_dir}`; pass another version or None for "
            "the next free one."
        )
    tmp = os.path.join(base_dir, f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    _writing.add(tmp)
    try:
        write_fn(tmp)
        meta = {"tfmeta_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        meta.update(metadata)
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(meta, f, indent=2, default=_json_default)
        return _rename_into_place(tmp, base_dir, version)
    finally:
        _writing.discard(tmp)
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _rename_into_place(tmp: str, base_dir: str, version: int | None) -> str:
    """Renames `tmp` to `base_dir/<version>`; without a version, to the next free number.

    Another export may take a number between the check and the rename: then the next number
    is tried. Numbers whose name exists as anything (a version, a file) are skipped, so the
    loop always advances.
    """
    if version is not None:
        final = os.path.join(base_dir, str(version))
        os.rename(tmp, final)
        return final
    v = next_version(base_dir)
    for _ in range(1000):
        final = os.path.join(base_dir, str(v))
        if not os.path.lexists(final):
            try:
                os.rename(tmp, final)
                return final
            except OSError:
                if not os.path.lexists(final):
                    raise
        v += 1
    raise RuntimeError(f"Found no free version number in `{base_dir}` after 1000 attempts.")


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "as_list"):
        return value.as_list()
    return str(value)


Endpoint = tuple[Callable[..., Any], Sequence[tf.TensorSpec]]


def export_endpoints(
    base_dir: str,
    tracked: Any,
    endpoints: Mapping[str, Endpoint],
    metadata: Mapping[str, Any],
    version: int | None = None,
) -> str:
    """Exports functions as SavedModel signatures with `keras.export.ExportArchive`.

    Args:
        base_dir: Model base directory; the version goes to `base_dir/<version>/`.
        tracked: A Keras layer/model (or list of them) whose variables the endpoints use.
        endpoints: `{signature name: (fn, input_signature)}`; must include `serving_default`.
            Functions should return a dict of named tensors.
        metadata: Written to `tfmeta.json` (task, learner, input spec, class names, metrics...).
        version: Explicit version number; defaults to the next free one.

    Returns:
        The written version directory.

    Example:

    >>> export_endpoints("saved_models/m", model,
    ...     {"serving_default": (lambda x: {"y": model(x)},
    ...                          [tf.TensorSpec([None, 4], tf.float32, name="x")])},
    ...     {"task": "regression"})
    'saved_models/m/1'
    """
    if "serving_default" not in endpoints:
        raise ValueError(
            f"`endpoints` must include 'serving_default'; received {sorted(endpoints)}."
        )

    def write(path: str) -> None:
        archive = keras.export.ExportArchive()
        for obj in tracked if isinstance(tracked, (list, tuple)) else [tracked]:
            archive.track(obj)
        for name, (fn, signature) in endpoints.items():
            archive.add_endpoint(name=name, fn=fn, input_signature=list(signature))
        archive.write_out(path, verbose=False)
        # TF Serving replays these before a version takes traffic (so does `tfmeta serve`).
        write_warmup_requests(path, os.path.basename(os.path.normpath(base_dir)), endpoints)

    meta = dict(metadata)
    meta.setdefault("signatures", sorted(endpoints))
    return write_version(base_dir, write, meta, version=version)


def read_metadata(path: str) -> dict:
    """Reads `tfmeta.json` from a version directory (or the newest version of a base dir)."""
    with open(os.path.join(latest_version_dir(path), METADATA_FILE)) as f:
        return json.load(f)


def few_shot_endpoint(probabilities_fn: Callable, example_shape: Sequence[int]) -> Endpoint:
    """`(fn, input_signature)` of the `few_shot` signature for a one-episode probabilities fn.

    Args:
        probabilities_fn: `(support_x [S, ...], support_y [S], query_x [Q, ...]) -> [Q, N]`.
        example_shape: Shape of one example (without the example axis).

    Returns:
        An endpoint for `export_endpoints`: `few_shot(support_x: float32[S, ...],
        support_y: int32[S], query_x: float32[Q, ...]) -> {"probabilities": float32[Q, N]}`.
        The signature checks its episode in the graph (`tfmeta.episode_checks`): labels
        0..N-1 with every class present, one label per support example, finite values; a
        bad episode raises `tf.errors.InvalidArgumentError`.
    """
    shape = tuple(example_shape)

    def few_shot(support_x, support_y, query_x):
        support_x, support_y, query_x = checked_episode(support_x, support_y, query_x)
        return {"probabilities": probabilities_fn(support_x, support_y, query_x)}

    return few_shot, [
        tf.TensorSpec((None,) + shape, tf.float32, name="support_x"),
        tf.TensorSpec((None,), tf.int32, name="support_y"),
        tf.TensorSpec((None,) + shape, tf.float32, name="query_x"),
    ]


def classifier_endpoint(
    model: Callable, input_spec: tf.TensorSpec, class_names: Sequence[Any] | None = None
) -> Endpoint:
    """`serving_default: x -> {"probabilities", "classes"}` for a model that outputs probabilities.

    Args:
        model: Maps a batch of inputs to `[batch, classes]` probabilities.
        input_spec: The signature's input (its name is the input's name, e.g. `"x"`).
        class_names: Names returned under `"classes"` (strings or numbers); `None` returns the
            class index (int32).

    Example:

    >>> endpoint = classifier_endpoint(model, tf.TensorSpec([None, 8, 8], tf.float32, name="x"))
    >>> export_endpoints("saved_models/digits", model, {"serving_default": endpoint}, meta)
    """
    names = None if class_names is None else tf.constant(list(class_names))

    def serve(x):
        probs = model(x, training=False)
        index = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return {"probabilities": probs, "classes": index if names is None else tf.gather(names, index)}

    return serve, [input_spec]


def export_classifier(
    model: keras.Model,
    base_dir: str,
    metadata: Mapping[str, Any],
    class_names: Sequence[Any] | None = None,
    version: int | None = None,
) -> str:
    """Exports a Keras classifier (probabilities out) with `classifier_endpoint` as `serving_default`.

    The input signature is the model's own input (its shape and dtype). Returns the version
    directory written.
    """
    spec = tf.TensorSpec(
        (None, *model.input_shape[1:]), tf.as_dtype(model.inputs[0].dtype), name="x"
    )
    endpoint = classifier_endpoint(model, spec, class_names)
    return export_endpoints(base_dir, model, {"serving_default": endpoint}, metadata, version=version)


def load_few_shot_signature(model_dir: str):
    """Loads `model_dir` (a version dir, or a base dir: its newest version) and its `few_shot` fn.

    Only TensorFlow is needed: the signature is called as exported.

    Returns:
        `(loaded object, few_shot concrete function, version directory)`.

    Raises:
        ValueError: The model has no `few_shot` signature.
    """
    path = latest_version_dir(model_dir)
    loaded = tf.saved_model.load(path)
    if "few_shot" not in loaded.signatures:
        raise ValueError(
            f"`model` {path} has no 'few_shot' signature; it has {sorted(loaded.signatures)}."
        )
    return loaded, loaded.signatures["few_shot"], path


def few_shot_input_shape(signature) -> tuple:
    """The `support_x` example shape (without the example axis) of a `few_shot` signature."""
    return tuple(signature.structured_input_signature[1]["support_x"].shape[1:])


def few_shot_function(signature) -> Callable:
    """Wraps a loaded `few_shot` signature as `(support_x, support_y, query_x) -> probabilities`."""

    def probabilities(support_x, support_y, query_x):
        return signature(
            support_x=tf.cast(support_x, tf.float32),
            support_y=tf.cast(support_y, tf.int32),
            query_x=tf.cast(query_x, tf.float32),
        )["probabilities"]

    return probabilities
