"""Fixtures for the NAS tests: the NAS-Bench-Macro table (required) and the digits splits."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def macro_json(data_dir) -> str:
    path = data_dir / "nasbench_macro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        raise RuntimeError(f"NAS-Bench-Macro table missing at {path}; set TFMETA_DATA_DIR.")
    return str(path)


@pytest.fixture(scope="session")
def bench(macro_json):
    from tfmeta.nas.benchmarks import load_benchmark

    return load_benchmark("nasbench-macro", macro_json)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn digits `[N, 8, 8, 1]` in [0, 1], stratified 60/20/20: `{"train", "validation", "test"}`."""
    from tfmeta.data.digits import load_digits_splits

    return load_digits_splits(test_size=0.2, validation_size=0.2, seed=0, scaled=True, channel_axis=True)
