"""Smoke run of recipes/ch04_metric_learners_omniglot.py --quick, as CI runs it."""

import json
from pathlib import Path

import pytest

SETTINGS = ("5w1s", "5w5s", "20w1s", "20w5s")


@pytest.mark.slow
def test_quick_recipe_compares_learners_plots_and_exports(tmp_path, data_dir, run_recipe, check_plot):
    """--quick trains every learner, tables both test protocols, plots, exports, reloads."""
    export_dir = tmp_path / "saved_models" / "omniglot_protonet"
    out = run_recipe("ch04_metric_learners_omniglot.py", "--quick", "--export-dir", str(export_dir),
                     "--out-dir", str(tmp_path / "recipe_outputs"), data_dir=data_dir)
    result = json.loads((tmp_path / "recipe_outputs" / "ch04_metric_learners_quick.json").read_text())
    learners = result["learners"]
    assert list(learners) == ["protonet", "protonet_views", "matching", "relation", "siamese"]
    # Every learner scored on every setting of both test protocols, on the same episodes.
    for name, row in learners.items():
        assert list(row["scores"]) == ["characters", "rotations"]
        for protocol, scores in row["scores"].items():
            assert list(scores) == list(SETTINGS)
            for setting, r in scores.items():
                assert 0.0 <= r["accuracy"] <= 1.0 and r["ci95"] >= 0.0, (name, protocol, setting, r)
                assert r["episodes"] == 10 and r["queries"] == (15 if setting.startswith("5w") else 5)
    # A table per protocol, a row per learner, the 2-view protonet included.
    for protocol, table in result["tables"].items():
        assert f"test protocol {protocol!r}" in table and "2 test-time views" in table
        assert len(table.splitlines()) == 1 + len(learners) and " 20w5s " in table
    assert "Prototypical" in out.stdout
    # The same learner scores differently once rotated characters are classes too.
    protonet = learners["protonet"]["scores"]
    assert protonet["characters"]["20w1s"]["accuracy"] != protonet["rotations"]["20w1s"]["accuracy"]
    # Eight held-out characters' embeddings in a 6 x 6 inch scatter plot with a legend.
    check_plot(result["plot"], min_width=600, min_height=600, min_levels=8)
    # The export reloads with TF alone and gives the model's outputs; oneshot-eval scores it.
    export = result["export"]
    assert Path(export["path"]) == export_dir / "1" and (export_dir / "1" / "saved_model.pb").is_file()
    assert export["max_abs_diff"] <= 1e-5
    meta = json.loads((export_dir / "1" / "tfmeta.json").read_text())
    assert meta["learner"] == "prototypical_network" and "few_shot" in meta["signatures"]
    assert meta["training"]["test_time_views"] == 2  # the views run inside the exported graph
    assert meta["metrics"] == learners["protonet_views"]["scores"]
    assert export["oneshot_eval"]["trials"] == 80 and 0 <= export["oneshot_eval"]["accuracy"] <= 1
