"""Smoke test of recipes/ch05_controller_nas.py --quick (CI, < 60 s on 2 free cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ch05_quick(tmp_path, data_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TFMETA_DATA_DIR": str(data_dir)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "ch05_controller_nas.py"), "--quick",
         "--out-dir", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
         "--export-dir", str(tmp_path / "sm")],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NAS-Bench-Macro" in proc.stdout and "retrained test accuracy" in proc.stdout
    assert (tmp_path / "out" / "ch05_nas_macro.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "out" / "ch05_summary.json").read_text())
    assert set(summary["nasbench_macro"]) == {"controller", "evolution", "random"}
    assert (Path(summary["digits"]["export_path"]) / "saved_model.pb").exists()
