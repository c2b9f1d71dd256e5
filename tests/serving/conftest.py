"""Shared fixtures of the serving tests: tiny exports and a running server on loopback.

`tiny_exports` exports two versions of a 4-feature, 3-class classifier (different weights, so
the answering version shows in the numbers) and a model with a DT_STRING input; tests copy
these version folders into their own base paths (a copy costs milliseconds, an export seconds).
"""

from __future__ import annotations

import pytest
from serving_helpers import copy_version


def _classifier(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory):
    """`{"models": {1: model, 2: model}, 1: dir, 2: dir, "text": dir}` of exported versions."""
    import keras
    import tensorflow as tf

    from tfmeta.export import export_classifier, export_endpoints

    root = tmp_path_factory.mktemp("tiny_exports")
    exports = {"models": {}}
    for version in (1, 2):
        model = _classifier(seed=version)
        exports["models"][version] = model
        exports[version] = export_classifier(model, str(root / "clf"), {"task": "classification"}, version=version)
    holder = keras.layers.Identity()  # the text model has no variables; the archive tracks something

    def lengths(text):
        return {"length": tf.strings.length(text), "upper": tf.strings.upper(text)}

    endpoint = (lengths, [tf.TensorSpec([None], tf.string, name="text")])
    exports["text"] = export_endpoints(str(root / "text"), holder, {"serving_default": endpoint}, {"task": "text"})
    return exports


@pytest.fixture
def model_base(tmp_path, tiny_exports):
    """A base path holding version 1 of the tiny classifier."""
    base = tmp_path / "clf"
    copy_version(tiny_exports[1], base, 1)
    return base


@pytest.fixture(scope="session")
def served(tmp_path_factory, tiny_exports):
    """A running server (REST and gRPC) of a model config file: `clf` (v1) and `text`."""
    from tfmeta.serving.model_config import read_model_config_file
    from tfmeta.serving.server import ModelServer, ServerOptions

    root = tmp_path_factory.mktemp("served")
    copy_version(tiny_exports[1], root / "clf", 1)
    copy_version(tiny_exports["text"], root / "text", 1)
    config = root / "models.config"
    config.write_text(
        "model_config_list {\n"
        '  config { name: "clf" base_path: "clf" model_platform: "tensorflow" }\n'
        f'  config {{ name: "text" base_path: "{root / "text"}" model_platform: "tensorflow" }}\n'
        "}\n"
    )
    server = ModelServer(read_model_config_file(str(config)), ServerOptions(port=0, grpc_port=0, max_body_bytes=64 << 10))
    with server.running():
        yield server
