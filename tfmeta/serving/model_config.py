"""Which models a server serves and which of their versions: TF Serving's `model_config_list`.

A model config file is TF Serving's text-format `ModelServerConfig`, parsed with the
`tensorflow_serving.config` protos themselves (so every file `tensorflow_model_server
--model_config_file` accepts is read the same way here):

```
model_config_list {
  config { name: "digits" base_path: "/models/digits" model_platform: "tensorflow" }
  config {
    name: "omniglot" base_path: "/models/omniglot" model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 3 } }
  }
}
```

`VersionPolicy` chooses which of the versions on disk to serve: `latest` (the newest
`num_versions`, 1 by default), `all`, or `specific` versions.

Example:

>>> configs = parse_model_config_text(open("models.config").read())
>>> [(c.name, c.policy.kind) for c in configs]
[('digits', 'latest'), ('omniglot', 'specific')]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

POLICY_KINDS = ("latest", "all", "specific")


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's `model_version_policy`: `latest` (newest `num_versions`), `all`, `specific`."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"`kind` must be one of {POLICY_KINDS}; received {self.kind!r}.")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"`num_versions` must be >= 1; received {self.num_versions}.")
        if self.kind == "specific" and (not self.versions or min(self.versions) < 1):
            raise ValueError(
                f"`versions` of a specific policy must be positive integers; received {self.versions}."
            )

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """`"latest"`, `"latest:2"`, `"all"` or `"specific:1,3"` (the `--model-version-policy` flag)."""
        kind, _, arg = text.strip().partition(":")
        try:
            if kind == "latest":
                return cls("latest", int(arg) if arg else 1)
            if kind == "specific":
                return cls("specific", versions=tuple(int(v) for v in arg.split(",") if v))
            if kind == "all" and not arg:
                return cls("all")
        except ValueError:
            pass
        raise ValueError(
            "`--model-version-policy` must be 'latest', 'latest:N', 'all' or 'specific:V1,V2'; "
            f"received {text!r}."
        )

    def select(self, candidates: Sequence[int]) -> list[int]:
        """The versions to serve out of `candidates` (the loadable versions on disk)."""
        ordered = sorted(set(candidates))
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-self.num_versions:]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: its name, base path (of numbered versions) and version policy."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()


def _policy_from_proto(proto) -> VersionPolicy:
    which = proto.WhichOneof("policy_choice")
    if which == "all":
        return VersionPolicy("all")
    if which == "specific":
        return VersionPolicy("specific", versions=tuple(proto.specific.versions))
    if which == "latest":
        return VersionPolicy("latest", proto.latest.num_versions or 1)
    return VersionPolicy()


def parse_model_config_text(text: str, relative_to: str = ".") -> list[ModelConfig]:
    """Parses a TF Serving `model_config_list` text file into `ModelConfig`s.

    Args:
        text: The file's content (protobuf text format of `ModelServerConfig`).
        relative_to: Folder that relative `base_path`s are resolved against (the file's own).

    Raises:
        ValueError: Not a valid `model_config_list`, a model without name or base path, a
            duplicated name, or a platform other than `tensorflow`.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"Invalid model config file: {error}") from error
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("The model config file must hold a `model_config_list { config { ... } }`.")
    models = []
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise ValueError(f"Each config needs a `name` and a `base_path`; received {entry}.")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"`model_platform` of {entry.name!r} must be 'tensorflow'; received {entry.model_platform!r}."
            )
        base = entry.base_path if os.path.isabs(entry.base_path) else os.path.join(relative_to, entry.base_path)
        policy = _policy_from_proto(entry.model_version_policy)
        models.append(ModelConfig(entry.name, base, policy))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"Model names in a model config file must be unique; received {names}.")
    if not models:
        raise ValueError("The model config file lists no model.")
    return models


def read_model_config_file(path: str) -> list[ModelConfig]:
    """Reads a model config file (see `parse_model_config_text`)."""
    with open(path, encoding="utf-8") as f:
        return parse_model_config_text(f.read(), relative_to=os.path.dirname(os.path.abspath(path)))
