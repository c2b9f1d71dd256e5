"""AutoModel(augmentation_policy=...): a searched policy trains the children and reaches tfmeta.json."""

import json
import os

import numpy as np
import pytest


def test_a_searched_policy_is_in_the_models_and_in_tfmeta_json(digits, tmp_path, monkeypatch):
    import tfmeta
    from tfmeta.augmentation_search import AugmentationPolicy
    from tfmeta.automodel import augmentation

    monkeypatch.setattr(augmentation, "POLICY_TRIALS", 2)
    x, y = digits
    am = tfmeta.AutoModel(max_trials=1, epochs=1, seed=0, verbose=0, refit=False, ensemble=False, strategy="random",
                          directory=str(tmp_path), project_name="aug", augmentation_policy="search")
    am.fit(x[:300], y[:300])
    policy = am.augmentation_policy_
    assert len(policy["sub_policies"]) == 2 and policy["value_range"][0] < 0 < policy["value_range"][1]
    layers = [layer for layer in am.model_._flatten_layers() if isinstance(layer, AugmentationPolicy)]
    assert len(layers) == 1 and layers[0].get_config()["sub_policies"] == policy["sub_policies"]
    np.testing.assert_allclose(am.predict_proba(x[300:340]), am.predict_proba(x[300:340]))  # identity at inference
    path = am.export(str(tmp_path / "export"))
    with open(os.path.join(path, "tfmeta.json")) as f:
        assert json.load(f)["augmentation_policy"]["sub_policies"] == policy["sub_policies"]


def test_the_option_is_checked_and_images_only(tmp_path):
    import tfmeta

    with pytest.raises(ValueError, match="augmentation_policy"):
        tfmeta.AutoModel(augmentation_policy="autoaugment").fit(np.zeros((20, 8, 8)), np.arange(20) % 2)
    am = tfmeta.AutoModel(max_trials=1, epochs=1, verbose=0, directory=str(tmp_path),
                          augmentation_policy={"sub_policies": [[["flip", 0.5, 1]]]})
    with pytest.raises(ValueError, match="applies to images"):
        am.fit(np.random.default_rng(0).random((40, 5)), np.arange(40) % 2)
    with pytest.raises(ValueError, match="applies to images: expected .* received table"):
        am.fit({"a": list(range(40)), "b": ["x", "y"] * 20}, np.arange(40) % 2)
