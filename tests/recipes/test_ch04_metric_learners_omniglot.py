"""Smoke run of recipes/ch04_metric_learners_omniglot.py --quick (as CI runs it), < 60 s."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_recipe_compares_learners_plots_and_exports(tmp_path, data_dir):
    """--quick trains every learner, tables both test protocols, plots, exports, reloads."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFMETA_DATA_DIR=str(data_dir))
    export_dir = tmp_path / "saved_models" / "omniglot_protonet"
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "recipes" / "ch04_metric_learners_omniglot.py"),
            "--quick",
            "--data-dir", str(data_dir),
            "--export-dir", str(export_dir),
            "--out-dir", str(tmp_path / "recipe_outputs"),
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(
        (tmp_path / "recipe_outputs" / "ch04_metric_learners_quick.json").read_text()
    )
    # both test protocols, each with a row per learner and a column per setting
    assert set(result["results"]) == set(result["tables"]) == {"characters", "rotations"}
    for protocol, learners in result["results"].items():
        assert set(learners) == {"protonet", "protonet_views", "matching", "relation", "siamese"}
        for name, rows in learners.items():
            for key in ("5way1shot", "5way5shot", "20way1shot", "20way5shot"):
                r = rows[key]
                assert 0.0 <= r["accuracy"] <= 1.0 and r["ci95"] >= 0.0, (protocol, name, key, r)
                assert r["episodes"] == result["args"]["episodes"]
        table = result["tables"][protocol]
        assert f"test protocol {protocol!r}" in table and "2 test-time views" in table
        assert "20-way 5-shot" in table
    assert "Prototypical" in out.stdout
    # the same learners score differently once rotated characters are classes too
    chars, rots = (result["results"][p]["protonet"]["20way1shot"]["accuracy"]
                   for p in ("characters", "rotations"))
    assert chars != rots
    assert (tmp_path / "recipe_outputs" / "ch04_embeddings.png").stat().st_size > 1000
    # the export reloads with TF alone and gives the model's outputs; oneshot-eval scores it
    export = result["export"]
    assert Path(export["path"]) == export_dir / "1"
    assert (export_dir / "1" / "saved_model.pb").is_file()
    assert export["max_abs_diff"] <= 1e-5
    meta = json.loads((export_dir / "1" / "tfmeta.json").read_text())
    assert meta["learner"] == "prototypical_network" and "few_shot" in meta["signatures"]
    assert meta["training"]["test_time_views"] == 2  # the views run inside the exported graph
    assert meta["metrics"] == {p: result["results"][p]["protonet_views"] for p in ("characters", "rotations")}
    assert export["oneshot_eval"]["trials"] == 80 and 0 <= export["oneshot_eval"]["accuracy"] <= 1
