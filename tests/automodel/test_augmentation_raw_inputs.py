"""AutoModel(augmentation_policy=...) on a streamed image folder: trains with it, serves without it."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from test_text_and_image_folders import make_folder  # the generated image folder of those tests


def _graph_ops(function) -> set[str]:
    """The op types of a concrete function's graph and of every function it calls."""
    graph = function.graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for inner in graph.library.function:
        ops.update(node.op for node in inner.node_def)
    return ops


def test_an_image_folder_trains_with_a_searched_policy_and_serves_without_it(tmp_path, monkeypatch):
    import tfmeta
    from tfmeta.augmentation_search import AugmentationPolicy
    from tfmeta.automodel import augmentation

    monkeypatch.setattr(augmentation, "POLICY_TRIALS", 2)
    root = make_folder(str(tmp_path / "images"), classes=2, per_class=12)
    am = tfmeta.AutoModel(max_trials=1, epochs=1, seed=0, verbose=0, refit=False, ensemble=False, filters=8,
                          batch_size=8, strategy="random", directory=str(tmp_path), project_name="folder_aug",
                          augmentation_policy="search")
    am.fit(root)
    policy = am.augmentation_policy_
    assert len(policy["sub_policies"]) == 2 and policy["value_range"] == [0.0, 1.0]  # after the model's scaling
    layers = [layer for layer in am.model_._flatten_layers() if isinstance(layer, AugmentationPolicy)]
    assert len(layers) == 1 and layers[0].get_config()["sub_policies"] == policy["sub_policies"]

    images = np.random.default_rng(1).integers(0, 255, (4, 30, 26, 3)).astype("float32")
    path = am.export(str(tmp_path / "export"))
    with open(os.path.join(path, "tfmeta.json")) as f:
        assert json.load(f)["augmentation_policy"]["sub_policies"] == policy["sub_policies"]
    serving = tf.saved_model.load(path).signatures["serving_default"]
    assert not [op for op in _graph_ops(serving) if "Random" in op]  # the serving path never augments
    served = serving(images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(served, am.predict_proba(images), atol=1e-5)


@pytest.mark.parametrize("kind", ["table", "text"])
def test_a_policy_for_tables_or_text_is_an_error(tmp_path, kind):
    import tfmeta

    x = {"a": list(range(40)), "b": ["x", "y"] * 20} if kind == "table" else ["good food", "bad food"] * 20
    am = tfmeta.AutoModel(max_trials=1, epochs=1, verbose=0, directory=str(tmp_path),
                          augmentation_policy={"sub_policies": [[["flip", 0.5, 1]]]})
    with pytest.raises(ValueError, match=rf"`augmentation_policy` applies to images: expected .*received {kind}"):
        am.fit(x, np.arange(40) % 2)


def test_a_policy_for_few_shot_or_similarity_is_an_error():
    import tfmeta

    am = tfmeta.AutoModel(task="few_shot", augmentation_policy={"sub_policies": [[["flip", 0.5, 1]]]})
    with pytest.raises(ValueError, match="`augmentation_policy` is for task='classification' or 'regression'; "
                                         "received task='few_shot'"):
        am.fit(np.zeros((40, 8, 8)), np.arange(40) % 10)
