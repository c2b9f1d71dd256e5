"""Loads, keeps and unloads the versions of the served models, off the request path.

A background thread scans every model's base path (each `poll_interval_s`, like TF Serving's
`--file_system_poll_wait_seconds`) and applies the model's `VersionPolicy`:

- a new version is loaded once its directory has stopped changing (same file names, sizes and
  modification times on two scans in a row, or untouched for `settle_s`), so a `cp -r` in
  progress is not loaded half-way;
- a version that fails to load is logged and skipped; the policy then falls back to the
  versions that did load (the last good version keeps serving), and the failed one is retried
  only when its directory changes;
- a loaded version stays until the policy no longer selects it among the loaded versions
  (a new version replaces it only once loaded) or its directory is removed.

Requests read an immutable snapshot (`get`), so they never wait for a load.

Example:

>>> manager = ModelManager([ModelConfig("digits", "saved_models/digits")])
>>> manager.poll(settled=True)   # first load, synchronously
>>> manager.start()              # then watch the folders
>>> manager.get("digits").version
1
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from tfmeta.export import existing_versions
from tfmeta.serving.batching import BatchingOptions
from tfmeta.serving.errors import not_found
from tfmeta.serving.model_config import ModelConfig
from tfmeta.serving.servable import Servable

logger = logging.getLogger("tfmeta.serving")


def directory_signature(path: str) -> tuple:
    """What changes when a directory's content changes: its files' names, sizes and mtimes."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:  # removed while walking: the next scan sees the change
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


@dataclasses.dataclass(frozen=True)
class VersionState:
    """A version's state as TF Serving reports it: `AVAILABLE`, or `END` with the load error."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class _ModelState:
    def __init__(self, config: ModelConfig):
        self.config = config
        self.loaded: dict[int, Servable] = {}  # replaced, never mutated: requests read it bare
        self.failed: dict[int, tuple[tuple, str]] = {}  # version -> (directory signature, error)
        self.seen: dict[int, tuple] = {}  # version -> directory signature on the last scan


class ModelManager:
    """Serves the versions chosen by each model's policy; see the module docstring."""

    def __init__(
        self,
        configs: Sequence[ModelConfig],
        batching: BatchingOptions | None = None,
        poll_interval_s: float = 1.0,
        settle_s: float = 2.0,
        loader: Callable[..., Servable] = Servable.load,
    ):
        names = [c.name for c in configs]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"`configs` must name at least one model, each once; received {names}.")
        self._models = {c.name: _ModelState(c) for c in configs}
        self.batching = batching
        self.poll_interval_s = poll_interval_s
        self.settle_s = settle_s
        self._loader = loader
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str, version: int | None = None) -> Servable:
        """The servable of a version (the newest loaded one when `version` is None)."""
        model = self._models.get(name)
        loaded = model.loaded if model else {}
        if version is None:
            if not loaded:
                raise not_found(f"Servable not found for request: Latest({name})")
            return loaded[max(loaded)]
        if version not in loaded:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return loaded[version]

    def status(self, name: str, version: int | None = None) -> list[VersionState]:
        """The loaded versions (newest first) and the ones whose load failed."""
        model = self._models.get(name)
        if model is None:
            raise not_found(f"Could not find any versions of model {name}")
        states = [VersionState(v, "AVAILABLE") for v in sorted(model.loaded, reverse=True)]
        states += [
            VersionState(v, "END", "UNKNOWN", error)
            for v, (_, error) in sorted(model.failed.items(), reverse=True)
            if v not in model.loaded
        ]
        if version is not None:
            states = [s for s in states if s.version == version]
            if not states:
                raise not_found(f"Could not find version {version} of model {name}")
        elif not states:
            raise not_found(f"Could not find any versions of model {name}")
        return states

    def start(self) -> None:
        """Starts watching the base paths in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="tfmeta-model-manager", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stops watching and unloads every version."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for model in self._models.values():
            loaded, model.loaded = model.loaded, {}
            for servable in loaded.values():
                servable.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll()
            except Exception:  # a scan must never stop the watcher
                logger.exception("Scanning the model base paths failed")

    def poll(self, settled: bool = False) -> None:
        """One scan of every model: load, skip or unload versions as the policy says.

        `settled=True` loads versions without waiting for them to stop changing (the first
        scan at start-up, when the exports are already in place).
        """
        with self._poll_lock:
            for model in self._models.values():
                self._poll_model(model, settled)

    def _poll_model(self, model: _ModelState, settled: bool) -> None:
        config, old = model.config, model.loaded
        on_disk = existing_versions(config.base_path)
        signatures = {v: directory_signature(os.path.join(config.base_path, str(v))) for v in on_disk}
        previous, model.seen = model.seen, signatures
        model.failed = {v: f for v, f in model.failed.items() if v in signatures}
        loaded = {v: s for v, s in model.loaded.items() if v in signatures}
        for version in sorted(set(model.loaded) - set(loaded)):
            logger.info("Unloading %s version %d: its directory was removed", config.name, version)
        while True:
            candidates = [
                v for v in on_disk
                if v in loaded or model.failed.get(v, (None,))[0] != signatures[v]
            ]
            todo = [v for v in config.policy.select(candidates) if v not in loaded]
            todo = [v for v in todo if settled or self._settled(config, v, signatures[v], previous.get(v))]
            if not todo:
                break
            version = todo[-1]  # newest first: what `latest` wants
            path = os.path.join(config.base_path, str(version))
            try:
                loaded[version] = self._loader(config.name, version, path, self.batching)
                model.failed.pop(version, None)
                logger.info("Loaded %s version %d from %s", config.name, version, path)
            except Exception as error:
                message = f"Failed to load {config.name} version {version} from {path}: {type(error).__name__}: {error}"
                model.failed[version] = (signatures[version], message)
                logger.warning("%s; it is skipped until its directory changes", message)
            model.loaded = dict(loaded)  # publish each load as soon as it is ready
        keep = set(config.policy.select(list(loaded)))
        for version in sorted(set(loaded) - keep):
            logger.info("Unloading %s version %d: the version policy no longer selects it", config.name, version)
        final = {v: s for v, s in loaded.items() if v in keep}
        everything = {**old, **loaded}
        model.loaded = final
        for version, servable in everything.items():
            if version not in final:
                servable.close()

    def _settled(self, config: ModelConfig, version: int, signature: tuple, previous) -> bool:
        if signature == previous:
            return True
        newest = max((mtime for _, _, mtime in signature), default=0) / 1e9
        if signature and time.time() - newest > self.settle_s:
            return True
        path = os.path.join(config.base_path, str(version))
        logger.debug("Waiting for %s to stop changing before loading it", path)
        return False
