"""Smoke run of recipes/ch04_metric_learners_omniglot.py --quick (as CI runs it), < 60 s."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_recipe_compares_learners_plots_and_exports(tmp_path, data_dir):
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
    assert set(result["results"]) == {"protonet", "protonet_views", "matching", "relation", "siamese"}
    assert "2 test-time views" in result["table"]
    for name, rows in result["results"].items():
        for key in ("5way1shot", "5way5shot", "20way1shot", "20way5shot"):
            r = rows[key]
            assert 0.0 <= r["accuracy"] <= 1.0 and r["ci95"] >= 0.0, (name, key, r)
            assert r["episodes"] == result["args"]["episodes"]
    # one comparison table with a row per learner and a column per setting
    assert "20-way 5-shot" in result["table"] and "Prototypical" in out.stdout
    assert (tmp_path / "recipe_outputs" / "ch04_embeddings.png").stat().st_size > 1000
    # the export reloads with TF alone and gives the model's outputs; oneshot-eval scores it
    export = result["export"]
    assert Path(export["path"]) == export_dir / "1"
    assert (export_dir / "1" / "saved_model.pb").is_file()
    assert export["max_abs_diff"] <= 1e-5
    meta = json.loads((export_dir / "1" / "tfmeta.json").read_text())
    assert meta["learner"] == "prototypical_network" and "few_shot" in meta["signatures"]
    assert meta["training"]["test_time_views"] == 2  # the views run inside the exported graph
    assert meta["metrics"] == result["results"]["protonet_views"]
    assert export["oneshot_eval"]["trials"] == 80 and 0 <= export["oneshot_eval"]["accuracy"] <= 1
