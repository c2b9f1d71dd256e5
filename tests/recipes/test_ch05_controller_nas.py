"""recipes/ch05_controller_nas.py --quick: the three sections run, plot, retrain and export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfmeta.nas.space import MicroCellSpace

REPO = Path(__file__).resolve().parents[2]


def _check_plot(path: Path) -> None:
    """A 6 x 4 inch figure at 120 dpi with drawn content, not a blank canvas."""
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    assert image.shape[:2] == (480, 720), image.shape
    ink = np.any(image[..., :3] < 0.9, axis=-1)  # pixels darker than near-white
    assert 0.01 < ink.mean() < 0.5, ink.mean()  # axes, curves and labels; not empty, not filled
    colourful = np.ptp(image[..., :3], axis=-1) > 0.2  # the coloured curves (axes and text are grey)
    assert colourful.sum() > 200, colourful.sum()


@pytest.mark.slow
def test_ch05_quick(tmp_path, data_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TFMETA_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "ch05_controller_nas.py"), "--quick",
         "--out-dir", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
         "--export-dir", str(tmp_path / "sm"), "--enas-export-dir", str(tmp_path / "sm_enas")],
        capture_output=True, text=True, timeout=900, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NAS-Bench-Macro" in proc.stdout and "ENAS weight sharing" in proc.stdout
    for plot in ("ch05_nas_macro.png", "ch05_digits_search.png"):
        _check_plot(tmp_path / "out" / plot)
    summary = json.loads((tmp_path / "out" / "ch05_summary.json").read_text())
    assert set(summary["nasbench_macro"]) == {"controller", "evolution", "random"}
    alone, shared = summary["digits"], summary["digits_enas"]
    assert not alone["weight_sharing"] and shared["weight_sharing"]
    assert len(alone["trial_scores"]) == alone["trials"] == 2 and len(shared["trial_scores"]) == shared["trials"] == 3
    assert max(alone["trial_scores"]) == alone["best_val_accuracy"]
    # ENAS: derive() picks one of the searched children, and the supernet was checkpointed.
    project = tmp_path / "runs" / "ch05_enas_quick"
    assert (project / "shared_weights.npz").is_file()
    space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"))
    searched = {str(space.from_hp_values(json.loads((d / "trial.json").read_text())["hyperparameters"]["values"]))
                for d in project.glob("trial_*")}
    assert len(searched) == 3 and shared["best_arch"] in searched
    assert all(0.0 <= s <= 1.0 for s in shared["trial_scores"])
    for result, export in ((alone, "sm"), (shared, "sm_enas")):
        assert result["test_accuracy"] > 0.2  # chance is 0.1, even after a tiny retraining
        assert Path(result["export_path"]).parent == tmp_path / export
        assert (Path(result["export_path"]) / "saved_model.pb").exists()
