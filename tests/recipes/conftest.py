"""Shared setup of the recipe smoke tests: run a recipe as CI does, check a plot's pixels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_recipe(tmp_path, data_dir):
    """`run(script, *args, data_dir=None) -> CompletedProcess`: a recipe in a subprocess.

    The subprocess imports this checkout's tfmeta (PYTHONPATH), works in `tmp_path` and finds
    the shared data through TFMETA_DATA_DIR (set to the tests' shared data folder: the default
    `../shared/data` is relative to the working directory, which is `tmp_path` here); given
    `data_dir`, it also reads Omniglot from it (`--data-dir`). It must exit 0 (the assertion
    shows its stderr).
    """
    shared = data_dir

    def run(script: str, *args: str, data_dir: Path | None = None, timeout: int = 300):
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg",
               "TFMETA_DATA_DIR": str(shared)}
        if data_dir is not None:
            env["TFMETA_DATA_DIR"] = str(data_dir)
            args = (*args, "--data-dir", str(data_dir))
        out = subprocess.run([sys.executable, str(REPO / "recipes" / script), *args], cwd=str(tmp_path),
                             env=env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    return run


@pytest.fixture
def check_plot():
    """`check(path, min_width, min_height, min_levels) -> RGB pixels`: see `plot_pixels`."""
    return plot_pixels


def plot_pixels(path, min_width: int = 300, min_height: int = 200, min_levels: int = 8) -> np.ndarray:
    """Opens the PNG at `path` and checks it holds a picture, not an empty canvas.

    It must be at least `min_width` x `min_height` pixels, with ink (non-white pixels) on at
    least 1% and at most 90% of it and at least `min_levels` distinct colours. Returns the
    RGB pixels.
    """
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG", image.format
        pixels = np.asarray(image.convert("RGB"))
    height, width, _ = pixels.shape
    assert width >= min_width and height >= min_height, (width, height)
    ink = np.mean(np.any(pixels < 250, axis=-1))
    assert 0.01 <= ink <= 0.9, f"{path}: {100 * ink:.1f}% non-white pixels"
    levels = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert levels >= min_levels, f"{path}: {levels} distinct colours"
    return pixels
